"""Repair a large kernel wheel: `tvmffi-wheel repair` against `auditwheel repair`, alternately.

Makes its own input: a shared library that embeds a large blob (about half of it
compressible, like fatbins), linked against libtvm_ffi with its run path already set, in a
wheel as scikit-build-core writes one: only the tag has to change. Each round also runs the
floor: one Python process that inflates and hashes the largest member (floor.py --largest),
what any tool that checks the wheel against its RECORD must do. Prints the times and peak
memory of each run, the median ratios, and checks that both outputs hold the same files.

    python benchmarks/bench_repair.py [--blob-mb 300] [--rounds 3]
        [--old-tvmffi-wheel OTHER_VENV/bin/tvmffi-wheel]

`--old-tvmffi-wheel` adds another installation's repair to each round (an older commit, to
measure what a change bought).
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from _common import BIN, REPO, machine, median, run_measured

SOURCE = r"""
#include <string.h>
__asm__(".section .rodata.blob,\"a\"\n.global kernel_blob\nkernel_blob:\n.incbin \"blob.bin\"\n"
        ".global kernel_blob_end\nkernel_blob_end:\n.previous\n");
extern const char kernel_blob[], kernel_blob_end[];
extern void* TVMFFIEnvGetStream(int, int);
__attribute__((visibility("default"))) long __tvm_ffi_blob(char* out) {
  memcpy(out, kernel_blob, 16);
  return TVMFFIEnvGetStream(1, 0) ? kernel_blob_end - kernel_blob : 0;
}
"""


def make_blob(path: Path, megabytes: int) -> None:
    """Random megabytes with every other 64-byte run zeroed: deflate halves it."""
    with path.open("wb") as out:
        for _ in range(megabytes):
            block = bytearray(os.urandom(1 << 20))
            for start in range(0, len(block), 128):
                block[start : start + 64] = bytes(64)
            out.write(block)


def make_wheel(work: Path, megabytes: int) -> Path:
    import tvm_ffi.libinfo

    make_blob(work / "blob.bin", megabytes)
    (work / "big.c").write_text(SOURCE)
    library = work / "libbig.so"
    tvm_lib = Path(tvm_ffi.libinfo.find_libtvm_ffi()).parent
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-O2", "-o", library, "big.c", f"-L{tvm_lib}", "-ltvm_ffi",
         "-Wl,-rpath,$ORIGIN/../tvm_ffi/lib"],
        cwd=work, check=True,
    )
    dist_info = "bigkernel-1.0.dist-info"
    members = {
        "bigkernel/__init__.py": b"",
        "bigkernel/libbig.so": library.read_bytes(),
        f"{dist_info}/METADATA": b"Metadata-Version: 2.1\nName: bigkernel\nVersion: 1.0\n"
        b"Requires-Dist: apache-tvm-ffi<0.2,>=0.1.15\n",
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: false\n"
        b"Tag: py3-none-linux_x86_64\n",
    }
    rows = [
        (
            name,
            "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode(),
            str(len(data)),
        )
        for name, data in members.items()
    ]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([*rows, (f"{dist_info}/RECORD", "", "")])
    members[f"{dist_info}/RECORD"] = buffer.getvalue().encode()
    wheel = work / "bigkernel-1.0-py3-none-linux_x86_64.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    (work / "blob.bin").unlink()
    return wheel


def contents(wheel: Path) -> dict[str, str]:
    """Member -> sha256, leaving out what the two tools write differently on purpose."""
    skip = ("RECORD", "WHEEL", "tvmffi_wheel.json")
    with zipfile.ZipFile(wheel) as archive:
        return {
            name: hashlib.sha256(archive.read(name)).hexdigest()
            for name in archive.namelist()
            if not name.endswith(skip) and not name.endswith("/") and ".dist-info/sboms/" not in name
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blob-mb", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--old-tvmffi-wheel", type=Path)
    args = parser.parse_args()
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    with tempfile.TemporaryDirectory(prefix="bench-repair-") as tmp:
        work = Path(tmp)
        wheel = make_wheel(work, args.blob_mb)
        print(f"machine: {machine()}")
        print(f"input: {wheel.name}, {wheel.stat().st_size / 1e6:.1f} MB wheel, "
              f"{(work / 'libbig.so').stat().st_size / 1e6:.1f} MB library")
        tools = {
            "auditwheel repair": lambda out: [BIN / "python", "-m", "auditwheel", "repair",
                                              "--exclude", "libtvm_ffi.so*", "-w", out, wheel],
            "tvmffi-wheel repair": lambda out: [BIN / "tvmffi-wheel", "repair", "-w", out, wheel],
            "floor": lambda out: [BIN / "python", REPO / "benchmarks" / "floor.py", "--largest", wheel],
        }
        if args.old_tvmffi_wheel is not None:
            old = args.old_tvmffi_wheel
            tools["old tvmffi-wheel repair"] = lambda out: [old, "repair", "-w", out, wheel]
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in tools}
        outputs: dict[str, Path] = {}
        for round_index in range(args.rounds):
            for name, command in tools.items():  # alternate, so drift hits both alike
                out = work / f"out-{round_index}-{name.replace(' ', '-')}"
                out.mkdir()
                seconds, peak_mb, _ = run_measured(command(out), env=env)
                results[name].append((seconds, peak_mb))
                made = next(out.glob("*.whl"), None)
                if made is not None:
                    outputs[name] = made
                print(f"round {round_index + 1}: {name:<24} {seconds:6.2f} s  {peak_mb:7.1f} MB peak"
                      + (f"  -> {made.name}" if made is not None else ""))
                if round_index < args.rounds - 1:
                    shutil.rmtree(out)
        slow = median([s for s, _ in results["auditwheel repair"]])
        fast = median([s for s, _ in results["tvmffi-wheel repair"]])
        floor = median([s for s, _ in results["floor"]])
        print(f"median: auditwheel {slow:.2f} s, tvmffi-wheel {fast:.2f} s, floor {floor:.2f} s; "
              f"speed-up {slow / fast:.1f}x, tvmffi-wheel / floor {fast / floor:.2f}x")
        print(f"peak memory: auditwheel {max(m for _, m in results['auditwheel repair']):.0f} MB, "
              f"tvmffi-wheel {max(m for _, m in results['tvmffi-wheel repair']):.0f} MB")
        if args.old_tvmffi_wheel is not None:
            old_median = median([s for s, _ in results["old tvmffi-wheel repair"]])
            print(f"old / new repair: {old_median / fast:.2f}x")
        same = contents(outputs["auditwheel repair"]) == contents(outputs["tvmffi-wheel repair"])
        print(f"same files and METADATA in both outputs: {same}")
        if not same:
            raise SystemExit("the two repaired wheels differ")


if __name__ == "__main__":
    main()
