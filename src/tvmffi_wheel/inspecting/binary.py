"""Which reader reads a binary: the one place that dispatches on the file format.

A new format adds a reader that returns `BinaryFacts` (facts.py) and a branch here.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

from tvmffi_wheel.inspecting.elf import is_elf_header, read_elf_facts
from tvmffi_wheel.inspecting.facts import BinaryFacts, BinaryFormat
from tvmffi_wheel.inspecting.macho import is_fat_macho_header, is_thin_macho_header, read_macho_facts
from tvmffi_wheel.inspecting.pe import is_pe_header, read_pe_facts

# How many bytes binary_format wants to see: a PE signature may sit a little way in.
HEAD_SIZE = 4096


def binary_format(head: bytes) -> BinaryFormat | None:
    """The format of a file that starts with ``head``; None if it is no binary we read."""
    if is_elf_header(head):
        return "elf"
    if is_thin_macho_header(head) or is_fat_macho_header(head):
        return "macho"
    if is_pe_header(head):
        return "pe"
    return None


# Names that say "shared library": a file so named must be one a reader reads.
_LIBRARY_NAME = re.compile(r"\.(so(\.\d+)*|dylib|dll|pyd)$", re.IGNORECASE)
_MH_DSYM = 0xA  # the Mach-O file type of a dSYM's DWARF file


def unreadable_binary(name: str, head: bytes) -> str | None:
    """Why a file that no reader takes (binary_format gave None) must still not pass as data:
    it is named like a shared library, or starts like a Windows binary; None for data."""
    if head[:2] == b"MZ":
        return f"{name} starts like a Windows binary (MZ) but has no PE header"
    if _LIBRARY_NAME.search(name):
        return f"{name} is named like a shared library but is no ELF, Mach-O or PE file"
    return None


def is_debug_companion(name: str, head: bytes) -> bool:
    """Debug symbols that accompany a binary: a macOS `.dSYM` bundle's files (or a dSYM's DWARF
    file on its own), a Windows `.pdb`. They are not loaded, so they are not read as binaries."""
    if any(part.endswith(".dSYM") for part in name.split("/")[:-1]) or name.lower().endswith(".pdb"):
        return True
    little_endian_thin = head[:4] in (b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe")
    return little_endian_thin and len(head) >= 16 and struct.unpack_from("<I", head, 12)[0] == _MH_DSYM


def is_binary(path: Path) -> bool:
    with path.open("rb") as stream:
        return binary_format(stream.read(HEAD_SIZE)) is not None


def read_binary_facts(path: Path, shown_as: str) -> BinaryFacts:
    """The facts of the binary at ``path``; ``shown_as`` names it in messages."""
    with path.open("rb") as stream:
        file_format = binary_format(stream.read(HEAD_SIZE))
    if file_format == "macho":
        return read_macho_facts(path, shown_as)
    if file_format == "pe":
        return read_pe_facts(path, shown_as)
    return read_elf_facts(path, shown_as)


def exports_if(path: Path | None, file_format: str, architecture: str) -> frozenset[str] | None:
    """What the binary at ``path`` exports, if it is one of ``file_format`` and ``architecture``
    (the libtvm_ffi a wheel was built against, say); None otherwise or when there is none."""
    if path is None or not path.is_file():
        return None
    facts = read_binary_facts(path, str(path))
    return facts.exports if (facts.format, facts.architecture) == (file_format, architecture) else None
