"""Build the example project: through tvmffi-wheel, against scikit-build-core + auditwheel.

Both run in this environment without build isolation (so neither pays for creating a build
environment), alternately, from clean copies of example_project/. The scikit-build-core side
is the same project with only its build backend changed, followed by
`auditwheel repair --exclude libtvm_ffi.so*`. A compiler launcher times every compile and
link, to report the share of the backend's time spent outside the compiler.

    python benchmarks/bench_build.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from _common import BIN, REPO, machine, median, run_measured

LAUNCHER = """#!/bin/sh
start=$(date +%s%N)
"$@"
code=$?
echo $(( $(date +%s%N) - start )) >> "$TVMFFI_BENCH_COMPILER_LOG"
exit $code
"""


def compiler_seconds(log: Path) -> float:
    if not log.exists():
        return 0.0
    return sum(int(line) for line in log.read_text().split()) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        work = Path(tmp)
        launcher = work / "time-compiler.sh"
        launcher.write_text(LAUNCHER)
        launcher.chmod(0o755)
        base_env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
                        CMAKE_CXX_COMPILER_LAUNCHER=str(launcher),
                        CMAKE_CXX_LINKER_LAUNCHER=str(launcher))
        pip: list[str | Path] = [BIN / "python", "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-q"]
        ours, theirs, share = [], [], []
        for round_index in range(args.rounds):
            # tvmffi-wheel
            project = work / f"ours-{round_index}"
            shutil.copytree(REPO / "example_project", project, ignore=shutil.ignore_patterns("build"))
            log = work / f"ours-{round_index}.log"
            env = dict(base_env, TVMFFI_BENCH_COMPILER_LOG=str(log))
            seconds, _, _ = run_measured([*pip, "-w", project / "dist", project], env=env)
            ours.append(seconds)
            share.append(1 - compiler_seconds(log) / seconds)
            # scikit-build-core, then auditwheel
            project = work / f"theirs-{round_index}"
            shutil.copytree(REPO / "example_project", project, ignore=shutil.ignore_patterns("build"))
            pyproject = project / "pyproject.toml"
            pyproject.write_text(pyproject.read_text().replace(
                'requires = ["tvmffi-wheel"]\nbuild-backend = "tvmffi_wheel.build"',
                'requires = ["scikit-build-core"]\nbuild-backend = "scikit_build_core.build"'))
            env = dict(base_env, TVMFFI_BENCH_COMPILER_LOG=str(work / f"theirs-{round_index}.log"))
            built, _, _ = run_measured([*pip, "-w", project / "dist", project], env=env)
            wheel = next((project / "dist").glob("*.whl"))
            repaired, _, _ = run_measured(
                [BIN / "python", "-m", "auditwheel", "repair", "--exclude", "libtvm_ffi.so*",
                 "-w", project / "wheelhouse", wheel], env=env)
            theirs.append(built + repaired)
            print(f"round {round_index + 1}: tvmffi-wheel {ours[-1]:.2f} s | scikit-build-core "
                  f"{built:.2f} s + auditwheel {repaired:.2f} s = {theirs[-1]:.2f} s")
        a, b = median(ours), median(theirs)
        print(f"median: tvmffi-wheel {a:.2f} s, scikit-build-core + auditwheel {b:.2f} s, "
              f"ratio {a / b:.2f} (below 1: the backend is faster)")
        print(f"share of the backend's time outside the compiler and linker: {median(share):.0%}")


if __name__ == "__main__":
    main()
