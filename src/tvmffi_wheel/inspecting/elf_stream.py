"""Read ELF facts from a file that streams past once (a wheel member being inflated).

A deflated member cannot be read at random offsets, and a kernel library can be hundreds
of megabytes of device code. So instead of unpacking it to disk for the ELF reader, this
keeps only the byte ranges the facts need, chosen from the ELF and program headers at the
start of the file: the first loadable segment (dynamic symbols, their strings and
versions), the dynamic segment, the first bytes after the loaded segments (.comment), the
section header table and what precedes it (.shstrtab), and the headers of the CUDA device
code (fatbins and cubins) found on the way. The ELF reader (elf.py) then reads that sparse
copy. If it asks for a byte that was not kept (an unusual layout), the caller falls back to
unpacking the member and reading it whole.
"""

from __future__ import annotations

import dataclasses
import heapq
import io
import itertools
import struct
from collections.abc import Callable, Iterable
from typing import BinaryIO, cast

from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting.device_code import (
    CUBIN_HEADER,
    FATBIN_ENTRY_HEADER,
    FATBIN_ENTRY_HEADER_KEPT,
    FATBIN_HEADER,
    SCAN_OVERLAP,
    DamagedDeviceCode,
    DeviceImage,
    embedded_images,
    find_candidates,
    find_straddling,
    is_fatbin_header,
    ptx_image,
)
from tvmffi_wheel.inspecting.elf import (
    ELF_MAGIC,
    ELF_READ_ERRORS,
    read_facts_from,
)
from tvmffi_wheel.inspecting.facts import BinaryFacts

_HEAD_LIMIT = 32 << 20  # a first segment larger than this is read from disk instead
_WINDOW = 256 << 10  # kept after the loaded segments and before the section headers


class NotCaptured(Exception):
    """A read fell outside the kept ranges."""


class SparseFile(io.RawIOBase):
    """A read-only file of which only some byte ranges are known."""

    def __init__(self, pieces: dict[int, bytes], size: int) -> None:
        self._starts = sorted(pieces)
        self._pieces = pieces
        self._size = size
        self._position = 0
        self.missed = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._position = offset
        elif whence == io.SEEK_CUR:
            self._position += offset
        else:
            self._position = self._size + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._size - self._position
        start, end = self._position, min(self._position + size, self._size)
        for piece_start in self._starts:  # a few pieces; they may overlap
            piece = self._pieces[piece_start]
            if piece_start <= start and end <= piece_start + len(piece):
                self._position = end
                return piece[start - piece_start : end - piece_start]
        self.missed = True  # a reader may catch the exception and raise its own
        raise NotCaptured(f"bytes {start}..{end} were not kept")


class _Collector:
    """Keeps wanted byte ranges of a stream; wants can be added while it streams.

    The last bytes fed are remembered, so a want may start a little behind the stream
    (a header that began in the previous chunk).
    """

    _RECENT = 64

    def __init__(self) -> None:
        self.position = 0
        self.pieces: dict[int, bytes] = {}
        self._wants: list[tuple[int, int, int]] = []  # (start, end, id) heap
        self._open: dict[int, tuple[int, int, bytearray, Callable[[bytes], None] | None]] = {}
        self._next_id = 0
        self._recent = b""  # the last bytes fed, ending at position
        self.missed = False  # a want started before what is remembered

    def want(self, start: int, length: int, done: Callable[[bytes], None] | None = None) -> None:
        if length <= 0:
            return
        prefill = b""
        if start < self.position:
            recent_start = self.position - len(self._recent)
            if start < recent_start:
                self.missed = True
                return
            prefill = self._recent[start - recent_start :][:length]
        if len(prefill) == length:
            self._complete(start, prefill, done)
            return
        self._next_id += 1
        self._open[self._next_id] = (start, start + length, bytearray(prefill), done)
        heapq.heappush(self._wants, (start, start + length, self._next_id))

    def _complete(self, start: int, data: bytes, done: Callable[[bytes], None] | None) -> None:
        if len(data) > len(self.pieces.get(start, b"")):
            self.pieces[start] = data
        if done is not None:
            done(data)

    def feed(self, chunk: bytes) -> None:
        chunk_start, chunk_end = self.position, self.position + len(chunk)
        active: list[int] = []
        while True:
            # Wants starting in this chunk, including those a completed want just added.
            while self._wants and self._wants[0][0] < chunk_end:
                active.append(heapq.heappop(self._wants)[2])
            for want_id in list(active):
                start, end, buffer, done = self._open[want_id]
                take_from, take_to = max(start + len(buffer), chunk_start), min(end, chunk_end)
                if take_to > take_from:
                    buffer += chunk[take_from - chunk_start : take_to - chunk_start]
                if start + len(buffer) >= end:
                    active.remove(want_id)
                    del self._open[want_id]
                    self._complete(start, bytes(buffer), done)
            if not (self._wants and self._wants[0][0] < chunk_end):
                break
        for want_id in active:  # continues into the next chunk
            start, end, _, _ = self._open[want_id]
            heapq.heappush(self._wants, (start, end, want_id))
        self._recent = (self._recent + chunk[-self._RECENT :])[-self._RECENT :]
        self.position = chunk_end


