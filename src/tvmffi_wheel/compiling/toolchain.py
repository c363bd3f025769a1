"""The compilers: the system's, or zig for an old glibc and another architecture.

zig (PyPI `ziglang`) compiles and links against the glibc version its target triple names
(`x86_64-linux-gnu.2.17`), from any Linux host, with no sysroot and no container. Two ways,
by the C++ runtime the binaries carry (`cxx-runtime`):

- `libc++`: zig's clang compiles and links, also for another architecture; LLVM's libc++ is
  linked in statically. CMake gets it through wrapper scripts (CMake wants one executable
  per compiler, zig is `zig cc` / `zig c++`) and a toolchain file. Not for CUDA: nvcc 13.0
  rejects zig's clang as host compiler, and CUDA's headers stop at libc++ on x86_64
  (crt/host_defines.h: "libc++ is not supported on x86 system").
- `libstdc++`: gcc and nvcc compile as without zig; only the link of a shared library is
  zig's, against the target glibc, with GCC's libstdc++.a linked in privately (zig_link.py
  and data/glibc_shim.c). CMake's C and C++ compiler and nvcc's host compiler are a wrapper
  that passes every other call to the system compiler unchanged.

zig runs from a copy at one path per release (zig_copy.py).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from packaging.version import InvalidVersion, Version

from tvmffi_wheel.common.modes import Toolchain
from tvmffi_wheel.compiling.cross_os import OsTarget, check_os_settings, cuda_refusal_reason
from tvmffi_wheel.compiling.settings import ToolchainSettings
from tvmffi_wheel.compiling.zig_copy import ZIG_REQUIREMENT, kept_zig
from tvmffi_wheel.errors import TvmFfiWheelError

# manylinux2014, the oldest manylinux that pip still serves; CUDA's static runtime binds to it
# too (its newest need is clock_gettime@GLIBC_2.17), with the shim.
OLDEST_GLIBC = Version("2.17")
CxxRuntime = Literal["libc++", "libstdc++"]
# What the repair calls the C++ runtime a library carries, in its messages and build facts.
RUNTIME_DESCRIPTION: dict[CxxRuntime, str] = {
    "libc++": "LLVM's libc++ (zig's, static)",
    "libstdc++": "GCC's libstdc++ (libstdc++.a, static)",
}
SHIM_SOURCE = Path(__file__).parent / "data" / "glibc_shim.c"
# What data/glibc_shim.c stands in for, recorded in the build facts.
SHIM_SYMBOLS = (
    "__libc_single_threaded", "arc4random", "arc4random_buf", "arc4random_uniform", "getentropy",
    "pthread_cond_clockwait", "pthread_mutex_clocklock", "pthread_rwlock_clockrdlock",
    "pthread_rwlock_clockwrlock", "sem_clockwait",
)


@dataclasses.dataclass(frozen=True)
class ToolchainPlan:
    toolchain: Toolchain
    arch: str  # the target architecture, e.g. "aarch64"
    host_arch: str
    glibc: Version | None = None  # zig's target glibc
    zig: Path | None = None
    cxx_runtime: CxxRuntime | None = None  # with zig: who compiles, and the runtime linked in
    # cxx_runtime == "libstdc++": the system compilers CMake's wrappers hand compiles to
    compilers: tuple[Path, Path] | None = None  # (C, C++)
    libstdcxx: Path | None = None  # GCC's libstdc++.a
    os_target: OsTarget | None = None  # macOS or Windows (cross_os.py); None: Linux

    @property
    def cross(self) -> bool:
        return self.arch != self.host_arch or self.os_target is not None

    @property
    def target_system(self) -> tuple[str, str]:
        """The target's system and architecture as its wheel tags and binaries spell them
        (`linux`, `aarch64`; `macos`, `arm64`; `windows`, `amd64`)."""
        if self.os_target is not None:
            return self.os_target.os, self.os_target.facts_arch
        return "linux", self.arch

    @property
    def target(self) -> str:
        """zig's target triple, e.g. `aarch64-linux-gnu.2.17`, `aarch64-macos.11.0`."""
        if self.os_target is not None:
            return self.os_target.zig_target
        assert self.glibc is not None
        return f"{self.arch}-linux-gnu.{self.glibc.major}.{self.glibc.minor}"

    def link_facts(self) -> dict[str, str]:
        """How the binaries were linked, for the wheel's build facts."""
        if self.toolchain == "system":
            return {"linker": "the system compiler's"}
        assert self.cxx_runtime is not None
        facts = {"linker": "zig", "target": self.target, "cxx_runtime": RUNTIME_DESCRIPTION[self.cxx_runtime]}
        if self.os_target is None or self.os_target.links_libunwind:
            facts["unwinder"] = "zig's libunwind"
        if self.cxx_runtime == "libstdc++":
            assert self.compilers is not None
            facts |= {"compilers": f"{self.compilers[0]}, {self.compilers[1]}",
                      "unwinder": "zig's libunwind", "glibc_shim": ", ".join(SHIM_SYMBOLS)}
        return facts


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


