"""The floor of reading a wheel: inflate and hash its members, on every core, and nothing else.

What any tool that checks a wheel against its RECORD must do at least. `--largest` does it
for the largest member alone (the floor of a wheel that holds one big library). `--deflate`
also deflates each member again, as zipfile does: the floor of a repair that changes every
member (setting the run path of every library, say).

    python benchmarks/floor.py WHEEL [--largest] [--deflate]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import os
import struct
import zipfile
import zlib


def inflate_and_hash(path: str, info: zipfile.ZipInfo, deflate: bool) -> bytes:
    digest = hashlib.sha256()
    deflater = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -zlib.MAX_WBITS) if deflate else None
    with open(path, "rb") as stream:
        stream.seek(info.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", stream.read(4))
        stream.seek(info.header_offset + 30 + name_length + extra_length)
        inflater = zlib.decompressobj(-zlib.MAX_WBITS) if info.compress_type == zipfile.ZIP_DEFLATED else None
        remaining = info.compress_size
        while remaining:
            block = stream.read(min(1 << 20, remaining))
            remaining -= len(block)
            content = inflater.decompress(block) if inflater is not None else block
            digest.update(content)
            if deflater is not None:
                deflater.compress(content)
        if inflater is not None:
            digest.update(inflater.flush())
        if deflater is not None:
            deflater.flush()
    return digest.digest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel")
    parser.add_argument("--largest", action="store_true")
    parser.add_argument("--deflate", action="store_true")
    args = parser.parse_args()
    with zipfile.ZipFile(args.wheel) as archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
    if args.largest:
        members = [max(members, key=lambda info: info.file_size)]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    with concurrent.futures.ThreadPoolExecutor(cores) as pool:
        list(pool.map(lambda info: inflate_and_hash(args.wheel, info, args.deflate), members))


if __name__ == "__main__":
    main()