def _headers(head: bytes) -> tuple[str, dict[str, int], list[tuple[int, int, int, int]]]:
    """(endianness prefix, ELF header fields, [(p_type, p_offset, p_filesz, p_flags)])."""
    if len(head) < 64 or head[:4] != ELF_MAGIC or head[4] not in (1, 2) or head[5] not in (1, 2):
        raise ValueError("not an ELF header")
    bits64 = head[4] == 2
    order = "<" if head[5] == 1 else ">"
    if bits64:
        phoff, shoff = struct.unpack_from(order + "QQ", head, 32)
        phentsize, phnum, shentsize, shnum = struct.unpack_from(order + "HHHH", head, 54)
    else:
        phoff, shoff = struct.unpack_from(order + "II", head, 28)
        phentsize, phnum, shentsize, shnum = struct.unpack_from(order + "HHHH", head, 42)
    fields = {"phoff": phoff, "shoff": shoff, "phentsize": phentsize, "phnum": phnum,
              "shentsize": shentsize, "shnum": shnum, "bits64": int(bits64)}
    segments = []
    for index in range(phnum):
        at = phoff + index * phentsize
        if bits64:
            p_type, p_flags, p_offset = struct.unpack_from(order + "IIQ", head, at)
            (p_filesz,) = struct.unpack_from(order + "Q", head, at + 32)
        else:
            p_type, p_offset = struct.unpack_from(order + "II", head, at)
            p_filesz, _, p_flags = struct.unpack_from(order + "III", head, at + 16)
        segments.append((p_type, p_offset, p_filesz, p_flags))
    return order, fields, segments


_PT_LOAD, _PT_DYNAMIC = 1, 2


class _DeviceCodeHeaders:
    """Notes where device code may start as the file streams past, and asks a collector for
    the headers there: a cubin's ELF header, or a fatbin's header and then each entry
    header in turn (each names the size of its payload, so the next one's offset).

    Device code can sit anywhere, unaligned (tvm-ffi embeds it with `ld -r -b binary`), so
    every fatbin header or 64-bit ELF identification is a candidate (device_code.SCANNED_FOR);
    device_code.py decides what it really is.
    Only little-endian files carry device code.
    """

    def __init__(self, collector: _Collector) -> None:
        self._collector = collector
        self._tail = b""  # the last bytes seen: a needle may straddle two chunks
        self.candidates: list[int] = []

    def scan(self, chunk: bytes, chunk_start: int) -> None:
        for found in find_straddling(self._tail, chunk, chunk_start):
            self._candidate(found)
        for found in find_candidates(chunk, chunk_start):
            self._candidate(found)
        self._tail = (self._tail + chunk[-SCAN_OVERLAP:])[-SCAN_OVERLAP:]

    def _candidate(self, start: int) -> None:
        self.candidates.append(start)
        self._collector.want(start, CUBIN_HEADER, lambda head: self._container(start, head))

    def _container(self, start: int, head: bytes) -> None:
        if is_fatbin_header(head):
            (body,) = struct.unpack_from("<Q", head, 8)
            self._entry(start + FATBIN_HEADER, start + FATBIN_HEADER + body)

    def _entry(self, at: int, end: int) -> None:
        def got(entry: bytes) -> None:
            _, _, entry_size, payload = struct.unpack_from("<HHIQ", entry, 0)
            following = at + entry_size + payload
            if entry_size and following + FATBIN_ENTRY_HEADER <= end:
                self._entry(following, end)

        if at + FATBIN_ENTRY_HEADER <= end:
            self._collector.want(at, min(FATBIN_ENTRY_HEADER_KEPT, end - at), got)