def _glibc_floor(text: str, uses_cuda: bool) -> Version:
    try:
        wanted = Version(text or str(OLDEST_GLIBC))
    except InvalidVersion:
        wanted = None
    if wanted is None or len(wanted.release) != 2:
        raise TvmFfiWheelError(
            f"glibc = {text!r} is not a glibc version", 'write it as major.minor, e.g. glibc = "2.28"'
        )
    if wanted < OLDEST_GLIBC:
        cuda = ", and the oldest CUDA's static runtime binds to (clock_gettime@GLIBC_2.17)" if uses_cuda else ""
        raise TvmFfiWheelError(
            f"glibc = {text!r} is older than 2.17, the oldest manylinux platform (manylinux2014){cuda}",
            'set glibc = "2.17" or newer',
        )
    return wanted


def check_toolchain_settings(
    settings: ToolchainSettings, uses_cuda: bool, environ: Mapping[str, str] | None = None,
    project_cuda: bool = False,
) -> tuple[Version | OsTarget, CxxRuntime] | None:
    """What can be refused before anything is installed (zig's own list needs zig): with
    zig, the glibc (or the macOS or Windows target) and the C++ runtime to link (None with
    the system toolchain). ``uses_cuda``: the build declares CUDA architectures or a runtime;
    ``project_cuda``: the project's sources build CUDA (project_cuda.py), which picks the
    default C++ runtime only."""
    host = host_architecture()
    os_target = check_os_settings(settings, uses_cuda, environ or {})
    if os_target is not None:
        return os_target, "libc++"
    toolchain, arch, glibc, cxx_runtime = settings.name, settings.arch, settings.glibc, settings.cxx_runtime
    target = arch or host
    if toolchain == "system":
        if target != host:
            raise TvmFfiWheelError(
                f"arch = {target!r} on this {host} machine needs toolchain = \"zig\": the system "
                f"compilers build for {host}",
                f'set toolchain = "zig", or build on an {target} machine',
            )
        for name, value in (("glibc", glibc), ("cxx-runtime", cxx_runtime)):
            if value:
                raise TvmFfiWheelError(
                    f"{name} = {value!r} needs toolchain = \"zig\": the system compilers build against "
                    "this machine's glibc and C++ runtime",
                    f'set toolchain = "zig", or remove {name} (`plat` caps the tag the binaries must fit)',
                )
        return None
    # GCC's runtime where CUDA may be built (CUDA is never cross-built: that needs another nvcc).
    cuda_default = uses_cuda or (project_cuda and target == host)
    runtime: CxxRuntime = cxx_runtime or ("libstdc++" if cuda_default else "libc++")
    if runtime == "libc++" and uses_cuda:
        raise TvmFfiWheelError(
            'cxx-runtime = "libc++" cannot build CUDA: nvcc does not accept zig\'s clang as its host '
            "compiler, and CUDA's headers refuse LLVM's libc++ on x86_64",
            'set cxx-runtime = "libstdc++" (or leave it unset): nvcc compiles, and zig links against the target glibc',
        )
    if runtime == "libstdc++" and target != host:
        raise TvmFfiWheelError(
            f'cxx-runtime = "libstdc++" compiles with this machine\'s gcc and nvcc, which build for '
            f"{host}, not arch = {target!r}",
            f'build on an {target} machine, or set cxx-runtime = "libc++" (C++ only, no CUDA)',
        )
    return _glibc_floor(glibc, uses_cuda), runtime


def _system_compiler(names: Sequence[str], variable: str, environ: Mapping[str, str]) -> Path:
    chosen = environ.get(variable)
    for name in ([chosen] if chosen else names):
        found = shutil.which(name, path=environ.get("PATH", os.defpath))
        if found:
            return Path(found)
    raise TvmFfiWheelError(
        f'cxx-runtime = "libstdc++" compiles with the system compilers, but there is no '
        f"{chosen or ' or '.join(names)} on PATH",
        f"install gcc and g++, or point {variable} at them",
    )


