"""The ELF reader: the facts of one ELF binary (`BinaryFacts`), read with pyelftools.

Read: the dynamic section (NEEDED, SONAME, run paths), the dynamic symbol table and the
GNU version sections (imports, exports, symbol versions), the headers of the CUDA device
code in `.nv_fatbin` and embedded in any other section (device_code.py; never the
payload, though finding embedded code scans the sections' bytes), and `.comment` (the
compilers). Nothing else of a (possibly very large) kernel library is interpreted.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection, GNUVerSymSection
from elftools.elf.sections import SymbolTableSection

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

# What reading a damaged ELF file raises, from pyelftools or from offsets that point nowhere
# (the fuzz tests in tests/unit/test_fuzz.py found each of these).
ELF_READ_ERRORS = (ELFError, ValueError, KeyError, IndexError, struct.error, OSError, OverflowError)

# Undefined symbols with these prefixes come from the CPython C API.
PYTHON_C_API_PREFIXES = ("Py", "_Py")


# e_machine (with the ELF class) -> the architecture as platform tags spell it.
ARCHITECTURE_BY_MACHINE = {
    ("EM_X86_64", 64): "x86_64",
    ("EM_AARCH64", 64): "aarch64",
    ("EM_386", 32): "i686",
    ("EM_PPC64", 64): "ppc64le",
    ("EM_S390", 64): "s390x",
    ("EM_ARM", 32): "armv7l",
    ("EM_RISCV", 64): "riscv64",
}


def architecture_of(machine: str, elf_class: int) -> str:
    """The platform tags' name for the machine, or "EM_... (NN-bit)" where they have none."""
    return ARCHITECTURE_BY_MACHINE.get((machine, elf_class), f"{machine} ({elf_class}-bit)")


def is_elf_header(head: bytes) -> bool:
    return head[:4] == ELF_MAGIC


def read_elf_facts(path: Path, shown_as: str) -> BinaryFacts:
    """Read the facts of the ELF file at ``path``; ``shown_as`` names it in messages."""
    try:
        with path.open("rb") as stream:
            return read_facts_from(ELFFile(stream), stream, shown_as)
    except ELF_READ_ERRORS as err:
        raise _damaged(shown_as, err) from None


def _damaged(shown_as: str, err: Exception) -> TvmFfiWheelError:
    return TvmFfiWheelError(
        f"{shown_as} looks like an ELF file but cannot be read ({err})",
        "rebuild it, or remove the damaged file from the wheel",
    )


def read_facts_from(
    elf: ELFFile, stream: BinaryIO, shown_as: str, device_candidates: Sequence[int] | None = None
) -> BinaryFacts:
    """Facts from an opened ELF file (on disk, or the sparse copy elf_stream keeps)."""
    try:
        return _read(elf, stream, device_candidates)
    except DamagedDeviceCode as err:
        raise TvmFfiWheelError(f"{shown_as}: {err}", "rebuild the binary, or remove the damaged device code") from None
    except ELF_READ_ERRORS as err:
        raise _damaged(shown_as, err) from None


def _split_paths(value: str) -> tuple[str, ...]:
    return tuple(entry for entry in value.split(":") if entry)


def _content_sections(elf: ELFFile) -> list[tuple[str, int, int]]:
    """(name, start, end) of every section with bytes in the file, but .nv_fatbin."""
    found = []
    for section in elf.iter_sections():
        start, size = section["sh_offset"], section["sh_size"]
        if section["sh_type"] != "SHT_NOBITS" and size and start and section.name != ".nv_fatbin":
            found.append((section.name, start, start + size))
    return found


def _scan(stream: BinaryIO, sections: list[tuple[str, int, int]]) -> list[int]:
    """Where a fatbin or a cubin may start in the sections (the file reader's own scan)."""
    candidates: list[int] = []
    for _, start, end in sections:
        offset = start
        while offset < end:
            stream.seek(offset)
            data = stream.read(min(_SCAN_CHUNK + SCAN_OVERLAP, end - offset))  # a needle across chunks
            candidates += find_candidates(data, offset)
            offset += _SCAN_CHUNK
    return candidates


_SCAN_CHUNK = 1 << 20


def _read_device_code(elf: ELFFile, stream: BinaryIO, candidates: Sequence[int] | None) -> tuple[DeviceImage, ...]:
    """Device code in .nv_fatbin, and fatbins and cubins embedded in any other section.

    ``candidates``: where one may start, as the stream reader found them while the file
    streamed past; None to scan the sections here.
    """

    def read(offset: int, length: int) -> bytes:
        stream.seek(offset)
        data = stream.read(length)
        if len(data) != length:
            raise DamagedDeviceCode(offset, "it is cut short")
        return data

    images: list[DeviceImage] = []
    section = elf.get_section_by_name(".nv_fatbin")
    if section is not None and section["sh_type"] != "SHT_NOBITS":
        start = section["sh_offset"]
        images += fatbin_section(read, start, start + section["sh_size"], ".nv_fatbin")
    sections = _content_sections(elf)
    found = _scan(stream, sections) if candidates is None else candidates
    images += embedded_images(read, found, sections)
    return tuple(images)


