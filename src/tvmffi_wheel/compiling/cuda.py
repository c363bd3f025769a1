"""CUDA: find and query the toolkit, check the architecture list, and plan a CUDA build.

It runs nvcc (`--version`, `--list-gpu-arch`) to learn what the toolkit can build; the
rest is decisions. Reading device code is in inspecting/, checking it against the declared
architectures in deciding/device_inventory.py, NVIDIA's libraries in deciding/nvidia.py,
and the wiring into CMake in build.py.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.version import Version

from tvmffi_wheel.common.cuda import Architecture, CudaFacts, CudaRuntime, ToolkitSource, parse_architectures
from tvmffi_wheel.common.modes import CudaRuntimeOption, CudaToolkitOption
from tvmffi_wheel.compiling.settings import CudaSettings
from tvmffi_wheel.errors import TvmFfiWheelError

# CMAKE_CUDA_RUNTIME_LIBRARY's spelling of each runtime mode.
RUNTIME_LIBRARY: dict[CudaRuntime, str] = {"static": "Static", "shared": "Shared", "none": "None"}


# --------------------------------------------------------------------------- toolkit


@dataclasses.dataclass(frozen=True)
class Toolkit:
    nvcc: Path
    version: Version  # e.g. 13.0
    architectures: frozenset[int]  # what `nvcc --list-gpu-arch` offers, e.g. {75, 80, ...}

    @property
    def major(self) -> int:
        return self.version.major


DEFAULT_CUDA_ROOTS = ("/usr/local/cuda",)


def find_nvcc(environ: Mapping[str, str], default_roots: Sequence[str] = DEFAULT_CUDA_ROOTS) -> Path | None:
    """nvcc as CMake would pick it: $CUDACXX, then PATH, then $CUDA_HOME/$CUDA_PATH, then /usr/local/cuda."""
    if environ.get("CUDACXX"):
        return Path(environ["CUDACXX"])
    found = shutil.which("nvcc", path=environ.get("PATH", ""))
    if found:
        return Path(found)
    for root in (environ.get("CUDA_HOME"), environ.get("CUDA_PATH"), *default_roots):
        if root and (Path(root) / "bin" / "nvcc").is_file():
            return Path(root) / "bin" / "nvcc"
    return None


@functools.lru_cache(maxsize=4)
def _query(nvcc: Path) -> Toolkit:
    try:
        version_text = subprocess.run(
            [str(nvcc), "--version"], capture_output=True, text=True, check=True
        ).stdout
        archs_text = subprocess.run(
            [str(nvcc), "--list-gpu-arch"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise TvmFfiWheelError(f"{nvcc} does not run ({err})", "check the CUDA installation") from None
    match = re.search(r"release (\d+\.\d+)", version_text)
    if match is None:
        raise TvmFfiWheelError(f"cannot read the CUDA version from `{nvcc} --version`")
    archs = frozenset(int(m) for m in re.findall(r"compute_(\d+)", archs_text))
    return Toolkit(nvcc, Version(match.group(1)), archs)


def pip_toolkit_requirements(version: str) -> list[str]:
    """NVIDIA's wheels that together make a working nvcc for CUDA ``version`` (e.g. "13.0").

    nvcc alone is not enough: cicc comes from nvvm, the host headers from crt, and
    cuda_runtime.h needs cccl; the runtime provides libcudart and libcudadevrt.
    """
    release = _pip_cuda_release(version)
    names = ["nvidia-cuda-nvcc", "nvidia-nvvm", "nvidia-cuda-crt", "nvidia-cuda-cccl", "nvidia-cuda-runtime"]
    return [f"{name}=={release.major}.{release.minor}.*" for name in names]


def _pip_cuda_release(version: str) -> Version:
    try:
        release = Version(version)
    except ValueError:
        release = None
    if release is None or len(release.release) < 2:
        raise TvmFfiWheelError(
            f"cuda.version {version!r} is not a CUDA release",
            'write it as major.minor, e.g. cuda.version = "13.0"',
        )
    if release.major < 13:
        # nvidia-cuda-nvcc-cu12 holds ptxas and libnvvm only: no nvcc, no cicc.
        raise TvmFfiWheelError(
            f"cuda.version = {version!r} with cuda.toolkit = \"pip\": NVIDIA publishes no nvcc for "
            "CUDA 12 on PyPI (nvidia-cuda-nvcc-cu12 holds ptxas only)",
            f'build with a CUDA {version} toolkit installed: cuda.toolkit = "system" and CUDACXX '
            f"pointing at its nvcc (e.g. /usr/local/cuda-{version}/bin/nvcc); or use CUDA 13 or newer",
        )
    return release


def pip_toolkit_root(version: str, search_path: Sequence[str]) -> Path:
    """The toolkit tree the pip wheels installed into the build environment."""
    release = _pip_cuda_release(version)
    for entry in search_path:
        root = Path(entry) / f"nvidia/cu{release.major}"
        if (root / "bin" / "nvcc").is_file():
            return root
    wheels = " ".join(f'"{r}"' for r in pip_toolkit_requirements(version))
    raise TvmFfiWheelError(
        f"cuda.toolkit is pip, but NVIDIA's CUDA {version} toolkit wheels are not installed in "
        "the build environment",
        f"build with build isolation (it installs them), or pip install {wheels}",
    )


def compression_flag(toolkit: Toolkit) -> str:
    return "--compress-mode=size" if toolkit.major >= 13 else "-Xfatbin=-compress-all"


# --------------------------------------------------------------------------- architectures


def validate_architectures(
    text: str, toolkit: Toolkit, *, allow_all: bool
) -> tuple[list[Architecture] | None, list[str]]:
    """Refuse what cannot make a correct wheel; returns (entries or None for all, warnings)."""
    parsed = parse_architectures(text)
    if parsed == "native":
        raise TvmFfiWheelError(
            "CUDA architectures `native` describe this build machine's GPU, not your users'",
            "list the architectures to ship, e.g. cuda.architectures = "
            '"75-real;80-real;90-real;120-virtual"',
        )
    if isinstance(parsed, str):
        if not allow_all:
            raise TvmFfiWheelError(
                f"CUDA architectures `{parsed}` compile for every architecture CUDA "
                f"{toolkit.version} knows, which makes very large wheels",
                "list the architectures to ship, or confirm with "
                "cuda.allow-all-architectures = true",
            )
        return None, []
    for entry in parsed:
        if entry.number not in toolkit.architectures:
            known = ", ".join(str(a) for a in sorted(toolkit.architectures))
            raise TvmFfiWheelError(
                f"CUDA {toolkit.version} cannot build sm_{entry.number} (`{entry}`)",
                f"CUDA {toolkit.version} builds: {known}",
            )
        if entry.variant == "f" and (toolkit.version < Version("12.9") or entry.number < 100):
            raise TvmFfiWheelError(
                f"`{entry}`: family targets (`f`) need CUDA 12.9 or newer and sm_100 or newer; "
                f"this is CUDA {toolkit.version}",
            )
        if entry.variant == "a" and entry.number < 90:
            raise TvmFfiWheelError(f"`{entry}`: arch-specific targets (`a`) start at sm_90")
    warnings = []
    if not any(e.ptx for e in parsed):
        warnings.append(
            "no PTX target in the CUDA architectures: GPUs newer than "
            f"sm_{max(e.number for e in parsed)} cannot run these kernels; add one, "
            f"e.g. {max(e.number for e in parsed)}-virtual"
        )
    if any(e.variant == "a" for e in parsed):
        warnings.append("`a` targets only run on that exact architecture, not on newer ones")
    return parsed, warnings


# --------------------------------------------------------------------------- the build


@dataclasses.dataclass(frozen=True)
class CudaPlan:
    """What the backend passes to CMake for CUDA, and what it then checks and records."""

    defines: dict[str, str]  # CMake variables to pass (never one the user set)
    toolkit_environment: dict[str, str]  # set while CMake runs (the pip toolkit's CUDACXX, ...)
    library_path: str | None  # appended to LIBRARY_PATH (the pip toolkit's lib folder)
    compile_flags: tuple[str, ...]  # the backend's own CUDAFLAGS (fatbin compression)
    declared: tuple[Architecture, ...] | None  # the device code every binary must have
    # The toolkit the build found (None: no nvcc); `declared` says whether the build asked for CUDA.
    facts: CudaFacts | None
    warnings: tuple[str, ...]

    @property
    def declared_facts(self) -> CudaFacts | None:
        """The facts of a build that asked for CUDA (None: none asked, whether or not nvcc is here)."""
        return self.facts if self.facts is not None and self.facts.declared else None

    def cuda_flags(self, host_flags: Sequence[str]) -> str:
        """Everything the backend adds to CUDAFLAGS, as one shell-quoted string: its own
        flags, then the host compiler's flags, which nvcc passes on through -Xcompiler.

        Quoted twice: CMake's generators run the nvcc command through a shell, and nvcc runs
        the host compiler through another, so a flag holding a path with a space survives both.
        """
        return shlex.join([*self.compile_flags, *(f"-Xcompiler={shlex.quote(flag)}" for flag in host_flags)])


def _runtime_from_define(value: str) -> CudaRuntime:
    mode = value.strip().lower()
    if mode not in RUNTIME_LIBRARY:
        raise TvmFfiWheelError(
            f"CMAKE_CUDA_RUNTIME_LIBRARY={value!r} is not Static, Shared or None",
            'or set tvmffi-wheel.cuda.runtime = "static" instead',
        )
    return mode


def declared_architectures(
    architectures: str, user_defines: Mapping[str, str], environ: Mapping[str, str]
) -> str:
    """The architecture list from wherever it was given: our option, CMake's variable, CUDAARCHS."""
    return architectures or user_defines.get("CMAKE_CUDA_ARCHITECTURES") or environ.get("CUDAARCHS", "")