def _static_libstdcxx(cxx: Path, guessed: bool = False) -> Path:
    """GCC's libstdc++.a, as the compiler finds it; ``guessed``: libstdc++ is the default only
    because the project's sources build CUDA."""
    try:
        found = subprocess.run(
            [str(cxx), "-print-file-name=libstdc++.a"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as err:
        raise TvmFfiWheelError(f"{cxx} does not run ({err})", "check the C++ compiler") from None
    if not os.path.isabs(found) or not os.path.isfile(found):
        raise TvmFfiWheelError(
            f"{cxx} has no static libstdc++ (libstdc++.a), which cxx-runtime = \"libstdc++\" links in",
            "install GCC's libstdc++ development package (Debian: libstdc++-12-dev; RHEL: libstdc++-static)"
            + ('; it is the default because the project\'s CMake files or sources build CUDA: for a build without '
               'CUDA, set cxx-runtime = "libc++"' if guessed else ""),
        )
    return Path(found)


def plan_toolchain(
    settings: ToolchainSettings,
    *,
    uses_cuda: bool,
    user_defines: Mapping[str, str],
    environ: Mapping[str, str],
    search_path: Sequence[str],
    project_cuda: bool = False,
) -> ToolchainPlan:
    """Check the toolchain settings before anything compiles."""
    checked = check_toolchain_settings(settings, uses_cuda, environ, project_cuda)
    host = host_architecture()
    target = settings.arch or host
    if checked is None:
        return ToolchainPlan("system", target, host)
    wanted, runtime = checked
    ours = ["CMAKE_TOOLCHAIN_FILE", "CMAKE_C_COMPILER", "CMAKE_CXX_COMPILER"]
    if runtime == "libstdc++":
        ours += ["CMAKE_CUDA_HOST_COMPILER", "CUDAHOSTCXX"]
    for name in ours:
        if name in user_defines or name in environ:
            raise TvmFfiWheelError(
                f'toolchain = "zig" sets {name}, which the project or the environment already sets',
                f'remove that {name}, or set toolchain = "system"',
            )
    # With libc++, zig's clang compiles: compilers named by CC and CXX would be ignored. (With
    # libstdc++ they are the system compilers the wrappers hand compiles to.)
    named = [name for name in ("CC", "CXX") if environ.get(name)] if runtime == "libc++" else []
    glibc, cxx_runtime = settings.glibc, settings.cxx_runtime
    if named:
        raise TvmFfiWheelError(
            f'toolchain = "zig" with cxx-runtime = "libc++" compiles with zig\'s clang, but the environment '
            f"names other compilers ({', '.join(f'{n}={environ[n]}' for n in named)})",
            f"unset {' and '.join(named)} for this build, or set cxx-runtime = \"libstdc++\" to compile with "
            "them (zig then links)" if isinstance(wanted, Version) else f"unset {' and '.join(named)} for this build",
        )
    zig = find_zig(search_path) or kept_zig(environ)
    if zig is None:
        raise TvmFfiWheelError(
            'toolchain = "zig", but the ziglang package is not installed in the build environment',
            f'build with build isolation (it installs it), or pip install "{ZIG_REQUIREMENT}"',
        )
    if isinstance(wanted, OsTarget):
        return ToolchainPlan("zig", wanted.arch, host, None, zig, runtime, os_target=wanted)
    known = [v for v in zig_glibc_versions(zig) if v >= OLDEST_GLIBC]
    if wanted not in known:  # Version("2.17") == Version("2.17.0")
        raise TvmFfiWheelError(
            f"glibc = {glibc!r}: zig cannot target it; tvmffi-wheel builds for glibc {known[0]} to {known[-1]} "
            f"with this zig",
            f'choose one of those, e.g. glibc = "{known[0]}" (manylinux2014) or "2.28"',
        )
    if runtime == "libc++":
        return ToolchainPlan("zig", target, host, wanted, zig, runtime)
    compilers = (_system_compiler(["cc", "gcc"], "CC", environ), _system_compiler(["c++", "g++"], "CXX", environ))
    guessed = not cxx_runtime and not uses_cuda  # chosen because the project's sources build CUDA
    return ToolchainPlan("zig", target, host, wanted, zig, runtime, compilers, _static_libstdcxx(compilers[1], guessed))


def cuda_refusal(plan: ToolchainPlan) -> TvmFfiWheelError:
    """The message for a project that enabled CUDA in a build whose C++ runtime or target cannot
    build it (the CUDA host compiler zig_wrappers.py gives such a build noted it)."""
    turn_off = "turn the project's CUDA off for this build with its own CMake option (-C cmake.define.<option>=...)"
    if plan.os_target is not None:
        why = cuda_refusal_reason(plan.os_target)
        return TvmFfiWheelError(f'the project enables CUDA (CMake\'s CUDA language), but os = "{plan.os_target.os}" '
                                f"cannot build CUDA: {why}",
                                f"{turn_off}, and build the CUDA kernels for Linux")
    if plan.cross:
        return TvmFfiWheelError(f"the project enables CUDA (CMake's CUDA language), but arch = {plan.arch!r} builds "
                                f"for another architecture, and this machine's nvcc builds for {plan.host_arch}",
                                f"build on an {plan.arch} machine, or {turn_off}")
    return TvmFfiWheelError(
        "the project enables CUDA (CMake's CUDA language), but cxx-runtime = \"libc++\" cannot build it: nvcc "
        "does not take zig's clang as its host compiler, and CUDA's headers refuse LLVM's libc++",
        'set cxx-runtime = "libstdc++": gcc and nvcc compile, and zig links against the target glibc',
    )
