"""NVIDIA's libraries: which wheel ships each, and where it installs it.

None of them is ever vendored: the driver comes from the system, the rest from NVIDIA's
wheels, which a kernel wheel then requires and reaches through a run path.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Iterable

from packaging.utils import canonicalize_name
from packaging.version import Version

from tvmffi_wheel.common.cuda import CudaFacts
from tvmffi_wheel.errors import TvmFfiWheelError


@dataclasses.dataclass(frozen=True)
class NvidiaLibrary:
    pattern: str  # SONAME pattern
    wheel: str  # CUDA 13 wheel name; CUDA 12 wheels add -cu12
    folder: str  # its folder inside site-packages, for CUDA 12
    suffixed: bool = False  # the wheel carries -cuXY for every CUDA major


CUDA_RUNTIME = NvidiaLibrary("libcudart.so*", "nvidia-cuda-runtime", "nvidia/cuda_runtime/lib")
NVIDIA_LIBRARIES = (
    CUDA_RUNTIME,
    NvidiaLibrary("libnvrtc*", "nvidia-cuda-nvrtc", "nvidia/cuda_nvrtc/lib"),
    NvidiaLibrary("libnvJitLink*", "nvidia-nvjitlink", "nvidia/nvjitlink/lib"),
    NvidiaLibrary("libcublas*", "nvidia-cublas", "nvidia/cublas/lib"),
    NvidiaLibrary("libcufft*", "nvidia-cufft", "nvidia/cufft/lib"),
    NvidiaLibrary("libcurand*", "nvidia-curand", "nvidia/curand/lib"),
    NvidiaLibrary("libcusparse*", "nvidia-cusparse", "nvidia/cusparse/lib"),
    NvidiaLibrary("libcusolver*", "nvidia-cusolver", "nvidia/cusolver/lib"),
    NvidiaLibrary("libcupti*", "nvidia-cuda-cupti", "nvidia/cuda_cupti/lib"),
    NvidiaLibrary("libnccl*", "nvidia-nccl", "nvidia/nccl/lib", suffixed=True),
    NvidiaLibrary("libcudnn*", "nvidia-cudnn", "nvidia/cudnn/lib", suffixed=True),
)


def nvidia_library(soname: str) -> NvidiaLibrary | None:
    return next((lib for lib in NVIDIA_LIBRARIES if fnmatch.fnmatchcase(soname, lib.pattern)), None)


def cuda_major_of(soname: str) -> int | None:
    """`libcublas.so.13` -> 13; None when the SONAME carries no version."""
    match = re.search(r"\.so\.(\d+)", soname)
    return int(match.group(1)) if match else None


def wheel_for(library: NvidiaLibrary, cuda_major: int) -> str:
    if library.suffixed or cuda_major < 13:
        return f"{library.wheel}-cu{cuda_major}"
    return library.wheel


def library_folder(library: NvidiaLibrary, cuda_major: int) -> str:
    """Where the NVIDIA wheel installs the library, relative to site-packages."""
    if cuda_major >= 13 and not library.suffixed:
        return f"nvidia/cu{cuda_major}/lib"
    return library.folder


def folder_of(soname: str) -> str | None:
    """The folder of the NVIDIA wheel providing ``soname``; None if it names no CUDA major."""
    library = nvidia_library(soname)
    major = cuda_major_of(soname)
    if library is None or major is None:
        return None
    return library_folder(library, major)


def runtime_requirement(toolkit_version: Version) -> str:
    """The Requires-Dist for `cuda.runtime = "shared"`: NVIDIA's runtime wheel, same major."""
    major, minor = toolkit_version.major, toolkit_version.minor
    return f"{wheel_for(CUDA_RUNTIME, major)}>={major}.{minor},<{major + 1}"


def wheel_ranges(needed: Iterable[str], toolkit: Version | None) -> dict[str, str]:
    """NVIDIA wheel (canonical name) -> the versions that provide the libraries ``needed``:
    their CUDA major, from the toolkit's minor when the build used that major."""
    ranges: dict[str, str] = {}
    for soname in needed:
        library, major = nvidia_library(soname), cuda_major_of(soname)
        if library is None or major is None:
            continue
        lowest = f"{major}.{toolkit.minor}" if toolkit is not None and toolkit.major == major else f"{major}"
        ranges[canonicalize_name(wheel_for(library, major))] = f">={lowest},<{major + 1}"
    return ranges


def cuda_build_requirements(cuda: CudaFacts | None) -> tuple[str, ...]:
    """What a CUDA build adds to Requires-Dist: NVIDIA's runtime wheel for the shared runtime."""
    if cuda is None or cuda.runtime != "shared":
        return ()
    return (runtime_requirement(Version(cuda.toolkit)),)


def nvidia_wheel_folder(soname: str, requirements: frozenset[str], shown: str) -> str:
    """The folder of the NVIDIA wheel that provides ``soname``; an error if not required."""
    library = nvidia_library(soname)
    assert library is not None
    major = cuda_major_of(soname)
    if major is None:
        raise TvmFfiWheelError(
            f"{shown} needs {soname}, which names no CUDA major version, so no NVIDIA wheel "
            "can be chosen for it",
            "link the versioned library (libfoo.so.13), e.g. through CMake's CUDAToolkit targets",
        )
    wheel = wheel_for(library, major)
    if canonicalize_name(wheel) not in requirements:
        fix = (f"add {wheel!r} to [project] dependencies; the binary then gets a run path to its "
               f"{library_folder(library, major)}")
        if library is CUDA_RUNTIME:
            # cuda.runtime sets CMAKE_CUDA_RUNTIME_LIBRARY, which an explicit
            # target_link_libraries(... CUDA::cudart) does not follow.
            fix += (", or link the static runtime: CUDA::cudart_static instead of CUDA::cudart in "
                    "target_link_libraries (targets that link no runtime explicitly follow "
                    'tvmffi-wheel.cuda.runtime = "static")')
        raise TvmFfiWheelError(
            f"{shown} needs {soname}, which tvmffi-wheel never vendors: it belongs to NVIDIA's "
            f"{wheel} wheel (CUDA {major})",
            fix,
        )
    return library_folder(library, major)