def uses_pip_toolkit(
    toolkit: CudaToolkitOption,
    declared: str,
    environ: Mapping[str, str],
    default_roots: Sequence[str] = DEFAULT_CUDA_ROOTS,
) -> bool:
    return toolkit == "pip" or (
        toolkit == "" and bool(declared) and find_nvcc(environ, default_roots) is None
    )


def _architecture_defines(architectures: str, user_defines: Mapping[str, str]) -> dict[str, str]:
    user_archs = user_defines.get("CMAKE_CUDA_ARCHITECTURES")
    if architectures and user_archs is not None and user_archs != architectures:
        raise TvmFfiWheelError(
            f"cuda.architectures is {architectures!r} but CMAKE_CUDA_ARCHITECTURES is "
            f"{user_archs!r}",
            "set the architectures in one place",
        )
    if architectures and user_archs is None:
        return {"CMAKE_CUDA_ARCHITECTURES": architectures}
    return {}


def _runtime_mode(runtime: CudaRuntimeOption, user_defines: Mapping[str, str]) -> CudaRuntime:
    user_runtime = user_defines.get("CMAKE_CUDA_RUNTIME_LIBRARY")
    if runtime and user_runtime and _runtime_from_define(user_runtime) != runtime:
        raise TvmFfiWheelError(
            f"cuda.runtime is {runtime!r} but CMAKE_CUDA_RUNTIME_LIBRARY is {user_runtime!r}",
            "set the runtime in one place",
        )
    if runtime:
        return runtime
    return _runtime_from_define(user_runtime) if user_runtime else "static"


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _compile_flags(toolkit: Toolkit, user_flags: str, compress: bool, declared: str, threads: int) -> tuple[str, ...]:
    """The backend's own CUDAFLAGS: fatbin compression, and with more than one architecture
    nvcc's --threads, so the architectures compile in parallel (unless the user set either)."""
    flags = []
    compression = compression_flag(toolkit)
    if compress and compression not in user_flags:
        flags.append(compression)
    entries = [e for e in declared.replace(",", ";").split(";") if e.strip()]
    several = declared in ("all", "all-major") or len(entries) > 1
    if several and not re.search(r"(^|\s)(--threads|-t)(\s|=|$)", user_flags):
        flags += ["--threads", str(threads or available_cpus())]
    return tuple(flags)


