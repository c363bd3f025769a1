"""Writing: carrying the decisions out and writing the wheel.

Patching binaries (`patch`), the new archive and its RECORD (`wheel_writer`), the
generated loader, CUDA variants' names, and an editable install's copies next to the
sources (`editable`).
"""