def _plan_ranges(head: bytes) -> tuple[_Collector, int] | None:
    """A collector wanting the ranges the facts need, planned from the headers in ``head``,
    and where the first loadable segment ends."""
    try:
        _, fields, segments = _headers(head)
    except (ValueError, struct.error, IndexError, OverflowError):
        return None  # not headers we can plan from: the caller reads the file whole
    loads = [(offset, size) for kind, offset, size, _ in segments if kind == _PT_LOAD]
    if not loads:
        return None
    first_end = next((o + s for o, s in loads if o == 0), min(o + s for o, s in loads))
    if first_end > _HEAD_LIMIT:
        return None
    collector = _Collector()
    collector.want(0, max(first_end, min(len(head), 64 << 10)))
    for kind, offset, size, _ in segments:
        if kind == _PT_DYNAMIC:
            collector.want(offset, size)
    loaded_end = max(o + s for o, s in loads)
    collector.want(loaded_end, _WINDOW)
    table_size = fields["shnum"] * fields["shentsize"]
    if fields["shoff"]:
        before = min(_WINDOW, fields["shoff"])
        collector.want(fields["shoff"] - before, before + table_size)
    return collector, first_end


def read_streamed_facts(chunks: Iterable[bytes], shown_as: str) -> BinaryFacts | None:
    """Facts from the file's bytes in order; None when they need a byte that was not kept."""
    iterator = iter(chunks)
    head = b""
    for chunk in iterator:
        head += chunk
        if len(head) >= 64 << 10:
            break
    planned = _plan_ranges(head)
    if planned is None:
        return None
    collector, _ = planned
    little_endian = head[5:6] == b"\x01"
    device_code = _DeviceCodeHeaders(collector) if little_endian else None
    for chunk in itertools.chain([head], iterator):
        if device_code is not None:
            device_code.scan(chunk, collector.position)
        collector.feed(chunk)
    if collector.missed:
        return None
    sparse = SparseFile(collector.pieces, collector.position)
    stream = cast(BinaryIO, sparse)  # a read-only, seekable binary file: all the ELF reader uses
    candidates = device_code.candidates if device_code is not None else []
    try:
        return read_facts_from(stream, shown_as, candidates)
    except (NotCaptured, TvmFfiWheelError, *ELF_READ_ERRORS) as err:
        if sparse.missed:
            return None
        if isinstance(err, TvmFfiWheelError):
            raise
        raise TvmFfiWheelError(f"{shown_as} looks like an ELF file but cannot be read ({err})") from None


def read_device_file(chunks: Iterable[bytes], shown_as: str, size: int) -> tuple[DeviceImage, ...]:
    """The device code of a `.cubin`, `.fatbin` or `.ptx` file, from the bytes in order."""
    iterator = iter(chunks)
    if shown_as.endswith(".ptx"):
        head = b""
        for chunk in iterator:
            head += chunk
            if len(head) >= _PTX_HEAD:
                break
        image = ptx_image(head[:_PTX_HEAD].decode("utf-8", "replace"), size)
        return (image,) if image is not None else ()
    collector = _Collector()
    headers = _DeviceCodeHeaders(collector)
    for chunk in iterator:
        headers.scan(chunk, collector.position)
        collector.feed(chunk)
    sparse = SparseFile(collector.pieces, collector.position)

    def read(offset: int, length: int) -> bytes:
        sparse.seek(offset)
        return sparse.read(length)

    try:
        images = embedded_images(read, headers.candidates, [("file", 0, collector.position)])
    except (NotCaptured, DamagedDeviceCode) as err:
        damage = err if isinstance(err, DamagedDeviceCode) else "it is cut short"
        raise TvmFfiWheelError(f"{shown_as}: {damage}", "rebuild it, or remove it from the wheel") from None
    return tuple(image if image.section == "file" else dataclasses.replace(image, section="file") for image in images)


_PTX_HEAD = 64 << 10  # `.target` comes in the first lines of a PTX file
