"""The ELF reader: the facts of one ELF binary (`BinaryFacts`).

Read: the dynamic section (NEEDED, SONAME, run paths), the dynamic symbol table and the
GNU version sections (imports, exports, symbol versions), the headers of the CUDA device
code in `.nv_fatbin` and embedded in any other section (device_code.py; never the
payload, though finding embedded code scans the sections' bytes), and `.comment` (the
compilers). Nothing else of a (possibly very large) kernel library is interpreted.

The tables are read with `struct`, in bulk: pyelftools, which this reader used before,
parsed every section header several times and every symbol with construct, 14 ms a
library, most of the CPU of checking a wheel of hundreds of them (BENCHMARKS.md,
"Release scale"). tests/unit/test_elf.py compares the facts with pyelftools' reading of
the same files, which stays the independent judge.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting.device_code import (
    SCAN_OVERLAP,
    DamagedDeviceCode,
    DeviceImage,
    embedded_images,
    fatbin_section,
    find_candidates,
)
from tvmffi_wheel.inspecting.facts import BinaryFacts, ImportVersion

ELF_MAGIC = b"\x7fELF"


class DamagedElf(ValueError):
    """An offset, size or count in the file points outside it."""


# What reading a damaged ELF file raises (the fuzz tests in tests/unit/test_fuzz.py try).
ELF_READ_ERRORS = (DamagedElf, ValueError, KeyError, IndexError, struct.error, OSError, OverflowError)

# Undefined symbols with these prefixes come from the CPython C API.
PYTHON_C_API_PREFIXES = ("Py", "_Py")

# (e_machine, ELF class) -> the architecture as platform tags spell it.
ARCHITECTURE_BY_MACHINE = {
    (62, 64): "x86_64",
    (183, 64): "aarch64",
    (3, 32): "i686",
    (21, 64): "ppc64le",
    (22, 64): "s390x",
    (40, 32): "armv7l",
    (243, 64): "riscv64",
}

_SHT_DYNAMIC, _SHT_NOBITS, _SHT_DYNSYM = 6, 8, 11
_SHT_GNU_VERNEED, _SHT_GNU_VERSYM = 0x6FFFFFFE, 0x6FFFFFFF
_DT_NEEDED, _DT_SONAME, _DT_RPATH, _DT_RUNPATH = 1, 14, 15, 29
_STB_GLOBAL, _STB_WEAK = 1, 2
_STV_DEFAULT, _STV_PROTECTED = 0, 3
_SHN_UNDEF, _SHN_XINDEX = 0, 0xFFFF


def architecture_of(machine: int, elf_class: int) -> str:
    """The platform tags' name for the machine, or "e_machine N (NN-bit)" where they have none."""
    return ARCHITECTURE_BY_MACHINE.get((machine, elf_class), f"e_machine {machine} ({elf_class}-bit)")


def is_elf_header(head: bytes) -> bool:
    return head[:4] == ELF_MAGIC


def read_elf_facts(path: Path, shown_as: str) -> BinaryFacts:
    """Read the facts of the ELF file at ``path``; ``shown_as`` names it in messages."""
    try:
        with path.open("rb") as stream:
            return read_facts_from(stream, shown_as)
    except ELF_READ_ERRORS as err:
        raise _damaged(shown_as, err) from None


def _damaged(shown_as: str, err: Exception) -> TvmFfiWheelError:
    return TvmFfiWheelError(
        f"{shown_as} looks like an ELF file but cannot be read ({err})",
        "rebuild it, or remove the damaged file from the wheel",
    )


def read_facts_from(stream: BinaryIO, shown_as: str, device_candidates: Sequence[int] | None = None) -> BinaryFacts:
    """Facts from a seekable ELF file (on disk, or the sparse copy elf_stream keeps)."""
    try:
        return _read(_ElfFile(stream), device_candidates)
    except DamagedDeviceCode as err:
        raise TvmFfiWheelError(f"{shown_as}: {err}", "rebuild the binary, or remove the damaged device code") from None
    except ELF_READ_ERRORS as err:
        raise _damaged(shown_as, err) from None


@dataclasses.dataclass(frozen=True)
class _Section:
    name: str
    type: int
    offset: int
    size: int
    link: int
    entry_size: int


