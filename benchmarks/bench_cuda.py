"""CUDA builds at release scale: the compiler cache, and nvcc's --threads.

A generated CUDA project (four architectures, many templated kernels in one source file, so
that nvcc dominates the build) is built in isolated build environments, as `pip wheel .`
and cibuildwheel build it:

- cache: a cold build with `cache = "sccache"` and an empty cache folder, then a second
  isolated build of the same checkout (a new build environment, so a new path); also a
  build without any cache, to show what sccache costs a cold build;
- threads: `cuda.threads = 1` against the default (nvcc's --threads = the CPUs the build
  may use), without a cache.

Each pair runs alternately, --rounds times; medians are printed.

    python benchmarks/bench_cuda.py --rounds 2
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from _common import backend_wheel, build_from_sdist, isolated_build, machine, median

ARCHITECTURES = "75-real;80-real;90-real;120"  # SASS for four GPUs, PTX for newer ones
SCCACHE_STATS = re.compile(r"sccache: \d+ compile requests, (\d+) cache hits, (\d+) misses")

PYPROJECT = """\
[build-system]
requires = ["tvmffi-wheel"]
build-backend = "tvmffi_wheel.build"

[project]
name = "bench-kernels"
version = "1.0"
dependencies = ["apache-tvm-ffi"]

[tool.scikit-build]
wheel.packages = ["python/bench_kernels"]

