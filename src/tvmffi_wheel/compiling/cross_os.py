"""Building for macOS or Windows from Linux: the `os` setting, with zig.

Only tvm-ffi's C ABI crosses a kernel library's boundary, so a library built by zig with
LLVM's libc++ linked in privately runs in a process whose tvm-ffi was built with Apple's
toolchain or MSVC. What each target needs, found by building example_project's kernels:
- macOS: zig's target names the minimum macOS (`aarch64-macos.11.0`; without it, the
  newest); apache-tvm-ffi publishes arm64 wheels only, for macOS 11 and later.
- Windows: zig's `x86_64-windows-gnu` (MinGW). tvm-ffi's headers take "Windows" to mean
  "`_MSC_VER` is defined", which MinGW's clang does not define, so a header forced into every
  compile (data/windows_shim.h) declares posix_memalign and makes `TVM_FFI_DLL_EXPORT`
  export; without it, lld exports every symbol.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from tvmffi_wheel.common.symbols import runtime_version_script
from tvmffi_wheel.compiling.settings import ToolchainSettings
from tvmffi_wheel.errors import TvmFfiWheelError, info

WINDOWS_SHIM = Path(__file__).parent / "data" / "windows_shim.h"
MACOS_NEW_DELETE = Path(__file__).parent / "data" / "macos_new_delete.cc"
# What every compile of a zig build for Linux or macOS gets, before the project's own flags
# (which win): hidden visibility, and tvm-ffi's TVM_FFI_DLL, which marks its own C++ classes,
# left empty (zig_wrappers.py says why).
HIDDEN_VISIBILITY = (
    "-fvisibility=hidden", "-DTVM_FFI_DLL=", '-DTVM_FFI_DLL_EXPORT=__attribute__((visibility("default")))',
)
# The oldest macOS apache-tvm-ffi's wheels run on (macosx_11_0_arm64), and the default.
OLDEST_MACOS = (11, 0)
_VERSION = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?$")  # 11, 11.0, 11.0.1
# How zig, CMake and the binaries' facts name each target's architecture.
_FACTS_ARCH = {("macos", "aarch64"): "arm64", ("windows", "x86_64"): "amd64"}
_CMAKE_SYSTEM = {"macos": ("Darwin", "arm64"), "windows": ("Windows", "AMD64")}


@dataclasses.dataclass(frozen=True)
class OsTarget:
    """Another operating system than Linux, as a build targets it."""

    os: str  # "macos" or "windows"
    arch: str  # as the `arch` setting spells it: "aarch64", "x86_64"
    minimum: str = ""  # macOS: MACOSX_DEPLOYMENT_TARGET, e.g. "11.0"

    @property
    def zig_target(self) -> str:
        if self.os == "macos":
            return f"{self.arch}-macos.{self.minimum}"
        return f"{self.arch}-windows-gnu"

    @property
    def links_libunwind(self) -> bool:
        """zig links its libunwind in beside libc++; macOS unwinds with libSystem's own."""
        return self.os != "macos"

    @property
    def facts_arch(self) -> str:
        """The architecture as the binaries' facts and the wheel tag spell it."""
        return _FACTS_ARCH[(self.os, self.arch)]

    def kept_files(self) -> dict[str, str]:
        """Files the toolchain keeps beside its toolchain file for this target (name -> text)."""
        if self.os != "windows":
            return {}
        # zig is MinGW, whose CMake platform names a DLL lib<target>.dll; tvm-ffi's loader
        # (libinfo.load_lib_module) and MSVC builds name it <target>.dll. Applied after CMake's
        # platform files, which a toolchain file comes before.
        names = "".join(f'set(CMAKE_{kind}_PREFIX "")\n' for kind in ("SHARED_LIBRARY", "SHARED_MODULE",
                                                                      "IMPORT_LIBRARY"))
        return {"windows_shim.h": WINDOWS_SHIM.read_text("utf-8"),
                "windows-names.cmake": "# tvmffi-wheel: DLLs named as MSVC names them.\n" + names}

    def toolchain_lines(self, folder: str) -> list[str]:
        """What CMake's toolchain file says beyond the compilers; ``folder``: where the
        toolchain keeps its files (kept_files)."""
        name, processor = _CMAKE_SYSTEM[self.os]
        lines = [f"set(CMAKE_SYSTEM_NAME {name})", f"set(CMAKE_SYSTEM_PROCESSOR {processor})"]
        if self.os == "macos":
            # CMake's Darwin platform asks `sw_vers` (absent here) for the macOS release and,
            # finding none, takes it to be older than 10.5: no run paths and no @rpath install
            # names. These are what it sets for 10.5 and later.
            lines += ['set(CMAKE_SHARED_LIBRARY_RUNTIME_C_FLAG "-Wl,-rpath,")',
                      'set(CMAKE_SHARED_LIBRARY_RUNTIME_CXX_FLAG "-Wl,-rpath,")',
                      # Install-time changes would need install_name_tool, which is not here (CMake
                      # skips them silently): link the run path and the @rpath install name in.
                      "set(CMAKE_BUILD_WITH_INSTALL_RPATH ON)",
                      "set(CMAKE_BUILD_WITH_INSTALL_NAME_DIR ON)",
                      'set(CMAKE_INSTALL_NAME_DIR "@rpath")']
        else:
            lines += [f'set(CMAKE_C_FLAGS_INIT "-include \\"{folder}/windows_shim.h\\"")',
                      f'set(CMAKE_CXX_FLAGS_INIT "-include \\"{folder}/windows_shim.h\\"")',
                      f'set(CMAKE_USER_MAKE_RULES_OVERRIDE "{folder}/windows-names.cmake")']
        return lines


