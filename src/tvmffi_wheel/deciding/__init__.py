"""Deciding: pure functions from binary facts and policy tables to decisions.

What satisfies each library (`classify`), the platform (`platforms`, over auditwheel's
manylinux policies), what to vendor and every run path (`plan`), the Python tag, the
tvm-ffi range and Requires-Dist (`abi`, `abi_table`, `requirements`), device code
against the declared architectures, and the rules a finished wheel must pass (`verify`).
Reads `BinaryFacts`, never a file format.
"""