def _read_comment(elf: ELFFile) -> tuple[str, ...]:
    section = elf.get_section_by_name(".comment")
    if section is None or section["sh_size"] > 1 << 16:
        return ()
    texts = section.data().decode("utf-8", "replace").split("\0")
    return tuple(dict.fromkeys(t.strip() for t in texts if t.strip()))


@dataclasses.dataclass(frozen=True)
class _Dynamic:
    soname: str | None
    needed: tuple[str, ...]
    run_paths: tuple[str, ...]


def _read_dynamic(elf: ELFFile) -> _Dynamic:
    soname = None
    needed: list[str] = []
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()
    dynamic = next((s for s in elf.iter_sections() if isinstance(s, DynamicSection)), None)
    for tag in dynamic.iter_tags() if dynamic is not None else ():
        kind = tag.entry.d_tag
        if kind not in ("DT_NEEDED", "DT_SONAME", "DT_RPATH", "DT_RUNPATH"):
            continue
        # pyelftools sets the string of these tags as an attribute named after the tag.
        text = str(getattr(tag, kind[3:].lower()))
        if kind == "DT_NEEDED":
            needed.append(text)
        elif kind == "DT_SONAME":
            soname = text
        elif kind == "DT_RPATH":
            rpath = _split_paths(text)
        else:
            runpath = _split_paths(text)
    # The loader ignores DT_RPATH when DT_RUNPATH is present.
    return _Dynamic(soname, tuple(needed), runpath or rpath)


@dataclasses.dataclass(frozen=True)
class _Symbols:
    undefined: frozenset[str]
    weak_undefined: frozenset[str]
    exported: frozenset[str]
    import_versions: tuple[ImportVersion, ...]


def _read_symbols(elf: ELFFile) -> _Symbols:
    # Version index -> (library, version name), from .gnu.version_r.
    version_by_index: dict[int, tuple[str, str]] = {}
    verneed = next((s for s in elf.iter_sections() if isinstance(s, GNUVerNeedSection)), None)
    if verneed is not None:
        for entry, aux_entries in verneed.iter_versions():
            for aux in aux_entries:
                version_by_index[aux["vna_other"]] = (entry.name or "", aux.name)

    symbols_by_index: dict[int, list[str]] = {index: [] for index in version_by_index}
    undefined: set[str] = set()
    weak_undefined: set[str] = set()
    exported: set[str] = set()
    dynsym = elf.get_section_by_name(".dynsym")
    versym = next((s for s in elf.iter_sections() if isinstance(s, GNUVerSymSection)), None)
    if isinstance(dynsym, SymbolTableSection):
        versions = versym.iter_symbols() if versym is not None else None
        for symbol in dynsym.iter_symbols():
            version_entry = next(versions) if versions is not None else None
            if not symbol.name:
                continue
            if symbol["st_shndx"] != "SHN_UNDEF":
                if (
                    symbol["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK")
                    and symbol["st_other"]["visibility"] in ("STV_DEFAULT", "STV_PROTECTED")
                ):
                    exported.add(symbol.name)
                continue
            undefined.add(symbol.name)
            if symbol["st_info"]["bind"] == "STB_WEAK":
                weak_undefined.add(symbol.name)
            index = version_entry["ndx"] if version_entry is not None else None
            if isinstance(index, int) and (index & 0x7FFF) in symbols_by_index:  # the top bit marks hidden versions
                symbols_by_index[index & 0x7FFF].append(symbol.name)

    import_versions = tuple(
        ImportVersion(library, version, tuple(sorted(symbols_by_index[index])))
        for index, (library, version) in sorted(version_by_index.items())
    )
    return _Symbols(frozenset(undefined), frozenset(weak_undefined), frozenset(exported), import_versions)


def _read(elf: ELFFile, stream: BinaryIO, device_candidates: Sequence[int] | None) -> BinaryFacts:
    dynamic, symbols = _read_dynamic(elf), _read_symbols(elf)
    return BinaryFacts(
        format="elf",
        architecture=architecture_of(elf["e_machine"], elf.elfclass),
        install_name=dynamic.soname,
        needed=dynamic.needed,
        run_paths=dynamic.run_paths,
        import_versions=symbols.import_versions,
        python_c_api=tuple(sorted(s for s in symbols.undefined if s.startswith(PYTHON_C_API_PREFIXES))),
        imports=symbols.undefined,
        exports=symbols.exported,
        device_code=_read_device_code(elf, stream, device_candidates),
        compilers=_read_comment(elf),
        weak_imports=symbols.weak_undefined,
    )
