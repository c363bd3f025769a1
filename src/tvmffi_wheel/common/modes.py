"""The values each option takes: words the settings parse and every stage compares against."""

from __future__ import annotations

from typing import Literal

# The values an option takes; "" means "decide from the plain CMake settings".
RepairMode = Literal["auto", "skip"]
CudaRuntimeOption = Literal["", "static", "shared", "none"]
CudaToolkitOption = Literal["", "system", "pip"]
CudaVariant = Literal["none", "name", "local"]
CompilerCache = Literal["none", "sccache", "ccache"]
Toolchain = Literal["system", "zig"]
CxxRuntimeOption = Literal["", "libc++", "libstdc++"]
TargetArch = Literal["", "x86_64", "aarch64"]
TargetOs = Literal["", "linux", "macos", "windows"]
