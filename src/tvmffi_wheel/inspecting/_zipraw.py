"""Raw zip access that zipfile has no public API for, in one place.

Repairing a wheel changes a few members and keeps the rest. zipfile can only write a
member by compressing it anew, which for a wheel of hundreds of megabytes of device code
costs seconds (BENCHMARKS.md). So unchanged members are copied as they are stored, and a
member copied ahead of a decision can be dropped again. Both need zipfile's writer state:
`ZipFile.fp`, `filelist`, `NameToInfo`, `start_dir` and `ZipInfo.FileHeader`, internals
unchanged since Python 3.6. Nothing else in tvmffi-wheel touches them.
"""

from __future__ import annotations

import os
import struct
import zipfile
from typing import BinaryIO, cast

_CHUNK = 1 << 20
_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., name length, extra length


def data_offset(stream: BinaryIO, info: zipfile.ZipInfo) -> int:
    """Where a member's stored bytes start in ``stream``: after its local header."""
    stream.seek(info.header_offset)
    header = stream.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size:
        raise zipfile.BadZipFile(f"bad local header for {info.filename}")
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    if signature != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for {info.filename}")
    return info.header_offset + _LOCAL_HEADER.size + name_length + extra_length


def _sink(out: zipfile.ZipFile) -> BinaryIO:
    if out.fp is None:
        raise ValueError("the archive is closed")
    return cast(BinaryIO, out.fp)


def write_position(out: zipfile.ZipFile) -> int:
    """Where the next member of ``out`` will start."""
    return _sink(out).tell()


def append_stored(out: zipfile.ZipFile, info: zipfile.ZipInfo, source: BinaryIO, start: int) -> None:
    """Append a member whose stored (compressed) bytes are copied from ``source`` at ``start``.

    ``info`` carries the member's name, attributes, CRC and sizes; the bytes are copied as
    they are, with no inflating or deflating.
    """
    sink = _sink(out)
    info.header_offset = sink.tell()
    zip64 = info.file_size > zipfile.ZIP64_LIMIT or info.compress_size > zipfile.ZIP64_LIMIT
    sink.write(info.FileHeader(zip64))
    sink.flush()
    _copy_range(source, start, info.compress_size, sink)
    out.filelist.append(info)
    out.NameToInfo[info.filename] = info
    out.start_dir = sink.tell()


def truncate(out: zipfile.ZipFile, keep: int) -> None:
    """Drop every member of ``out`` from the ``keep``-th on; the next write starts there."""
    if keep >= len(out.filelist):
        return
    offset = out.filelist[keep].header_offset
    sink = _sink(out)
    sink.seek(offset)
    sink.truncate()
    del out.filelist[keep:]
    out.NameToInfo = {info.filename: info for info in out.filelist}
    out.start_dir = offset


def _copy_range(source: BinaryIO, start: int, length: int, sink: BinaryIO) -> None:
    """Copy bytes between files in the kernel where it can (copy_file_range), else through us."""
    copied = 0
    if hasattr(os, "copy_file_range"):
        sink_offset = sink.tell()
        try:
            while copied < length:
                done = os.copy_file_range(
                    source.fileno(), sink.fileno(), length - copied, start + copied, sink_offset + copied
                )
                if done == 0:
                    break
                copied += done
        except OSError:  # not supported between these files: copy the rest by hand
            pass
        sink.seek(sink_offset + copied)
    source.seek(start + copied)
    while copied < length:
        block = source.read(min(_CHUNK, length - copied))
        if not block:
            raise zipfile.BadZipFile(f"{getattr(source, 'name', 'the source wheel')} is cut short")
        sink.write(block)
        copied += len(block)