@dataclasses.dataclass(frozen=True)
class LinkRules:
    """How a zig build with LLVM's libc++ keeps the runtime inside its libraries, per target
    system; names are relative to the folder the toolchain keeps its files in."""

    compile_flags: tuple[str, ...]  # before the project's own
    link_extras: tuple[str, ...] = ()  # added to every shared library link
    own_exports_extras: tuple[str, ...] = ()  # added to a link that states no exports of its own
    files: tuple[tuple[str, str], ...] = ()  # (name, text) kept beside the wrappers
    shim: tuple[str, str] | None = None  # (C++ source, object) compiled for the target


def link_rules(os_target: OsTarget | None) -> LinkRules:
    """Linux: a version script of the runtime's symbols (its linker has no --exclude-libs).
    macOS: hidden operator new and delete, since zig's Mach-O linker ignores export lists.
    Windows: nothing; a DLL exports only what is marked dllexport (windows_shim.h).

    macOS and Windows links leave out debug information (-Wl,-S: the debug map; -s: the PDB).
    Both name the object files in the build's temporary folder, and the linker hashes them into
    the binary's identity (LC_UUID; the PDB's GUID and the PE timestamps), so each build of the
    same sources would differ; no debugger on this Linux machine runs those binaries, and the
    wheel leaves debug files out anyway."""
    if os_target is None:
        return LinkRules(HIDDEN_VISIBILITY, own_exports_extras=("-Wl,--version-script={folder}/runtime.map",),
                         files=(("runtime.map", runtime_version_script()),))
    if os_target.os == "macos":
        return LinkRules(HIDDEN_VISIBILITY, link_extras=("{folder}/macos_new_delete.o", "-Wl,-S"),
                         files=(("macos_new_delete.cc", MACOS_NEW_DELETE.read_text("utf-8")),),
                         shim=("macos_new_delete.cc", "macos_new_delete.o"))
    return LinkRules((), link_extras=("-s",))


def other_os(os_name: str) -> bool:
    """The `os` setting names another system than Linux."""
    return os_name not in ("", "linux")


def builds_for_linux(os_name: str) -> bool:
    """The build's binaries are for Linux: this machine is Linux and `os` names no other system."""
    return not other_os(os_name) and sys.platform.startswith("linux")


def cuda_refusal_reason(os_target: OsTarget) -> str:
    """Why ``os_target`` cannot build CUDA."""
    return ("macOS has no CUDA" if os_target.os == "macos"
            else "nvcc and CUDA's libraries for Windows do not run on this Linux machine")


