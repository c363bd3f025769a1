"""CUDA device code, wherever it is: fatbins, ELF cubins and PTX, read from their headers.

nvcc puts fatbins into `.nv_fatbin`; tvm-ffi's `tvm_ffi_embed_bin_into` (and bin2c-style
embedding) puts a fatbin or a cubin into `.rodata` or `.data`, unaligned; and packages ship
`.cubin`, `.fatbin` and `.ptx` files. Only headers are read: a fatbin's container header
and entry headers, a cubin's ELF header, the start of a PTX file.

Layouts, checked against nvcc 13 output in tests/unit/test_cuda.py: a fatbin container
is magic 0xBA55ED50, version 1, a 16-byte header and the size of its entries; each entry
has its kind (1 PTX, 2 cubin), header size, payload size, architecture and flags
(compressed, `a` arch-specific, `f` family). A cubin is an ELF file with e_machine 190
(EM_CUDA) whose e_flags hold the SM number: bits 8-15 from ELF ABI version 8 (CUDA 13),
bits 0-7 before.
"""

from __future__ import annotations

import dataclasses
import mmap
import re
import struct
from collections.abc import Callable, Iterable, Mapping

from tvmffi_wheel.inspecting._memsearch import find_all

FATBIN_MAGIC = 0xBA55ED50
FATBIN_MAGIC_BYTES = struct.pack("<I", FATBIN_MAGIC)
ELF_MAGIC = b"\x7fELF"
# What a scan looks for: a fatbin container's header (its magic, version 1, a 16-byte header:
# what is_fatbin_header accepts) and the identification of a 64-bit little-endian ELF file
# (every cubin since CUDA dropped 32-bit hosts). The longer a needle, the faster memmem
# skips: 0.08 s and 0.1 s for these on 315 MB here, 0.18 s each for the bare magics.
SCANNED_FOR = (FATBIN_MAGIC_BYTES + b"\x01\x00\x10\x00", ELF_MAGIC + b"\x02\x01\x01")
SCAN_OVERLAP = max(len(needle) for needle in SCANNED_FOR) - 1  # a match may straddle two chunks
EM_CUDA = 190
CUBIN_HEADER = 64  # the ELF header of a 64-bit cubin
FATBIN_HEADER = 16
FATBIN_ENTRY_HEADER = 48  # the fields read from each entry header
FATBIN_ENTRY_HEADER_KEPT = 128  # more than any entry header nvcc writes (64 to 112 bytes)
DEVICE_FILE_SUFFIXES = (".cubin", ".fatbin", ".ptx")
PYPI_FILE_LIMIT_MB = 100  # PyPI's default upload limit; a project can ask for more

_KINDS = {1: "ptx", 2: "sass"}
_FLAG_COMPRESSED = 0x8000
_FLAG_ARCH_SPECIFIC = 0x100000
_FLAG_FAMILY = 0x200000
_PTX_TARGET = re.compile(r"^\s*\.target\s+sm_(\d+)([af]?)", re.MULTILINE)

Reader = Callable[[int, int], bytes]  # (offset, length) -> bytes


@dataclasses.dataclass(frozen=True)
class DeviceImage:
    """One piece of device code: SASS for one GPU architecture, or PTX."""

    kind: str  # "sass", "ptx", or "kind<N>" for others
    arch: int  # e.g. 90
    variant: str  # "", "a" or "f"
    size: int  # bytes stored (compressed size when compressed)
    compressed: bool
    section: str = ".nv_fatbin"  # where it was found: a section of the binary, or "file"
    variant_known: bool = True  # False for a bare cubin, whose ELF header does not tell a/f

    @property
    def arch_name(self) -> str:
        """`sm_90a` for SASS, `compute_120` for PTX: the names nvcc and CUDA use."""
        prefix = "sm" if self.kind == "sass" else "compute"
        return f"{prefix}_{self.arch}{self.variant}"

    @property
    def name(self) -> str:
        return f"{self.kind.upper()} {self.arch_name}"


