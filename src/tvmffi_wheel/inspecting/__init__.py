"""Inspecting: reading a wheel once, and the facts of every binary and device code in it.

`facts.BinaryFacts` is what the later stages read, whatever the file format; `binary`
picks the reader (`elf`, `elf_stream` today). Imports only from compiling.
"""