def _pip_toolkit_environment(version: str, search_path: Sequence[str], environ: Mapping[str, str]) -> dict[str, str]:
    if environ.get("CUDACXX"):
        raise TvmFfiWheelError(
            f"cuda.toolkit is pip, but CUDACXX points at {environ['CUDACXX']}",
            "unset CUDACXX, or set cuda.toolkit = \"system\" to use that nvcc",
        )
    root = pip_toolkit_root(version, search_path)
    return {"CUDACXX": str(root / "bin" / "nvcc"), "CUDAToolkit_ROOT": str(root)}


def plan_cuda(
    settings: CudaSettings,
    *,
    search_path: Sequence[str],
    user_defines: Mapping[str, str],
    environ: Mapping[str, str],
    default_roots: Sequence[str] = DEFAULT_CUDA_ROOTS,
) -> CudaPlan:
    """Validate the CUDA options before anything compiles, and say what to pass to CMake."""
    architectures, runtime, version = settings.architectures, settings.runtime, settings.version
    declared_text = declared_architectures(architectures, user_defines, environ)
    toolkit_environment: dict[str, str] = {}
    pip_toolkit = uses_pip_toolkit(settings.toolkit, declared_text, environ, default_roots)
    if pip_toolkit:
        toolkit_environment = _pip_toolkit_environment(version, search_path, environ)
        environ = {**environ, **toolkit_environment}
    defines = _architecture_defines(architectures, user_defines)
    mode = _runtime_mode(runtime, user_defines)
    user_runtime = user_defines.get("CMAKE_CUDA_RUNTIME_LIBRARY")
    if user_runtime is None:
        # Always explicit: tvm-ffi's CMake package quietly picks Shared when it is unset.
        defines["CMAKE_CUDA_RUNTIME_LIBRARY"] = RUNTIME_LIBRARY[mode]

    nvcc = find_nvcc(environ, default_roots)
    if nvcc is None and (declared_text or (mode == "shared" and runtime)):
        raise TvmFfiWheelError(
            "nvcc is not found ($CUDACXX, PATH, $CUDA_HOME, /usr/local/cuda), but the project "
            "sets CUDA architectures or the shared CUDA runtime",
            'set tvmffi-wheel.cuda.toolkit = "pip" to build with NVIDIA\'s toolkit wheels, or '
            "install the CUDA toolkit and point CUDACXX at its nvcc",
        )
    if nvcc is None:  # not a CUDA build
        return CudaPlan(defines, toolkit_environment, None, (), None, None, ())
    toolkit = _query(nvcc)
    if not environ.get("CUDACXX") and shutil.which("nvcc", path=environ.get("PATH", "")) is None:
        # Found through $CUDA_HOME, $CUDA_PATH or a default root, where CMake does not look.
        toolkit_environment["CUDACXX"] = str(nvcc)

    architecture_list = None
    warnings: list[str] = []
    if declared_text:
        entries, warnings = validate_architectures(declared_text, toolkit, allow_all=settings.allow_all_architectures)
        architecture_list = tuple(entries) if entries is not None else None
    compile_flags = _compile_flags(toolkit, environ.get("CUDAFLAGS", ""), settings.compress, declared_text,
                                   settings.threads)
    source: ToolkitSource = "pip" if pip_toolkit else "system"
    declared = bool(declared_text or runtime or user_runtime)
    facts = CudaFacts(str(toolkit.version), source, declared_text, mode, settings.variant, declared)
    # The pip wheels' nvcc.profile looks for libraries in lib64; the linker reads LIBRARY_PATH.
    library_path = str(Path(toolkit_environment["CUDAToolkit_ROOT"]) / "lib") if pip_toolkit else None
    return CudaPlan(
        defines=defines,
        toolkit_environment=toolkit_environment,
        library_path=library_path,
        compile_flags=compile_flags,
        declared=architecture_list,
        facts=facts,
        warnings=tuple(warnings),
    )