[tool.tvmffi-wheel]
cuda.architectures = "{architectures}"
"""

CMAKELISTS = """\
cmake_minimum_required(VERSION 3.20)
project(bench_kernels LANGUAGES CXX CUDA)
find_package(tvm_ffi CONFIG REQUIRED)
include(TvmFfiWheel)
add_library(bench_kernels SHARED src/api.cc src/kernels.cu)
target_compile_features(bench_kernels PRIVATE cxx_std_17)
tvm_ffi_configure_target(bench_kernels)
tvmffi_wheel_configure_target(bench_kernels DESTINATION bench_kernels)
install(TARGETS bench_kernels LIBRARY DESTINATION bench_kernels)
"""

API = """\
#include <tvm/ffi/function.h>
#include <cstdint>
namespace bench_kernels {
int64_t KernelCount() { return %d; }
}  // namespace bench_kernels
TVM_FFI_DLL_EXPORT_TYPED_FUNC(kernel_count, bench_kernels::KernelCount);
"""

KERNEL_TEMPLATE = """\
#include <cstdint>
// A stencil whose loop nvcc unrolls: each instantiation is real work for cicc and ptxas.
template <int N, typename T>
__global__ void stencil(const T* __restrict__ x, T* __restrict__ y, int64_t n) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  T acc = T(0);
#pragma unroll
  for (int k = 0; k < N; ++k) acc += x[(i + k) % n] * T(k + 1) / T(N + k);
  y[i] = acc;
}
"""


def write_project(folder: Path, kernels: int) -> Path:
    """The generated project: ``kernels`` instantiations of one templated kernel."""
    (folder / "src").mkdir(parents=True)
    (folder / "python" / "bench_kernels").mkdir(parents=True)
    (folder / "python" / "bench_kernels" / "__init__.py").write_text("")
    (folder / "pyproject.toml").write_text(PYPROJECT.format(architectures=ARCHITECTURES))
    (folder / "CMakeLists.txt").write_text(CMAKELISTS)
    (folder / "src" / "api.cc").write_text(API % kernels)
    types = ("float", "double")
    lines = [KERNEL_TEMPLATE]
    for index in range(kernels):
        width, element = 8 + 4 * (index // len(types)), types[index % len(types)]
        lines.append(f"template __global__ void stencil<{width}, {element}>(const {element}*, {element}*, int64_t);")
    (folder / "src" / "kernels.cu").write_text("\n".join(lines) + "\n")
    return folder


def sccache_counts(output: str) -> str:
    found = SCCACHE_STATS.search(output)
    return f"{found.group(1)} hits, {found.group(2)} misses" if found else "no sccache statistics"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--kernels", type=int, default=48, help="kernel instantiations (default 48)")
    parser.add_argument("--paths-only", action="store_true", help="stop after the new-source-path builds")
    args = parser.parse_args()
    if shutil.which("nvcc") is None:
        sys.exit("bench_cuda needs nvcc on PATH")
    print(f"machine: {machine()}; CPUs this process may use: {len(os.sched_getaffinity(0))}")
    print(f"project: {args.kernels} kernel instantiations in one .cu file, architectures {ARCHITECTURES}")
    with tempfile.TemporaryDirectory(prefix="bench-cuda-") as tmp_text:
        tmp = Path(tmp_text)
        project = write_project(tmp / "project", args.kernels)
        env = dict(os.environ, PIP_FIND_LINKS=str(backend_wheel(tmp / "backend")), PIP_DISABLE_PIP_VERSION_CHECK="1")
        out = tmp / "dist"
        isolated_build(project, out, env)  # warms pip's own cache (downloads), so no round pays for them

        none, cold, cached = [], [], []
        for round_ in range(args.rounds):
            cache_env = dict(env, SCCACHE_DIR=str(tmp / f"sccache-{round_}"))
            seconds, _ = isolated_build(project, out, env)
            none.append(seconds)
            seconds, output = isolated_build(project, out, cache_env, "-C", "tvmffi-wheel.cache=sccache")
            cold.append(seconds)
            print(f"  round {round_ + 1}: no cache {none[-1]:.1f} s; sccache cold {seconds:.1f} s "
                  f"({sccache_counts(output)})", end="")
            seconds, output = isolated_build(project, out, cache_env, "-C", "tvmffi-wheel.cache=sccache")
            cached.append(seconds)
            print(f", second isolated build {seconds:.1f} s ({sccache_counts(output)})")
        print(f"cache: cold {median(cold):.1f} s, second isolated build {median(cached):.1f} s: "
              f"{median(cached) / median(cold):.2f}x (no cache at all: {median(none):.1f} s)")

        # Each of these builds compiles the sources from a new path: `python -m build` unpacks
        # the sdist into a new temporary folder, and a second checkout lives elsewhere.
        second_checkout = Path(shutil.copytree(project, tmp / "second checkout"))
        sdist_cold, sdist_again, elsewhere = [], [], []
        for round_ in range(args.rounds):
            cache_env = dict(env, SCCACHE_DIR=str(tmp / f"sccache-paths-{round_}"))
            seconds, output = build_from_sdist(project, out, cache_env, "-Ctvmffi-wheel.cache=sccache")
            sdist_cold.append(seconds)
            print(f"  round {round_ + 1}: python -m build, cold {seconds:.1f} s ({sccache_counts(output)})", end="")
            seconds, output = build_from_sdist(project, out, cache_env, "-Ctvmffi-wheel.cache=sccache")
            sdist_again.append(seconds)
            print(f", again {seconds:.1f} s ({sccache_counts(output)})", end="")
            seconds, output = isolated_build(second_checkout, out, cache_env, "-C", "tvmffi-wheel.cache=sccache")
            elsewhere.append(seconds)
            print(f"; pip wheel of a second checkout {seconds:.1f} s ({sccache_counts(output)})")
        print(f"paths: python -m build cold {median(sdist_cold):.1f} s, again {median(sdist_again):.1f} s: "
              f"{median(sdist_again) / median(sdist_cold):.2f}x; second checkout {median(elsewhere):.1f} s: "
              f"{median(elsewhere) / median(cold):.2f}x of the cold pip wheel")
        if args.paths_only:
            return

        one, default = [], []
        for round_ in range(args.rounds):
            seconds, _ = isolated_build(project, out, env, "-C", "tvmffi-wheel.cuda.threads=1")
            one.append(seconds)
            seconds, _ = isolated_build(project, out, env)
            default.append(seconds)
            print(f"  round {round_ + 1}: --threads 1 {one[-1]:.1f} s; default "
                  f"(--threads {len(os.sched_getaffinity(0))}) {seconds:.1f} s")
        print(f"threads: --threads 1 {median(one):.1f} s, default {median(default):.1f} s: "
              f"{median(default) / median(one):.2f}x")


if __name__ == "__main__":
    main()
