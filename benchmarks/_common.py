"""Helpers shared by the benchmarks: timing a command with its peak memory, machine facts."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


# Runs one command and reports its peak memory: a fresh process whose only child is the
# command, so RUSAGE_CHILDREN holds that command's (and its children's) peak alone.
_MEASURE = (
    "import resource, subprocess, sys, time\n"
    "start = time.perf_counter()\n"
    "code = subprocess.call(sys.argv[1:])\n"
    "elapsed = time.perf_counter() - start\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(f'@@measured {elapsed} {peak}')\n"
    "sys.exit(code)\n"
)


def run_measured(
    command: Sequence[str | Path], *, cwd: Path | None = None, env: dict[str, str] | None = None,
    ok_codes: Sequence[int] = (0,),
) -> tuple[float, float, str]:
    """Run ``command``; return (seconds, peak resident MB of it and its children, output)."""
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, *[str(c) for c in command]],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    if result.returncode not in ok_codes:
        raise SystemExit(f"{command} failed ({result.returncode}):\n{result.stdout[-4000:]}")
    output, _, measured = result.stdout.rpartition("@@measured ")
    elapsed, peak_kb = measured.split()
    return float(elapsed), int(peak_kb) / 1024, output


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.platform()}"


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def backend_wheel(folder: Path) -> Path:
    """tvmffi-wheel's own wheel from this checkout, as a --find-links folder for isolated builds."""
    subprocess.run([BIN / "python", "-m", "pip", "wheel", "--no-deps", "-q", "-w", folder, REPO], check=True)
    return folder


def isolated_build(project: Path, out: Path, env: dict[str, str], *options: str) -> tuple[float, str]:
    """`pip wheel` of ``project`` into an emptied ``out``, isolated as users build: (seconds, output)."""
    shutil.rmtree(out, ignore_errors=True)
    command: list[str | Path] = [BIN / "python", "-m", "pip", "wheel", "--no-deps", "-v", "-w", out, *options, project]
    seconds, _, output = run_measured(command, env=env)
    return seconds, output


def build_from_sdist(project: Path, out: Path, env: dict[str, str], *options: str) -> tuple[float, str]:
    """`python -m build` of ``project``: its sdist, then the wheel built from the sdist unpacked
    into a new temporary folder (so a new source path every time): (seconds, output)."""
    shutil.rmtree(out, ignore_errors=True)
    settings = [f"-C{option[3:]}" if option.startswith("-C ") else option for option in options]
    command: list[str | Path] = [BIN / "python", "-m", "build", "-v", "--outdir", out, *settings, project]
    seconds, _, output = run_measured(command, env=env)
    return seconds, output