class _ElfFile:
    """The ELF header and section headers of a seekable file, and reads of its bytes."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.size = stream.seek(0, 2)
        ident = self.read(0, 16)
        if ident[:4] != ELF_MAGIC or ident[4] not in (1, 2) or ident[5] not in (1, 2):
            raise DamagedElf("no ELF identification")
        self.bits = 64 if ident[4] == 2 else 32
        self.order = "<" if ident[5] == 1 else ">"
        if self.bits == 64:
            fields = struct.unpack(self.order + "HHIQQQIHHHHHH", self.read(16, 48))
        else:
            fields = struct.unpack(self.order + "HHIIIIIHHHHHH", self.read(16, 36))
        self.machine = fields[1]
        shoff, shentsize, shnum, shstrndx = fields[5], fields[10], fields[11], fields[12]
        self.sections = self._section_headers(shoff, shentsize, shnum, shstrndx)

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise DamagedElf(f"bytes {offset}..{offset + length} lie outside the file ({self.size} bytes)")
        self._stream.seek(offset)
        data = self._stream.read(length)
        if len(data) != length:
            raise DamagedElf(f"bytes {offset}..{offset + length} are cut short")
        return data

    def _section_headers(self, shoff: int, shentsize: int, shnum: int, shstrndx: int) -> list[_Section]:
        if not shoff:
            return []
        layout = self.order + ("IIQQQQIIQQ" if self.bits == 64 else "IIIIIIIIII")
        if shentsize < struct.calcsize(layout):
            raise DamagedElf(f"section headers of {shentsize} bytes")
        first = struct.unpack_from(layout, self.read(shoff, shentsize))
        count = shnum or first[5]  # more than 0xff00 sections: the count is in section 0
        if shstrndx == _SHN_XINDEX:
            shstrndx = first[6]
        table = self.read(shoff, count * shentsize)
        raw = [struct.unpack_from(layout, table, index * shentsize) for index in range(count)]
        # (name, type, flags, addr, offset, size, link, info, addralign, entsize)
        names = b""
        if 0 < shstrndx < count and raw[shstrndx][1] != _SHT_NOBITS:
            names = self.read(raw[shstrndx][4], raw[shstrndx][5])
        return [_Section(_c_string(names, h[0]), h[1], h[4], h[5], h[6], h[9]) for h in raw]

    def data(self, section: _Section) -> bytes:
        return b"" if section.type == _SHT_NOBITS else self.read(section.offset, section.size)

    def first(self, kind: int) -> _Section | None:
        return next((s for s in self.sections if s.type == kind), None)

    def named(self, name: str) -> _Section | None:
        return next((s for s in self.sections if s.name == name), None)

    def strings_of(self, section: _Section) -> bytes:
        """The string table a section's sh_link names."""
        if not 0 <= section.link < len(self.sections):
            raise DamagedElf(f"section {section.name or '?'} links to section {section.link}, which is missing")
        return self.data(self.sections[section.link])


def _c_string(table: bytes, offset: int) -> str:
    if not 0 <= offset < len(table):
        return ""
    end = table.find(b"\0", offset)
    return table[offset : end if end >= 0 else len(table)].decode("utf-8", "replace")


def _content_sections(elf: _ElfFile) -> list[tuple[str, int, int]]:
    """(name, start, end) of every section with bytes in the file, but .nv_fatbin."""
    return [(s.name, s.offset, s.offset + s.size) for s in elf.sections
            if s.type != _SHT_NOBITS and s.size and s.offset and s.name != ".nv_fatbin"]


def _scan(elf: _ElfFile, sections: list[tuple[str, int, int]]) -> list[int]:
    """Where a fatbin or a cubin may start in the sections (the file reader's own scan)."""
    candidates: list[int] = []
    for _, start, end in sections:
        offset = start
        while offset < end:
            data = elf.read(offset, min(_SCAN_CHUNK + SCAN_OVERLAP, end - offset))  # a needle across chunks
            candidates += find_candidates(data, offset)
            offset += _SCAN_CHUNK
    return candidates


_SCAN_CHUNK = 1 << 20


def _read_device_code(elf: _ElfFile, candidates: Sequence[int] | None) -> tuple[DeviceImage, ...]:
    """Device code in .nv_fatbin, and fatbins and cubins embedded in any other section.

    ``candidates``: where one may start, as the stream reader found them while the file
    streamed past; None to scan the sections here.
    """

    def read(offset: int, length: int) -> bytes:
        try:
            return elf.read(offset, length)
        except DamagedElf:
            raise DamagedDeviceCode(offset, "it is cut short") from None

    images: list[DeviceImage] = []
    section = elf.named(".nv_fatbin")
    if section is not None and section.type != _SHT_NOBITS:
        images += fatbin_section(read, section.offset, section.offset + section.size, ".nv_fatbin")
    sections = _content_sections(elf)
    found = _scan(elf, sections) if candidates is None else candidates
    images += embedded_images(read, found, sections)
    return tuple(images)


def _read_comment(elf: _ElfFile) -> tuple[str, ...]:
    section = elf.named(".comment")
    if section is None or section.size > 1 << 16:
        return ()
    texts = elf.data(section).decode("utf-8", "replace").split("\0")
    return tuple(dict.fromkeys(t.strip() for t in texts if t.strip()))


def _split_paths(value: str) -> tuple[str, ...]:
    return tuple(entry for entry in value.split(":") if entry)


@dataclasses.dataclass(frozen=True)
class _Dynamic:
    soname: str | None
    needed: tuple[str, ...]
    run_paths: tuple[str, ...]


