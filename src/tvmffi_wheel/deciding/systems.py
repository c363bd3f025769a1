"""What each operating system a wheel can target provides, and how its binaries find libraries.

One `System` per binary format: the names tvm-ffi and NVIDIA's libraries go by there, what
the system itself provides, how a binary names its own folder in a run path, and how the
wheel's platform tag spells the architectures. Linux's system libraries come from the
manylinux policies instead (_auditwheel.py, platforms.py); macOS's and Windows's are fixed
lists, as delocate and delvewheel keep them.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import posixpath
import re
from collections.abc import Iterable

from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting.facts import BinaryFacts, BinaryFormat

# The Windows DLLs every supported Windows has, besides the API sets (api-ms-win-*,
# ext-ms-*), and the C runtime CPython itself ships (vcruntime140*.dll; MSVCP140 is not
# among them, so a kernel built with MSVC's C++ library carries its own, as apache-tvm-ffi does).
_WINDOWS_DLLS = (
    "advapi32", "bcrypt", "cfgmgr32", "comctl32", "comdlg32", "crypt32", "d3d11", "d3d12", "dbghelp",
    "dnsapi", "dwmapi", "dxgi", "gdi32", "imm32", "iphlpapi", "kernel32", "kernelbase", "msvcrt",
    "mswsock", "ncrypt", "netapi32", "normaliz", "ntdll", "ole32", "oleaut32", "opengl32", "powrprof",
    "psapi", "rpcrt4", "secur32", "setupapi", "shell32", "shlwapi", "ucrtbase", "user32", "userenv",
    "uxtheme", "version", "winhttp", "wininet", "winmm", "ws2_32", "wsock32", "vcruntime140",
    "vcruntime140_1",
)


@dataclasses.dataclass(frozen=True)
class System:
    """The rules of one operating system (patterns are shell patterns, fnmatch's)."""

    name: str  # as people say it: "Linux", "macOS", "Windows"
    format: BinaryFormat  # its binaries' format
    key: str  # in the ABI table and in tags' prefixes: "linux", "macos", "windows"
    tvm_ffi: tuple[str, ...]  # libtvm_ffi, matched against the needed name's file name
    cuda_driver: tuple[str, ...]  # the driver and, on Windows, CUDA's DLLs: never vendored
    loader: tuple[str, ...]
    python: tuple[str, ...]  # the interpreter's library
    provided: tuple[str, ...]  # what the system provides, matched against the whole name
    origin: str | None  # how a run path names the binary's own folder (None: no run paths)
    fold_case: bool  # library names are case-insensitive (Windows)
    architectures: tuple[str, ...]  # those a wheel can be tagged for, as tags spell them

    def matches(self, name: str, patterns: Iterable[str]) -> bool:
        text = name.lower() if self.fold_case else name
        return any(fnmatch.fnmatchcase(text, pattern) for pattern in patterns)

    def file_name(self, needed: str) -> str:
        return posixpath.basename(needed.replace("\\", "/"))

    def key_of(self, name: str) -> str:
        """The name as this system compares library names."""
        return name.lower() if self.fold_case else name


LINUX = System(
    name="Linux", key="linux", format="elf",
    tvm_ffi=("libtvm_ffi.so*", "libtvm_ffi-*.so*"),
    cuda_driver=("libcuda.so*", "libnvidia-*"),
    loader=("ld-linux*.so*", "ld64.so*"),
    python=("libpython*",),
    provided=(),
    origin="$ORIGIN",
    fold_case=False,
    architectures=("x86_64", "aarch64", "i686", "ppc64le", "s390x", "armv7l", "riscv64"),
)
MACOS = System(
    name="macOS", key="macos", format="macho",
    tvm_ffi=("libtvm_ffi.dylib", "libtvm_ffi-*.dylib"),
    cuda_driver=(),
    loader=("/usr/lib/dyld",),
    python=("*/Python", "*/libpython*.dylib", "libpython*.dylib"),
    provided=("/usr/lib/*", "/System/Library/*", "/System/iOSSupport/*"),
    origin="@loader_path",
    fold_case=False,
    architectures=("arm64", "x86_64"),
)
WINDOWS = System(
    name="Windows", key="windows", format="pe",
    tvm_ffi=("tvm_ffi.dll", "tvm_ffi-*.dll"),
    cuda_driver=("nvcuda.dll", "nvml.dll", "cudart64_*.dll", "cublas*64_*.dll", "cufft*64_*.dll",
                 "curand64_*.dll", "cusolver*64_*.dll", "cusparse64_*.dll", "nvrtc*64_*.dll",
                 "nvjitlink*_*.dll", "cudnn*64_*.dll", "nccl*.dll", "nvtx*.dll"),
    loader=(),
    python=("python3*.dll",),
    provided=("api-ms-win-*", "ext-ms-*", *(f"{name}.dll" for name in _WINDOWS_DLLS)),
    origin=None,
    fold_case=True,
    architectures=("amd64", "arm64", "x86"),
)
SYSTEMS: dict[BinaryFormat, System] = {"elf": LINUX, "macho": MACOS, "pe": WINDOWS}


def system_of(facts: BinaryFacts) -> System:
    return SYSTEMS[facts.format]


def wheel_system(formats: Iterable[tuple[str, BinaryFormat]]) -> System:
    """The one system the binaries ((member, format) pairs) are built for."""
    found: dict[BinaryFormat, str] = {}
    for member, file_format in formats:
        found.setdefault(file_format, member)
    if len(found) > 1:
        shown = ", ".join(f"{member} is for {SYSTEMS[f].name}" for f, member in found.items())
        raise TvmFfiWheelError(
            f"the wheel mixes binaries for several operating systems: {shown}",
            "build one wheel per platform; a wheel has one platform tag",
        )
    return SYSTEMS[next(iter(found))] if found else LINUX


_TAG_SYSTEM = (
    (re.compile(r"^(?:many|musl)?linux"), LINUX),
    (re.compile(r"^macosx_"), MACOS),
    (re.compile(r"^win"), WINDOWS),
)


def system_of_tag(platform: str) -> System | None:
    """The system a platform tag names (None: `any` or one tvmffi-wheel does not know)."""
    return next((system for pattern, system in _TAG_SYSTEM if pattern.match(platform)), None)
