"""What a build installs beside its libraries that the backend leaves out of the wheels it builds.

- Debug symbols: tvm-ffi's `tvm_ffi_install` installs a `.dSYM` bundle on Apple targets, and
  a Windows link may leave a `.pdb`. Nothing loads them; a dSYM of a zig-linked library holds
  the DWARF of the whole libc++ linked into it (4.4 MB beside a 0.76 MB library for tvm-ffi's
  python_packaging example), against PyPI's size limits, for the symbolication a developer does
  on their own build tree.
- Windows import libraries (`.dll.a`, or a `.lib` named after one of the wheel's DLLs), which
  `install(TARGETS ... DESTINATION <dir>)` installs as the target's ARCHIVE: they serve linking
  against the DLL, and a kernel library is loaded, never linked against.

`repair` of a wheel built elsewhere leaves its members as they are: that choice was its builder's.
"""

from __future__ import annotations

from collections.abc import Sequence

from tvmffi_wheel.deciding.platforms import binaries_platform
from tvmffi_wheel.inspecting.wheel import DebugFile, WheelBinary


def left_out_of_build(
    members: Sequence[str], binaries: Sequence[WheelBinary], debug_files: Sequence[DebugFile]
) -> dict[str, str]:
    """member -> why it is left out of a wheel the backend builds."""
    left_out = {file.path: "debug symbols" for file in debug_files}
    left_out |= dict.fromkeys(binaries_platform(binaries).import_libraries(members, binaries), "an import library")
    return left_out