class DamagedDeviceCode(ValueError):
    """Device code whose header is inconsistent (it does not fit where it is)."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"the CUDA device code at offset {offset:#x} has a damaged header: {reason}")
        self.offset = offset


def bytes_by_arch(images: Iterable[DeviceImage]) -> dict[str, int]:
    """Bytes per SASS architecture and PTX version: `{"sm_75": ..., "compute_90": ...}`."""
    totals: dict[str, int] = {}
    for image in images:
        totals[image.arch_name] = totals.get(image.arch_name, 0) + image.size
    return dict(sorted(totals.items()))


def is_fatbin_header(head: bytes) -> bool:
    """A fatbin container starts here: the magic, version 1 and a 16-byte header."""
    if len(head) < FATBIN_HEADER:
        return False
    magic, version, header_size = struct.unpack_from("<IHH", head, 0)
    return magic == FATBIN_MAGIC and version == 1 and header_size == FATBIN_HEADER


def fatbin_container(read: Reader, start: int, limit: int, section: str) -> tuple[list[DeviceImage], int]:
    """The images of the fatbin container at ``start`` and the offset where it ends; its
    entries must end by ``limit`` (the end of its section or file)."""
    header = read(start, FATBIN_HEADER)
    if not is_fatbin_header(header):
        raise DamagedDeviceCode(start, "no fatbin header")
    (body,) = struct.unpack_from("<Q", header, 8)
    end = start + FATBIN_HEADER + body
    if end > limit:
        raise DamagedDeviceCode(start, f"its entries ({body} bytes) run past the end of {section}")
    images = []
    entry = start + FATBIN_HEADER
    while entry + FATBIN_ENTRY_HEADER <= end:
        head = read(entry, FATBIN_ENTRY_HEADER)
        kind, _, entry_header_size, payload = struct.unpack_from("<HHIQ", head, 0)
        (arch,) = struct.unpack_from("<I", head, 28)
        (flags,) = struct.unpack_from("<Q", head, 40)
        if entry_header_size < FATBIN_ENTRY_HEADER or entry + entry_header_size + payload > end:
            raise DamagedDeviceCode(start, f"an entry at offset {entry:#x} does not fit in the fatbin")
        variant = "a" if flags & _FLAG_ARCH_SPECIFIC else "f" if flags & _FLAG_FAMILY else ""
        images.append(DeviceImage(
            kind=_KINDS.get(kind, f"kind{kind}"),
            arch=arch,
            variant=variant,
            size=payload,
            compressed=bool(flags & _FLAG_COMPRESSED),
            section=section,
        ))
        entry += entry_header_size + payload
    return images, end


def fatbin_section(read: Reader, start: int, end: int, section: str) -> list[DeviceImage]:
    """Every container of a section that holds nothing but fatbins (`.nv_fatbin`, a .fatbin
    file), separated by zero padding."""
    images: list[DeviceImage] = []
    offset = start
    while offset + FATBIN_HEADER <= end:
        head = read(offset, FATBIN_HEADER)
        if head[:4] == bytes(4):  # alignment padding between containers
            offset += 8
            continue
        found, offset = fatbin_container(read, offset, end, section)
        images += found
    return images


def cubin_image(head: bytes, section: str) -> DeviceImage | None:
    """A cubin's one SASS image, from its ELF header; None if it is no CUDA ELF file."""
    if len(head) < 52 or head[:4] != ELF_MAGIC or head[5] != 1:  # little-endian only
        return None
    (machine,) = struct.unpack_from("<H", head, 18)
    if machine != EM_CUDA:
        return None
    abi_version = head[8]
    if head[4] == 2 and len(head) >= CUBIN_HEADER:  # 64-bit
        phoff, shoff, flags = struct.unpack_from("<QQI", head, 32)
        phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", head, 54)
    else:
        phoff, shoff, flags = struct.unpack_from("<III", head, 28)
        phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", head, 42)
    arch = (flags >> 8) & 0xFF if abi_version >= 8 else flags & 0xFF
    size = max(phoff + phentsize * phnum, shoff + shentsize * shnum)
    return DeviceImage("sass", arch, "", size, False, section, variant_known=False)


def ptx_image(text: str, size: int) -> DeviceImage | None:
    """A PTX file's image, from its `.target` line."""
    match = _PTX_TARGET.search(text)
    if match is None:
        return None
    return DeviceImage("ptx", int(match.group(1)), match.group(2), size, False, "file")


def find_candidates(data: bytes, base: int) -> list[int]:
    """Offsets (``base`` + position) where a fatbin or an ELF file may start in ``data``."""
    return [base + position for needle in SCANNED_FOR for position in find_all(data, needle)]


