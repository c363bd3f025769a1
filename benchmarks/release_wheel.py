"""Make a wheel shaped like a large kernel release: many tvm-ffi kernel libraries in one wheel.

Each library has its own SONAME, exports its own `__tvm_ffi_` function, embeds its own
fatbin-like data (random bytes with every other 64-byte run zeroed: deflate halves it) and
is linked against libtvm_ffi with its run path already set, so a repair only has to retag
(`--no-run-path`: none set, as tvm-ffi's CMake helpers link, so a repair patches every one).
The wheel is written as scikit-build-core writes one (`linux_x86_64`).

    python benchmarks/release_wheel.py OUT_FOLDER [--libraries 300] [--megabytes 4] [--no-run-path]

`bench_release.py` and the suite's release-scale tests import `make_release_wheel`.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import csv
import hashlib
import io
import os
import subprocess
import zipfile
from pathlib import Path

PACKAGE = "manykern"

_SOURCE = r"""
__asm__(".section .rodata.kernels,\"a\"\n.global kernel_data_%(n)d\nkernel_data_%(n)d:\n"
        ".incbin \"%(blob)s\"\n.previous\n");
extern const char kernel_data_%(n)d[];
extern void* TVMFFIEnvGetStream(int, int);
__attribute__((visibility("default"))) long __tvm_ffi_k%(n)d(void) {
  return TVMFFIEnvGetStream(1, 0) ? kernel_data_%(n)d[%(n)d] : 0;
}
"""


def _blob(megabytes: float) -> bytes:
    size = int(megabytes * (1 << 20))
    block = bytearray(os.urandom(size))
    zeros = bytes(64)
    for start in range(0, size, 128):
        block[start : start + 64] = zeros[: max(0, min(64, size - start))]
    return bytes(block)


def _build_library(work: Path, index: int, megabytes: float, tvm_lib: Path, run_path: bool) -> Path:
    blob = work / f"k{index}.bin"
    blob.write_bytes(_blob(megabytes))
    source = work / f"k{index}.c"
    source.write_text(_SOURCE % {"n": index, "blob": blob.name})
    library = work / f"libk{index}.so"
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-O2", "-o", library.name, source.name, f"-Wl,-soname,libk{index}.so",
         f"-L{tvm_lib}", "-ltvm_ffi", *(["-Wl,-rpath,$ORIGIN/../../tvm_ffi/lib"] if run_path else [])],
        cwd=work, check=True,
    )
    blob.unlink()
    source.unlink()
    return library


def _record_row(name: str, data: bytes) -> tuple[str, str, str]:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return name, f"sha256={digest}", str(len(data))


def make_release_wheel(out: Path, libraries: int = 300, megabytes: float = 4, *, run_path: bool = True) -> Path:
    """Write the wheel into ``out`` (a folder); return its path."""
    import tvm_ffi.libinfo

    tvm_lib = Path(tvm_ffi.libinfo.find_libtvm_ffi()).parent
    work = out / "release-build"
    work.mkdir(parents=True, exist_ok=True)
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        built = list(pool.map(lambda i: _build_library(work, i, megabytes, tvm_lib, run_path), range(libraries)))
    dist_info = f"{PACKAGE}-1.0.dist-info"
    wheel = out / f"{PACKAGE}-1.0-py3-none-linux_x86_64.whl"
    rows = []
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        def add(name: str, data: bytes) -> None:
            archive.writestr(name, data)
            rows.append(_record_row(name, data))

        add(f"{PACKAGE}/__init__.py", b"")
        for index, library in enumerate(built):
            add(f"{PACKAGE}/k{index}/__init__.py", b"")
            add(f"{PACKAGE}/k{index}/libk{index}.so", library.read_bytes())
            library.unlink()
        add(f"{dist_info}/METADATA", b"Metadata-Version: 2.1\nName: manykern\nVersion: 1.0\n"
            b"Requires-Dist: apache-tvm-ffi<0.2,>=0.1.15\n")
        add(f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: false\n"
            b"Tag: py3-none-linux_x86_64\n")
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([*rows, (f"{dist_info}/RECORD", "", "")])
        archive.writestr(f"{dist_info}/RECORD", buffer.getvalue())
    work.rmdir()
    return wheel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--libraries", type=int, default=300)
    parser.add_argument("--megabytes", type=float, default=4)
    parser.add_argument("--no-run-path", dest="run_path", action="store_false")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    wheel = make_release_wheel(args.out, args.libraries, args.megabytes, run_path=args.run_path)
    print(f"{wheel}: {wheel.stat().st_size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
