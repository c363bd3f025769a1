"""Repair and check a release-shaped wheel: tvmffi-wheel against auditwheel and the floor.

The input (release_wheel.py): 300 tvm-ffi kernel libraries of 4 MB, each with its own data
and SONAME, run paths set. Each round runs, alternately: `auditwheel repair --exclude
'libtvm_ffi.so*'`, `tvmffi-wheel repair`, `tvmffi-wheel check` and the floor (floor.py:
inflating and hashing every member once, on every core; with --no-run-path, when every
library must be patched, also deflating each anew). Prints each run's time and peak
memory, then the medians and the ratios.

    python benchmarks/bench_release.py [--libraries 300] [--megabytes 4] [--rounds 3] [--no-run-path]
        [--old-tvmffi-wheel OTHER_VENV/bin/tvmffi-wheel]

`--old-tvmffi-wheel` adds another installation's repair and check to each round (an older
commit, to measure what a change bought).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from _common import BIN, REPO, machine, median, run_measured
from release_wheel import make_release_wheel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--libraries", type=int, default=300)
    parser.add_argument("--megabytes", type=float, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-run-path", dest="run_path", action="store_false")
    parser.add_argument("--old-tvmffi-wheel", type=Path)
    args = parser.parse_args()
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    with tempfile.TemporaryDirectory(prefix="bench-release-") as tmp:
        work = Path(tmp)
        wheel = make_release_wheel(work, args.libraries, args.megabytes, run_path=args.run_path)
        with zipfile.ZipFile(wheel) as archive:
            unpacked = sum(i.file_size for i in archive.infolist())
        print(f"machine: {machine()}")
        print(f"input: {args.libraries} libraries, {unpacked / 1e6:.0f} MB unpacked, "
              f"{wheel.stat().st_size / 1e6:.0f} MB zipped, run paths {'set' if args.run_path else 'not set'}")
        out = work / "out"
        floor_options = [] if args.run_path else ["--deflate"]
        commands: dict[str, list[str | Path]] = {
            "auditwheel repair": [BIN / "python", "-m", "auditwheel", "repair", "--exclude", "libtvm_ffi.so*",
                                  "-w", out, wheel],
            "tvmffi-wheel repair": [BIN / "tvmffi-wheel", "repair", "-w", out, wheel],
            "tvmffi-wheel check": [BIN / "tvmffi-wheel", "check", wheel],
            # without run paths every library is patched: its floor deflates every member anew
            "floor": [BIN / "python", REPO / "benchmarks" / "floor.py", wheel, *floor_options],
        }
        if args.old_tvmffi_wheel is not None:
            commands["old tvmffi-wheel repair"] = [args.old_tvmffi_wheel, "repair", "-w", out, wheel]
            commands["old tvmffi-wheel check"] = [args.old_tvmffi_wheel, "check", wheel]
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for round_index in range(args.rounds):
            for name, command in commands.items():  # alternate, so drift hits all alike
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                # check exits 1 on an unrepaired wheel: it says what a repair must do
                codes = (0, 1) if name.endswith("check") else (0,)
                seconds, peak_mb, _ = run_measured(command, env=env, ok_codes=codes)
                results[name].append((seconds, peak_mb))
                print(f"round {round_index + 1}: {name:<24} {seconds:6.2f} s  {peak_mb:7.1f} MB peak")
        medians = {name: median([s for s, _ in runs]) for name, runs in results.items()}
        for name, runs in results.items():
            print(f"median {name:<24} {medians[name]:6.2f} s  (peak {max(m for _, m in runs):.0f} MB)")
        ours = medians["tvmffi-wheel repair"]
        print(f"auditwheel / tvmffi-wheel repair: {medians['auditwheel repair'] / ours:.1f}x")
        print(f"tvmffi-wheel repair / floor: {ours / medians['floor']:.2f}x")
        if args.run_path:  # check inflates, never deflates: only the plain floor is its own
            print(f"check / floor: {medians['tvmffi-wheel check'] / medians['floor']:.2f}x")
        if args.old_tvmffi_wheel is not None:
            print(f"old / new: repair {medians['old tvmffi-wheel repair'] / ours:.2f}x, "
                  f"check {medians['old tvmffi-wheel check'] / medians['tvmffi-wheel check']:.2f}x")


if __name__ == "__main__":
    main()
