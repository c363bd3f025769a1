"""Time two shell commands alternately (A B A B ...): wall and CPU seconds, peak memory, and the
ratio A/B pair by pair, so that a machine whose speed drifts moves both sides alike.

    python benchmarks/alternate.py -n 7 "COMMAND A" "COMMAND B"

Each command runs once first, uncounted. Figures are min, median and max over the runs;
quote the median. Peak memory is the largest process a run waited for (the kernel's
accounting of each finished child).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time

from _common import median


def run_once(command: str) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak MiB) of ``command`` run by /bin/sh."""
    start = time.perf_counter()
    process = subprocess.Popen(["/bin/sh", "-c", command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command!r} failed ({process.returncode})")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--runs", type=int, default=7)
    parser.add_argument("a", metavar="COMMAND_A")
    parser.add_argument("b", metavar="COMMAND_B")
    args = parser.parse_args()
    run_once(args.a)
    run_once(args.b)
    results: dict[str, list[tuple[float, float, float]]] = {"A": [], "B": []}
    for _ in range(args.runs):
        results["A"].append(run_once(args.a))
        results["B"].append(run_once(args.b))

    def row(label: str, values: list[float], unit: str) -> str:
        return f"{label:12} {min(values):8.3f} {median(values):8.3f} {max(values):8.3f} {unit}"

    print(f"{'':12} {'min':>8} {'median':>8} {'max':>8}   ({args.runs} runs each)")
    for side in ("A", "B"):
        walls, cpus, peaks = zip(*results[side])
        print(row(f"{side} wall", list(walls), "s"))
        print(row(f"{side} cpu", list(cpus), "s"))
        print(row(f"{side} peak", list(peaks), "MiB"))
    ratios = [a[0] / b[0] for a, b in zip(results["A"], results["B"])]
    print(row("A/B wall", ratios, ""))


if __name__ == "__main__":
    main()
