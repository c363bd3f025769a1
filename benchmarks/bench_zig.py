"""Building example_project with zig (glibc 2.17, and aarch64) against the system's gcc; with
--cuda, its CUDA kernel linked by zig for glibc 2.28 against gcc's link.

Every build is an isolated `pip wheel` of the same checkout, as users and cibuildwheel run
it. "Cold" is a machine's first zig build: an empty cache folder (XDG_CACHE_HOME, where zig
keeps the libc++ and C runtime it builds for a target, and tvmffi-wheel its copy of zig);
"warm" is the next build with that folder. pip's own download cache is warmed first, so
no round pays for downloads.

    python benchmarks/bench_zig.py --rounds 2
    python benchmarks/bench_zig.py --rounds 2 --cuda
    python benchmarks/bench_zig.py --rounds 5 --warm-only   # warm builds only, alternating
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from _common import REPO, backend_wheel, isolated_build, machine, median

VARIANTS = {
    "gcc (system)": [],
    "zig, x86_64, glibc 2.17": ["-C", "tvmffi-wheel.toolchain=zig"],
    "zig, aarch64, glibc 2.17": ["-C", "tvmffi-wheel.toolchain=zig", "-C", "tvmffi-wheel.arch=aarch64"],
}
CUDA = ["-C", "cmake.define.EXAMPLE_KERNELS_CUDA=ON", "-C", "tvmffi-wheel.cuda.architectures=75-real;90-virtual"]
CUDA_VARIANTS = {
    "gcc + nvcc (system)": CUDA,
    "gcc + nvcc, zig link, glibc 2.28": [*CUDA, "-C", "tvmffi-wheel.toolchain=zig", "-C", "tvmffi-wheel.glibc=2.28"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cuda", action="store_true", help="the example's CUDA kernel, linked by gcc or by zig")
    parser.add_argument("--warm-only", action="store_true",
                        help="fill each variant's caches once, then time warm builds only, the variants alternating")
    args = parser.parse_args()
    variants = CUDA_VARIANTS if args.cuda else VARIANTS
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-zig-") as tmp_text:
        tmp = Path(tmp_text)
        project = tmp / "example_project"
        shutil.copytree(REPO / "example_project", project, ignore=shutil.ignore_patterns("build"))
        backend = backend_wheel(tmp / "backend")
        # pip's cache stays put (it would follow XDG_CACHE_HOME): only zig's caches start empty.
        env = dict(os.environ, PIP_FIND_LINKS=str(backend), PIP_DISABLE_PIP_VERSION_CHECK="1",
                   PIP_CACHE_DIR=str(tmp / "pip-cache"))
        out = tmp / "dist"
        for options in variants.values():  # pip's download cache, and nothing else, warmed
            isolated_build(project, out, dict(env, XDG_CACHE_HOME=str(tmp / "warm-up")), *options)
        shutil.rmtree(tmp / "warm-up")
        if args.warm_only:
            warm_only(project, out, env, tmp, variants, args.rounds)
            return
        times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in variants}
        for round_ in range(args.rounds):
            for name, options in variants.items():
                caches = tmp / f"cache-{round_}-{len(times[name][0])}-{name.split()[0]}"
                cache_env = dict(env, XDG_CACHE_HOME=str(caches))
                cold, _ = isolated_build(project, out, cache_env, *options)
                warm, log = isolated_build(project, out, cache_env, *options)
                times[name][0].append(cold)
                times[name][1].append(warm)
                shutil.rmtree(caches, ignore_errors=True)
                wheel = log.rpartition("filename=")[2].split()[0] if "filename=" in log else "?"
                print(f"  round {round_ + 1}: {name}: cold {cold:.1f} s, warm {warm:.1f} s, {wheel}")
        for name, (cold_times, warm_times) in times.items():
            print(f"{name}: cold {median(cold_times):.1f} s, warm {median(warm_times):.1f} s")


def warm_only(project: Path, out: Path, env: dict[str, str], tmp: Path, variants: dict[str, list[str]],
              rounds: int) -> None:
    """Warm builds of each variant, alternating; each ratio against the first variant (gcc)."""
    caches = {name: dict(env, XDG_CACHE_HOME=str(tmp / f"cache-{index}")) for index, name in enumerate(variants)}
    for name, options in variants.items():
        isolated_build(project, out, caches[name], *options)  # cold: fills that variant's caches
    warm: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(rounds):
        for name, options in variants.items():
            seconds, _ = isolated_build(project, out, caches[name], *options)
            warm[name].append(seconds)
        print(f"  round {round_ + 1}: " + ", ".join(f"{name} {times[-1]:.1f} s" for name, times in warm.items()))
    baseline = median(next(iter(warm.values())))
    for name, times in warm.items():
        print(f"{name}: warm {median(times):.1f} s, {median(times) / baseline:.2f}x")


if __name__ == "__main__":
    main()
