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
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from packaging.version import InvalidVersion, Version

from tvmffi_wheel.compiling import zig_link
from tvmffi_wheel.compiling.cmake_environment import cmake_string
from tvmffi_wheel.compiling.compiler_cache import cache_home
from tvmffi_wheel.compiling.cross_os import OsTarget, check_os_settings
from tvmffi_wheel.compiling.settings import CxxRuntimeOption, TargetArch, Toolchain
from tvmffi_wheel.compiling.zig_copy import ZIG_REQUIREMENT, kept_zig, stable_zig
from tvmffi_wheel.errors import TvmFfiWheelError, warn

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
    toolchain: Toolchain, arch: TargetArch, glibc: str, cxx_runtime: CxxRuntimeOption, uses_cuda: bool,
    os_name: str = "", environ: Mapping[str, str] | None = None,
) -> tuple[Version | OsTarget, CxxRuntime] | None:
    """What can be refused before anything is installed (zig's own list needs zig): with
    zig, the glibc (or the macOS or Windows target) and the C++ runtime to link (None with
    the system toolchain)."""
    host = host_architecture()
    os_target = check_os_settings(os_name, arch, toolchain, glibc, cxx_runtime, uses_cuda, environ or {})
    if os_target is not None:
        return os_target, "libc++"
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
    runtime: CxxRuntime = cxx_runtime or ("libstdc++" if uses_cuda else "libc++")
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


