"""The compilers: the system's, or zig's clang for an old glibc and another architecture.

zig (PyPI `ziglang`) compiles C and C++ against the glibc version its target triple names
(`x86_64-linux-gnu.2.17`) and for other architectures, from any Linux host, with no sysroot
and no container; C++ gets LLVM's libc++, linked in statically. CMake gets it through
wrapper scripts (CMake wants one executable per compiler, zig is `zig cc` / `zig c++`) and
a toolchain file, which also makes a build for another architecture a cross build.

zig caches what it builds for a target (libc++, the C runtime: about 45 s on two cores) under
~/.cache/zig, keyed on the path zig runs from; an isolated build environment has a new
path every time, so each build would pay it again. The backend therefore runs zig from a
copy kept at one path per ziglang version (hard links where the file system allows),
`~/.cache/tvmffi-wheel/zig/<version>`.

CUDA is refused with zig: nvcc 13.0 rejects zig 0.17's clang 21 as host compiler (that
check can be overridden), and CUDA's own headers stop at libc++ on x86_64
(crt/host_defines.h: "libc++ is not supported on x86 system").
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.version import InvalidVersion, Version

from tvmffi_wheel.compiling.cmake_environment import cmake_string
from tvmffi_wheel.compiling.settings import TargetArch, Toolchain
from tvmffi_wheel.errors import TvmFfiWheelError, warn

# Tested with 0.17; zig's command line changes between minor releases.
ZIG_REQUIREMENT = "ziglang>=0.17,<0.18"
OLDEST_GLIBC = Version("2.17")  # manylinux2014, the oldest manylinux that pip still serves
_CONTAINER_FIX = (
    "build CUDA kernels with toolchain = \"system\", in a manylinux container for an old glibc "
    '(cibuildwheel\'s manylinux_2_28 image with NVIDIA\'s toolkit: see "Use with cibuildwheel" in the README)'
)


@dataclasses.dataclass(frozen=True)
class ToolchainPlan:
    toolchain: Toolchain
    arch: str  # the target architecture, e.g. "aarch64"
    host_arch: str
    glibc: Version | None = None  # zig's target glibc
    zig: Path | None = None

    @property
    def cross(self) -> bool:
        return self.arch != self.host_arch

    @property
    def target(self) -> str:
        """zig's target triple, e.g. `aarch64-linux-gnu.2.17`."""
        assert self.glibc is not None
        return f"{self.arch}-linux-gnu.{self.glibc.major}.{self.glibc.minor}"


def host_architecture() -> str:
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def find_zig(search_path: Sequence[str]) -> Path | None:
    """The zig executable of the `ziglang` package on ``search_path``."""
    for entry in search_path:
        candidate = Path(entry) / "ziglang" / "zig"
        if candidate.is_file():
            return candidate
    return None


