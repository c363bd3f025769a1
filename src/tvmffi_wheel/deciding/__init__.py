"""Deciding: pure functions from facts and policy tables to decisions.

One object per platform (`platforms/`) answers what the decisions ask, so no module here
tests which platform or format it has. What satisfies each library (`classify`), what to
vendor and every run path (`plan`, `runpath`, `placement`), the Python tag, the tvm-ffi
range and Requires-Dist (`abi`, `requirements`, `nvidia`), device code against the declared
architectures (`device_inventory`, `device_checks`), a private C++ runtime, and the rules a
finished wheel must pass (`verify`). Nothing here touches a file: what a plan must read
from disk, it asks of the finder it is given (inspecting/library_finder.py).
"""
