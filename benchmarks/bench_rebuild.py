"""Rebuilds of the example project with a persistent build directory.

Full build, a rebuild with no change, and a rebuild after touching one source file, with
scikit-build-core's `build-dir` set. Timed twice: through `pip wheel --no-build-isolation`,
and by calling the backend's build_wheel hook directly (what the backend itself costs).
The touched rebuild's log shows which files were compiled again.

    python benchmarks/bench_rebuild.py
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from _common import BIN, REPO, machine, run_measured

BUILD_DIR = "build/{wheel_tag}"
HOOK = (
    "import os, sys; os.chdir(sys.argv[1]); from tvmffi_wheel.build import build_wheel; "
    f"build_wheel(sys.argv[2], {{'build-dir': '{BUILD_DIR}'}})"
)


def compiled(output: str) -> list[str]:
    return re.findall(r"Building (?:CXX|CUDA) object \S*?([^/\s]+\.o)", output)


def main() -> None:
    print(f"machine: {machine()}")
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    with tempfile.TemporaryDirectory(prefix="bench-rebuild-") as tmp:
        project = Path(tmp) / "example_project"
        shutil.copytree(REPO / "example_project", project, ignore=shutil.ignore_patterns("build"))
        out = Path(tmp) / "dist"
        # With nvcc, the CUDA kernel is built too: two sources, so "only that file" means something.
        cuda = shutil.which("nvcc") is not None
        if cuda:
            env["SKBUILD_CMAKE_DEFINE"] = "EXAMPLE_KERNELS_CUDA=ON"
            env["TVMFFI_WHEEL_CUDA_ARCHITECTURES"] = "75-real;90-virtual"
        print(f"sources: src/kernels.cc{' and src/add_one_cuda.cu' if cuda else ''}")
        pip: list[str | Path] = [BIN / "python", "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-v",
               "-C", f"build-dir={BUILD_DIR}", "-w", out, project]
        hook: list[str | Path] = [BIN / "python", "-c", HOOK, project, out]
        for label, command in (("pip wheel --no-build-isolation", pip), ("build_wheel hook", hook)):
            shutil.rmtree(project / "build", ignore_errors=True)
            full, _, _ = run_measured(command, env=env)
            same, _, output = run_measured(command, env=env)
            assert not compiled(output), compiled(output)
            source = project / "src" / "kernels.cc"
            source.write_text(source.read_text() + "\n// touched\n")
            touched, _, output = run_measured(command, env=env)
            print(f"{label}: full build {full:.2f} s, no-change rebuild {same:.2f} s, "
                  f"one file changed {touched:.2f} s (compiled again: {', '.join(compiled(output))})")


if __name__ == "__main__":
    main()