@functools.lru_cache(maxsize=2)
def zig_glibc_versions(zig: Path) -> tuple[Version, ...]:
    """The glibc versions zig can target, from `zig targets` (ZON: `.glibc = .{ "2.17.0", ... }`)."""
    try:
        listing = subprocess.run([str(zig), "targets"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise TvmFfiWheelError(f"{zig} does not run ({err})", "reinstall ziglang") from None
    block = re.search(r"\.glibc\s*=\s*\.\{(.*?)\}", listing, re.S)
    if block is None:
        raise TvmFfiWheelError(f"`{zig} targets` lists no glibc versions", f"install {ZIG_REQUIREMENT}")
    return tuple(Version(v) for v in re.findall(r'"(\d+\.\d+)(?:\.\d+)?"', block.group(1)))


def _glibc_floor(text: str) -> Version:
    try:
        wanted = Version(text or str(OLDEST_GLIBC))
    except InvalidVersion:
        wanted = None
    if wanted is None or len(wanted.release) != 2:
        raise TvmFfiWheelError(
            f"glibc = {text!r} is not a glibc version", 'write it as major.minor, e.g. glibc = "2.28"'
        )
    if wanted < OLDEST_GLIBC:
        raise TvmFfiWheelError(
            f"glibc = {text!r} is older than 2.17, the oldest manylinux platform (manylinux2014)",
            'set glibc = "2.17" or newer',
        )
    return wanted


def check_toolchain_settings(toolchain: Toolchain, arch: TargetArch, glibc: str, uses_cuda: bool) -> Version | None:
    """What can be refused before anything is installed (zig's own list needs zig); the glibc
    to target with zig (None with the system toolchain)."""
    host = host_architecture()
    target = arch or host
    if toolchain == "system":
        if target != host:
            raise TvmFfiWheelError(
                f"arch = {target!r} on this {host} machine needs toolchain = \"zig\": the system "
                f"compilers build for {host}",
                f'set toolchain = "zig", or build on an {target} machine',
            )
        if glibc:
            raise TvmFfiWheelError(
                f"glibc = {glibc!r} needs toolchain = \"zig\": the system compilers build against this "
                "machine's glibc",
                'set toolchain = "zig", or remove glibc (`plat` caps the tag the binaries must fit)',
            )
        return None
    if uses_cuda:
        raise TvmFfiWheelError(
            'toolchain = "zig" cannot build CUDA: nvcc does not accept zig\'s clang as its host '
            "compiler, and CUDA's headers refuse LLVM's libc++ on x86_64",
            _CONTAINER_FIX,
        )
    return _glibc_floor(glibc)


def plan_toolchain(
    *,
    toolchain: Toolchain,
    arch: TargetArch,
    glibc: str,
    uses_cuda: bool,
    user_defines: Mapping[str, str],
    environ: Mapping[str, str],
    search_path: Sequence[str],
) -> ToolchainPlan:
    """Check the toolchain settings before anything compiles."""
    wanted = check_toolchain_settings(toolchain, arch, glibc, uses_cuda)
    host = host_architecture()
    target = arch or host
    if wanted is None:
        return ToolchainPlan("system", target, host)
    for name in ("CMAKE_TOOLCHAIN_FILE", "CMAKE_C_COMPILER", "CMAKE_CXX_COMPILER"):
        if name in user_defines or name in environ:
            raise TvmFfiWheelError(
                f'toolchain = "zig" sets {name}, which the project or the environment already sets',
                f'remove that {name}, or set toolchain = "system"',
            )
    zig = find_zig(search_path)
    if zig is None:
        raise TvmFfiWheelError(
            'toolchain = "zig", but the ziglang package is not installed in the build environment',
            f'build with build isolation (it installs it), or pip install "{ZIG_REQUIREMENT}"',
        )
    known = zig_glibc_versions(zig)
    if wanted not in known:  # Version("2.17") == Version("2.17.0")
        raise TvmFfiWheelError(
            f"glibc = {glibc!r}: zig cannot target it (it knows glibc {known[0]} to {known[-1]})",
            "choose one of those versions",
        )
    return ToolchainPlan("zig", target, host, wanted, zig)


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def stable_zig(zig: Path, environ: Mapping[str, str]) -> Path:
    """``zig`` run from one path per zig release, so that zig's own cache hits across isolated
    builds (see the module's docstring)."""
    try:
        release = subprocess.run([str(zig), "version"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as err:
        raise TvmFfiWheelError(f"{zig} does not run ({err})", "reinstall ziglang") from None
    version = f"{release}-{zig.stat().st_size}"  # the size tells two builds of one release apart
    base = Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tvmffi-wheel" / "zig"
    stable = base / version
    if (stable / "zig").is_file():
        return stable / "zig"
    base.mkdir(parents=True, exist_ok=True)
    # Copied under a temporary name and renamed: a concurrent build sees a complete copy or none.
    partial = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=base))
    try:
        shutil.copytree(zig.parent, partial, copy_function=_link_or_copy, dirs_exist_ok=True)
        os.rename(partial, stable)
    except OSError:
        if not (stable / "zig").is_file():  # not lost to a concurrent build that got there first
            raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return stable / "zig"


def _wrapper(path: Path, command: Sequence[str]) -> Path:
    # exec keeps the compiler's exit status and signals; "$@" passes arguments untouched.
    path.write_text(f"#!/bin/sh\nexec {shlex.join(command)} \"$@\"\n", "utf-8")
    path.chmod(0o755)
    return path


def write_toolchain_file(plan: ToolchainPlan, folder: Path, environ: Mapping[str, str]) -> Path:
    """zig's compiler wrappers and a CMake toolchain file using them, in ``folder``."""
    assert plan.zig is not None
    folder.mkdir(parents=True, exist_ok=True)
    try:
        zig = str(stable_zig(plan.zig, environ))
    except OSError as err:
        warn(f"zig runs from the build environment, so it rebuilds its C++ runtime ({err})")
        zig = str(plan.zig)
    tools = {
        "CMAKE_C_COMPILER": _wrapper(folder / "cc", [zig, "cc", "-target", plan.target]),
        "CMAKE_CXX_COMPILER": _wrapper(folder / "c++", [zig, "c++", "-target", plan.target]),
        "CMAKE_AR": _wrapper(folder / "ar", [zig, "ar"]),
        "CMAKE_RANLIB": _wrapper(folder / "ranlib", [zig, "ranlib"]),
    }
    refusal = "tvmffi-wheel: toolchain = zig cannot build CUDA sources; " + _CONTAINER_FIX
    no_cuda = folder / "no-cuda-host-compiler"
    no_cuda.write_text(f"#!/bin/sh\necho {shlex.quote(refusal)} >&2\nexit 1\n", "utf-8")
    no_cuda.chmod(0o755)
    lines = [f"# Generated by tvmffi-wheel: zig's clang for {plan.target}."]
    if plan.cross:
        lines += ["set(CMAKE_SYSTEM_NAME Linux)", f"set(CMAKE_SYSTEM_PROCESSOR {plan.arch})"]
    lines += [f"set({name} {cmake_string(path)})" for name, path in tools.items() if "COMPILER" in name]
    # The binutils are cache entries CMake fills by searching PATH: preset them.
    lines += [f'set({name} {cmake_string(path)} CACHE FILEPATH "zig")' for name, path in tools.items()
              if "COMPILER" not in name]
    # A project that enables CUDA anyway fails at CMake's compiler check, with this message.
    lines.append(f"set(CMAKE_CUDA_HOST_COMPILER {cmake_string(no_cuda)})")
    toolchain_file = folder / "zig-toolchain.cmake"
    toolchain_file.write_text("\n".join(lines) + "\n", "utf-8")
    return toolchain_file