def find_straddling(tail: bytes, chunk: bytes, chunk_start: int) -> list[int]:
    """Offsets of the candidates that begin in ``tail`` (the end of the previous chunk) and
    end in ``chunk``, which begins at ``chunk_start``: those neither chunk holds whole."""
    joined = tail + chunk[:SCAN_OVERLAP]
    first = chunk_start - len(tail)
    return [
        first + position
        for needle in SCANNED_FOR
        for position in find_all(joined, needle)
        if position < len(tail) < position + len(needle)
    ]


def embedded_images(
    read: Reader, candidates: Iterable[int], sections: list[tuple[str, int, int]]
) -> list[DeviceImage]:
    """The fatbins and cubins found at ``candidates``, within ``sections`` ((name, start, end)).

    A candidate inside device code already read (a cubin inside a fatbin) is skipped.
    """
    images: list[DeviceImage] = []
    covered_until = -1
    for offset in sorted(set(candidates)):
        if offset < covered_until:
            continue
        section = next(((n, s, e) for n, s, e in sections if s <= offset < e), None)
        if section is None:
            continue
        name, _, end = section
        head = read(offset, min(CUBIN_HEADER, end - offset))
        if is_fatbin_header(head):
            found, covered_until = fatbin_container(read, offset, end, name)
            images += found
        elif (image := cubin_image(head, name)) is not None:
            images.append(image)
            covered_until = offset + image.size
    return images


def images_in_sections(data: bytes | mmap.mmap, sections: list[tuple[str, int, int]]) -> list[DeviceImage]:
    """Fatbins and cubins anywhere in the sections ((name, start, end)) of a file held whole
    in ``data`` (bytes or an mmap): for formats with no section of their own for device code."""

    def read(offset: int, length: int) -> bytes:
        chunk = bytes(data[offset : offset + length])
        if len(chunk) != length:
            raise DamagedDeviceCode(offset, "it is cut short")
        return chunk

    candidates = [c for _, start, end in sections for c in find_candidates(bytes(data[start:end]), start)]
    return embedded_images(read, candidates, sections)


def format_size(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1024:.1f} KiB"


def totals_by_place(images: Iterable[DeviceImage]) -> list[tuple[str, int, str]]:
    """(image name, bytes, where) per image kind, architecture and section, summed, sorted."""
    totals: dict[tuple[str, str], int] = {}
    for image in images:
        key = (image.name, image.section)
        totals[key] = totals.get(key, 0) + image.size
    return [(name, size, section) for (name, section), size in sorted(totals.items())]


def describe_totals(rows: Iterable[tuple[str, int, str]]) -> str:
    """`SASS sm_75 (0.9 KiB), PTX compute_90 (12.0 KiB, in .rodata)`: where is said unless
    it is nvcc's own section or a file of its own."""
    return ", ".join(
        f"{name} ({format_size(size)}{'' if section in ('.nv_fatbin', 'file') else f', in {section}'})"
        for name, size, section in rows
    )


def describe(images: Iterable[DeviceImage]) -> str:
    return describe_totals(totals_by_place(images))


def savings(by_arch: Mapping[str, int]) -> list[str]:
    """What leaving out each architecture saves, largest first: `dropping sm_75 would save 31.0 MB`."""
    return [
        f"dropping {arch} would save {format_size(size)}"
        for arch, size in sorted(by_arch.items(), key=lambda item: (-item[1], item[0]))
    ]


def size_findings(wheel_bytes: int, limit_mb: int, images: Iterable[DeviceImage]) -> tuple[str | None, str | None]:
    """(problem, warning) for a wheel of ``wheel_bytes``: over ``limit_mb`` (0: none) is a problem,
    over PyPI's default limit a warning; both say where the device code's bytes go."""
    megabytes = wheel_bytes / 1_000_000
    over_pypi = megabytes > PYPI_FILE_LIMIT_MB
    if not (limit_mb and megabytes > limit_mb) and not over_pypi:
        return None, None
    by_arch = savings(bytes_by_arch(images))
    where = ("; where the device code goes: " + "; ".join(by_arch)) if by_arch else ""
    if limit_mb and megabytes > limit_mb:
        return f"the wheel is {megabytes:.1f} MB, over max-wheel-size-mb = {limit_mb}{where}", None
    return None, (f"the wheel is {megabytes:.1f} MB; PyPI refuses files over {PYPI_FILE_LIMIT_MB} MB "
                  f"unless the project has a raised limit{where}")