def _read_dynamic(elf: _ElfFile) -> _Dynamic:
    soname = None
    needed: list[str] = []
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()
    dynamic = elf.first(_SHT_DYNAMIC)
    if dynamic is not None:
        strings = elf.strings_of(dynamic)
        entry = struct.Struct(elf.order + ("qQ" if elf.bits == 64 else "iI"))
        data = elf.data(dynamic)
        for kind, value in entry.iter_unpack(data[: len(data) - len(data) % entry.size]):
            if kind == 0:  # DT_NULL ends the table
                break
            if kind == _DT_NEEDED:
                needed.append(_c_string(strings, value))
            elif kind == _DT_SONAME:
                soname = _c_string(strings, value)
            elif kind == _DT_RPATH:
                rpath = _split_paths(_c_string(strings, value))
            elif kind == _DT_RUNPATH:
                runpath = _split_paths(_c_string(strings, value))
    # The loader ignores DT_RPATH when DT_RUNPATH is present.
    return _Dynamic(soname, tuple(needed), runpath or rpath)


@dataclasses.dataclass(frozen=True)
class _Symbols:
    undefined: frozenset[str]
    weak_undefined: frozenset[str]
    exported: frozenset[str]
    import_versions: tuple[ImportVersion, ...]


def _needed_versions(elf: _ElfFile) -> dict[int, tuple[str, str]]:
    """Version index -> (library, version name), from .gnu.version_r."""
    section = elf.first(_SHT_GNU_VERNEED)
    if section is None:
        return {}
    data, strings = elf.data(section), elf.strings_of(section)
    found: dict[int, tuple[str, str]] = {}
    at, limit = 0, len(data) // 16  # each entry is 16 bytes: a loop of next offsets ends here
    while limit > 0:
        _, count, file_name, aux, following = struct.unpack_from(elf.order + "HHIII", data, at)
        library = _c_string(strings, file_name)
        aux_at = at + aux
        for _ in range(min(count, limit)):
            _, _, other, name, aux_next = struct.unpack_from(elf.order + "IHHII", data, aux_at)
            found[other] = (library, _c_string(strings, name))
            aux_at += aux_next
            limit -= 1
        if not following:
            break
        at += following
        limit -= 1
    return found


def _symbol_entries(elf: _ElfFile, section: _Section) -> Iterator[tuple[int, int, int, int]]:
    """(st_name, st_info, st_other, st_shndx) of each symbol of a symbol table."""
    data = elf.data(section)
    if elf.bits == 64:
        layout = struct.Struct(elf.order + "IBBHQQ")
        rows = ((n, i, o, s) for n, i, o, s, _, _ in layout.iter_unpack(data[: len(data) - len(data) % 24]))
    else:
        layout = struct.Struct(elf.order + "IIIBBH")
        rows = ((n, i, o, s) for n, _, _, i, o, s in layout.iter_unpack(data[: len(data) - len(data) % 16]))
    return rows


def _read_symbols(elf: _ElfFile) -> _Symbols:
    version_by_index = _needed_versions(elf)
    symbols_by_index: dict[int, list[str]] = {index: [] for index in version_by_index}
    undefined: set[str] = set()
    weak_undefined: set[str] = set()
    exported: set[str] = set()
    dynsym = elf.first(_SHT_DYNSYM)
    if dynsym is not None:
        strings = elf.strings_of(dynsym)
        versym = elf.first(_SHT_GNU_VERSYM)
        versions = elf.data(versym) if versym is not None else b""
        indices = struct.unpack(f"{elf.order}{len(versions) // 2}H", versions[: len(versions) // 2 * 2])
        for position, (name_at, info, other, shndx) in enumerate(_symbol_entries(elf, dynsym)):
            name = _c_string(strings, name_at)
            if not name:
                continue
            bind = info >> 4
            if shndx != _SHN_UNDEF:
                if bind in (_STB_GLOBAL, _STB_WEAK) and other & 3 in (_STV_DEFAULT, _STV_PROTECTED):
                    exported.add(name)
                continue
            undefined.add(name)
            if bind == _STB_WEAK:
                weak_undefined.add(name)
            # The top bit of a version index marks a hidden version.
            if position < len(indices) and (index := indices[position] & 0x7FFF) in symbols_by_index:
                symbols_by_index[index].append(name)

    import_versions = tuple(
        ImportVersion(library, version, tuple(sorted(symbols_by_index[index])))
        for index, (library, version) in sorted(version_by_index.items())
    )
    return _Symbols(frozenset(undefined), frozenset(weak_undefined), frozenset(exported), import_versions)


def _read(elf: _ElfFile, device_candidates: Sequence[int] | None) -> BinaryFacts:
    dynamic, symbols = _read_dynamic(elf), _read_symbols(elf)
    return BinaryFacts(
        format="elf",
        architecture=architecture_of(elf.machine, elf.bits),
        install_name=dynamic.soname,
        needed=dynamic.needed,
        run_paths=dynamic.run_paths,
        import_versions=symbols.import_versions,
        python_c_api=tuple(sorted(s for s in symbols.undefined if s.startswith(PYTHON_C_API_PREFIXES))),
        imports=symbols.undefined,
        exports=symbols.exported,
        device_code=_read_device_code(elf, device_candidates),
        compilers=_read_comment(elf),
        weak_imports=symbols.weak_undefined,
    )