def _static_libstdcxx(cxx: Path) -> Path:
    """GCC's libstdc++.a, as the compiler finds it."""
    try:
        found = subprocess.run(
            [str(cxx), "-print-file-name=libstdc++.a"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as err:
        raise TvmFfiWheelError(f"{cxx} does not run ({err})", "check the C++ compiler") from None
    if not os.path.isabs(found) or not os.path.isfile(found):
        raise TvmFfiWheelError(
            f"{cxx} has no static libstdc++ (libstdc++.a), which cxx-runtime = \"libstdc++\" links in",
            "install GCC's libstdc++ development package (Debian: libstdc++-12-dev; RHEL: libstdc++-static)",
        )
    return Path(found)


def plan_toolchain(
    *,
    toolchain: Toolchain,
    arch: TargetArch,
    glibc: str,
    cxx_runtime: CxxRuntimeOption,
    uses_cuda: bool,
    user_defines: Mapping[str, str],
    environ: Mapping[str, str],
    search_path: Sequence[str],
    os_name: str = "",
) -> ToolchainPlan:
    """Check the toolchain settings before anything compiles."""
    checked = check_toolchain_settings(toolchain, arch, glibc, cxx_runtime, uses_cuda, os_name, environ)
    host = host_architecture()
    target = arch or host
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
    zig = find_zig(search_path) or kept_zig(environ)
    if zig is None:
        raise TvmFfiWheelError(
            'toolchain = "zig", but the ziglang package is not installed in the build environment',
            f'build with build isolation (it installs it), or pip install "{ZIG_REQUIREMENT}"',
        )
    if isinstance(wanted, OsTarget):
        return ToolchainPlan("zig", wanted.arch, host, None, zig, runtime, os_target=wanted)
    known = zig_glibc_versions(zig)
    if wanted not in known:  # Version("2.17") == Version("2.17.0")
        raise TvmFfiWheelError(
            f"glibc = {glibc!r}: zig cannot target it (it knows glibc {known[0]} to {known[-1]})",
            "choose one of those versions",
        )
    if runtime == "libc++":
        return ToolchainPlan("zig", target, host, wanted, zig, runtime)
    compilers = (_system_compiler(["cc", "gcc"], "CC", environ), _system_compiler(["c++", "g++"], "CXX", environ))
    return ToolchainPlan("zig", target, host, wanted, zig, runtime, compilers, _static_libstdcxx(compilers[1]))


@dataclasses.dataclass(frozen=True)
class ToolchainSetup:
    """What a zig build passes to CMake: variables, and the environment its links read."""

    defines: dict[str, str]
    environment: dict[str, str]


def _wrapper(path: Path, command: Sequence[str]) -> Path:
    # exec keeps the compiler's exit status and signals; "$@" passes arguments untouched.
    path.write_text(f"#!/bin/sh\nexec {shlex.join(command)} \"$@\"\n", "utf-8")
    path.chmod(0o755)
    return path


def _zig_for_build(plan: ToolchainPlan, environ: Mapping[str, str]) -> str:
    assert plan.zig is not None
    try:
        return str(stable_zig(plan.zig, environ))
    except OSError as err:
        warn(f"zig runs from the build environment, so it rebuilds its C++ runtime ({err})")
        return str(plan.zig)


def _toolchain_file(folder: Path, comment: str, settings: Sequence[str]) -> Path:
    toolchain_file = folder / "zig-toolchain.cmake"
    toolchain_file.write_text("\n".join([f"# Generated by tvmffi-wheel: {comment}", *settings]) + "\n", "utf-8")
    return toolchain_file


def _libcxx_setup(plan: ToolchainPlan, folder: Path, zig: str) -> ToolchainSetup:
    tools = {
        "CMAKE_C_COMPILER": _wrapper(folder / "cc", [zig, "cc", "-target", plan.target]),
        "CMAKE_CXX_COMPILER": _wrapper(folder / "c++", [zig, "c++", "-target", plan.target]),
        "CMAKE_AR": _wrapper(folder / "ar", [zig, "ar"]),
        "CMAKE_RANLIB": _wrapper(folder / "ranlib", [zig, "ranlib"]),
    }
    refusal = ('tvmffi-wheel: cxx-runtime = "libc++" cannot build CUDA sources; declare '
               'cuda.architectures, or set cxx-runtime = "libstdc++"')
    no_cuda = folder / "no-cuda-host-compiler"
    no_cuda.write_text(f"#!/bin/sh\necho {shlex.quote(refusal)} >&2\nexit 1\n", "utf-8")
    no_cuda.chmod(0o755)
    lines = []
    if plan.os_target is not None:
        lines += plan.os_target.toolchain_lines()
    elif plan.cross:
        lines += ["set(CMAKE_SYSTEM_NAME Linux)", f"set(CMAKE_SYSTEM_PROCESSOR {plan.arch})"]
    lines += [f"set({name} {cmake_string(path)})" for name, path in tools.items() if "COMPILER" in name]
    # The binutils are cache entries CMake fills by searching PATH: preset them.
    lines += [f'set({name} {cmake_string(path)} CACHE FILEPATH "zig")' for name, path in tools.items()
              if "COMPILER" not in name]
    # A project that enables CUDA anyway fails at CMake's compiler check, with this message.
    lines.append(f"set(CMAKE_CUDA_HOST_COMPILER {cmake_string(no_cuda)})")
    toolchain_file = _toolchain_file(folder, f"zig's clang for {plan.target}", lines)
    return ToolchainSetup({"CMAKE_TOOLCHAIN_FILE": str(toolchain_file)}, {})


def _link_wrapper(compiler: Path, environ: Mapping[str, str]) -> Path:
    """A compiler that is ``compiler``, except that it links shared libraries with zig_link.py.

    Its text names no path of one build (those come from the environment), and it is kept at a
    path named after that text, so compiler caches, which hash the compiler and nvcc's
    arguments (-ccbin), hit across isolated builds."""
    real = shlex.quote(str(compiler))
    text = (
        "#!/bin/sh\n"
        f"# tvmffi-wheel: {compiler}, with shared libraries linked by zig (compiling/zig_link.py).\n"
        "for arg do\n"
        f"  case $arg in -c|-E|-S|-M|-MM) exec {real} \"$@\" ;; esac\n"
        "done\n"
        "for arg do\n"
        f'  case $arg in -shared) exec "${zig_link.PYTHON_VARIABLE}" -I "${zig_link.SCRIPT_VARIABLE}" "$@" ;; esac\n'
        "done\n"
        f'exec {real} "$@"\n'
    )
    folder = cache_home(environ) / "link" / hashlib.sha256(text.encode()).hexdigest()[:16]
    wrapper = folder / compiler.name
    if not wrapper.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        # Written under a temporary name and renamed: a concurrent build sees all of it or none.
        partial = folder / f".{compiler.name}.{os.getpid()}"
        partial.write_text(text, "utf-8")
        partial.chmod(0o755)
        os.replace(partial, wrapper)
    return wrapper


def _libstdcxx_setup(plan: ToolchainPlan, folder: Path, zig: str, environ: Mapping[str, str]) -> ToolchainSetup:
    assert plan.compilers is not None and plan.libstdcxx is not None and plan.glibc is not None
    shim = folder / "glibc_shim.o"
    try:
        subprocess.run([zig, "cc", "-target", plan.target, "-c", "-O2", "-fPIC", str(SHIM_SOURCE), "-o", str(shim)],
                       capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        output = getattr(err, "stderr", "") or ""
        raise TvmFfiWheelError(f"zig cannot compile tvmffi-wheel's glibc shim for {plan.target} ({err}):\n{output}",
                               f"reinstall {ZIG_REQUIREMENT}") from None
    recipe = folder / "link-recipe.json"
    recipe.write_text(json.dumps({"zig": zig, "target": plan.target, "glibc": str(plan.glibc),
                                  "libstdcxx": str(plan.libstdcxx), "shim": str(shim)}), "utf-8")
    c_wrapper, cxx_wrapper = (_link_wrapper(compiler, environ) for compiler in plan.compilers)
    lines = [
        f"set(CMAKE_C_COMPILER {cmake_string(c_wrapper)})",
        f"set(CMAKE_CXX_COMPILER {cmake_string(cxx_wrapper)})",
        # nvcc compiles host code with it; CMake links a CUDA target with it.
        f"set(CMAKE_CUDA_HOST_COMPILER {cmake_string(cxx_wrapper)})",
    ]
    comment = f"the system compilers, linking shared libraries with zig for {plan.target}"
    environment = {
        zig_link.RECIPE_VARIABLE: str(recipe),
        zig_link.PYTHON_VARIABLE: sys.executable,
        zig_link.SCRIPT_VARIABLE: zig_link.__file__,
    }
    return ToolchainSetup({"CMAKE_TOOLCHAIN_FILE": str(_toolchain_file(folder, comment, lines))}, environment)


def write_toolchain_files(plan: ToolchainPlan, folder: Path, environ: Mapping[str, str]) -> ToolchainSetup:
    """zig's compiler wrappers and a CMake toolchain file using them, in ``folder``."""
    if plan.toolchain == "system":
        return ToolchainSetup({}, {})
    folder.mkdir(parents=True, exist_ok=True)
    zig = _zig_for_build(plan, environ)
    if plan.cxx_runtime == "libstdc++":
        return _libstdcxx_setup(plan, folder, zig, environ)
    return _libcxx_setup(plan, folder, zig)