def check_os_settings(settings: ToolchainSettings, uses_cuda: bool, environ: Mapping[str, str]) -> OsTarget | None:
    """The macOS or Windows target the settings ask for (None: Linux); refusals first."""
    os_name, arch, toolchain = settings.os, settings.arch, settings.name
    glibc, cxx_runtime = settings.glibc, settings.cxx_runtime
    if not other_os(os_name):
        return None
    if toolchain != "zig":
        raise TvmFfiWheelError(
            f'os = "{os_name}" on this Linux machine needs toolchain = "zig": the system compilers build '
            "for Linux",
            f'set toolchain = "zig" (-C tvmffi-wheel.toolchain=zig), or build on a {os_name} machine',
        )
    if uses_cuda:
        raise TvmFfiWheelError(
            f'os = "{os_name}" cannot build CUDA: ' + cuda_refusal_reason(OsTarget(os_name, arch or "")),
            "build the CUDA kernels for Linux, or on a Windows machine with the CUDA toolkit"
            if os_name == "windows" else "leave the CUDA kernels out of the macOS build",
        )
    for name, value in (("glibc", glibc), ("cxx-runtime", cxx_runtime)):
        if value and not (name == "cxx-runtime" and value == "libc++"):
            raise TvmFfiWheelError(
                f'{name} = "{value}" is for Linux targets; os = "{os_name}" links zig\'s libc++ privately',
                f"remove {name}",
            )
    if os_name == "macos":
        wanted = arch or "aarch64"
        if wanted != "aarch64":
            raise TvmFfiWheelError(
                f'os = "macos" with arch = "{wanted}": apache-tvm-ffi publishes macOS wheels for arm64 only '
                "(no x86_64, no universal2), so nothing could load the library there",
                'set arch = "aarch64", or leave arch unset',
            )
        return OsTarget("macos", wanted, _deployment_target(environ))
    wanted = arch or "x86_64"
    if wanted != "x86_64":
        raise TvmFfiWheelError(
            f'os = "windows" with arch = "{wanted}": tvmffi-wheel builds Windows wheels for x86_64 (win_amd64) only',
            'set arch = "x86_64", or leave arch unset',
        )
    return OsTarget("windows", wanted)


def _deployment_target(environ: Mapping[str, str]) -> str:
    text = environ.get("MACOSX_DEPLOYMENT_TARGET", "").strip() or "11.0"
    match = _VERSION.match(text)
    if match is None:
        raise TvmFfiWheelError(
            f"MACOSX_DEPLOYMENT_TARGET is {text!r}, which is not a macOS version",
            "write it as MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. 11.0 or 13.2",
        )
    version = (int(match.group(1)), int(match.group(2) or 0), int(match.group(3) or 0))
    if version < (*OLDEST_MACOS, 0):
        raise TvmFfiWheelError(
            f"MACOSX_DEPLOYMENT_TARGET is {text}, but apache-tvm-ffi's macOS wheels need macOS 11.0 or later "
            "(macosx_11_0_arm64), so the library could not load below that",
            "set MACOSX_DEPLOYMENT_TARGET to 11.0 or later, or unset it (11.0)",
        )
    if version[2]:
        info(f"MACOSX_DEPLOYMENT_TARGET is {text}: a wheel's tag names no patch level, so the library is built "
             f"for macOS {version[0]}.{version[1]}, which covers it")
    return f"{version[0]}.{version[1]}"


def release_platform_tags(arch: str, system: str = "linux") -> list[str]:
    # Every tag a wheel for ``arch`` may carry, newest first: pip prefers the tags it is given
    # in order, so where a release has several builds it takes the one pip on a current
    # machine installs (0.1.12 has a manylinux_2_28 and a manylinux2014 build).
    if system == "macos":
        return [f"macosx_{major}_0_{arch}" for major in range(26, 10, -1)]
    if system == "windows":
        return ["win32" if arch == "x86" else f"win_{arch}"]
    return [*(f"manylinux_2_{minor}_{arch}" for minor in range(44, 16, -1)), f"manylinux2014_{arch}"]


# The target's library in the wheel, and what the linker reads (Windows: the import library).
TVM_FFI_LIBRARIES = {
    "linux": ("libtvm_ffi.so", "libtvm_ffi.so"),
    "macos": ("libtvm_ffi.dylib", "libtvm_ffi.dylib"),
    "windows": ("tvm_ffi.dll", "tvm_ffi.lib"),
}


def target_name(system: str, arch: str) -> str:
    """The target as the log names it: `aarch64`, `macos arm64`."""
    return f"{system} {arch}" if other_os(system) else arch
