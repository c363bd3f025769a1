"""The Mach-O reader: the facts of one thin Mach-O binary (`BinaryFacts`), read with macholib.

macholib (Ronald Oussoren's, the reader delocate and py2app use) parses the header, the load
commands and the symbol table; this module turns them into facts. It also checks the code
signature the way the kernel does when it maps a page: each page hash of the CodeDirectory
against the file's bytes, which no tool on Linux verifies.

Only thin binaries are read: apache-tvm-ffi ships macOS arm64 wheels only, so a universal
binary (a fat file) cannot be served and is refused with that reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import mmap
import struct
from pathlib import Path
from typing import Any

from macholib import mach_o
from macholib.MachO import MachO
from macholib.SymbolTable import SymbolTable

from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting.device_code import DamagedDeviceCode, images_in_sections
from tvmffi_wheel.inspecting.facts import BinaryFacts, CodeSignature

# The first four bytes of a thin 64- or 32-bit Mach-O file (either byte order), and of a
# fat one. A fat header shares its magic with Java class files; binary.py tells them apart.
THIN_MAGICS = (b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xfe\xed\xfa\xce")
FAT_MAGICS = (b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf")

ARCHITECTURE_BY_CPU = {0x0100000C: "arm64", 0x01000007: "x86_64", 12: "arm", 7: "i386"}

_DYLIB_COMMANDS = (
    mach_o.LC_LOAD_DYLIB, mach_o.LC_LOAD_WEAK_DYLIB, mach_o.LC_REEXPORT_DYLIB,
    mach_o.LC_LAZY_LOAD_DYLIB, mach_o.LC_LOAD_UPWARD_DYLIB,
)
_SELF_ORDINAL, _DYNAMIC_LOOKUP_ORDINAL, _EXECUTABLE_ORDINAL = 0, 0xFE, 0xFF
_N_WEAK_REF = 0x40
_ZEROFILL_TYPES = (0x1, 0xC, 0x12)  # S_ZEROFILL, S_GB_ZEROFILL, S_THREAD_LOCAL_ZEROFILL

# Code signing blobs (big-endian, xnu's cs_blobs.h).
_SUPERBLOB_MAGIC = 0xFADE0CC0
_CODE_DIRECTORY_MAGIC = 0xFADE0C02
_SIGNATURE_SLOT_CMS = 0x10000
_CS_ADHOC = 0x2
_HASHES = {1: "sha1", 2: "sha256", 3: "sha256"}  # 3: SHA-256 truncated to 20 bytes
PYTHON_C_API_PREFIXES = ("Py", "_Py")


def is_thin_macho_header(head: bytes) -> bool:
    return head[:4] in THIN_MAGICS


def is_fat_macho_header(head: bytes) -> bool:
    """A fat Mach-O header: the magic, then a small architecture count (a Java class file
    has its version there, 45 or more)."""
    return head[:4] in FAT_MAGICS and len(head) >= 8 and 0 < struct.unpack(">I", head[4:8])[0] < 20


def _damaged(shown_as: str, err: object) -> TvmFfiWheelError:
    return TvmFfiWheelError(
        f"{shown_as} looks like a Mach-O file but cannot be read ({err})",
        "rebuild it, or remove the damaged file from the wheel",
    )


def _c_name(symbol: bytes) -> str:
    """The name as C spells it: Mach-O prefixes every C name with an underscore."""
    name = symbol.decode("utf-8", "replace")
    return name[1:] if name.startswith("_") else name


def _version_text(packed: int) -> str:
    """xxxx.yy.zz nibbles -> "11.0" (the patch level only when it is set)."""
    major, minor, patch = packed >> 16, (packed >> 8) & 0xFF, packed & 0xFF
    return f"{major}.{minor}.{patch}" if patch else f"{major}.{minor}"


def code_signature(data: bytes | mmap.mmap, offset: int, size: int) -> CodeSignature:
    """The signature blob at ``offset``, with every code page hash checked against ``data``."""
    if offset + size > len(data) or size < 12:
        return CodeSignature(False, "the signature lies outside the file")
    magic, _, count = struct.unpack_from(">III", data, offset)
    if magic != _SUPERBLOB_MAGIC:
        return CodeSignature(False, f"the signature is not a code signing SuperBlob (magic {magic:#x})")
    directories, identity = [], False
    for index in range(count):
        slot, blob_offset = struct.unpack_from(">II", data, offset + 12 + 8 * index)
        start = offset + blob_offset
        blob_magic, blob_length = struct.unpack_from(">II", data, start)
        if blob_magic == _CODE_DIRECTORY_MAGIC:
            directories.append(start)
        elif slot == _SIGNATURE_SLOT_CMS and blob_length > 8:
            identity = True  # a CMS signature with content: signed with an identity
    if not directories:
        return CodeSignature(not identity, "the signature has no CodeDirectory")
    ad_hoc = False
    for start in directories:
        (_, _, _, flags, hash_offset, _, _, code_slots, code_limit, hash_size, hash_type, _, page_log2) = (
            struct.unpack_from(">IIIIIIIIIBBBB", data, start)
        )
        ad_hoc = ad_hoc or bool(flags & _CS_ADHOC)
        algorithm = _HASHES.get(hash_type)
        if algorithm is None:
            return CodeSignature(ad_hoc, f"the CodeDirectory uses an unknown hash type {hash_type}")
        page = 1 << page_log2 if page_log2 else code_limit
        if code_limit > len(data) or (code_limit + page - 1) // page != code_slots:
            return CodeSignature(ad_hoc, "the CodeDirectory does not cover the file's code")
        for slot in range(code_slots):
            begin = slot * page
            digest = hashlib.new(algorithm, data[begin : min(begin + page, code_limit)]).digest()[:hash_size]
            recorded = data[start + hash_offset + slot * hash_size : start + hash_offset + (slot + 1) * hash_size]
            if digest != recorded:
                return CodeSignature(ad_hoc, f"the hash of page {slot} (bytes {begin} to "
                                             f"{min(begin + page, code_limit)}) does not match the file")
    return CodeSignature(ad_hoc and not identity)


def read_macho_facts(path: Path, shown_as: str) -> BinaryFacts:
    """Read the facts of the thin Mach-O file at ``path``; ``shown_as`` names it in messages."""
    with path.open("rb") as stream:
        head = stream.read(8)
    if is_fat_macho_header(head):
        raise TvmFfiWheelError(
            f"{shown_as} is a universal (fat) Mach-O binary; tvmffi-wheel reads thin ones only, since "
            "apache-tvm-ffi publishes macOS wheels for arm64 alone (no x86_64, no universal2)",
            "build for one architecture (CMAKE_OSX_ARCHITECTURES=arm64) and tag the wheel macosx_*_arm64",
        )
    try:
        return _read(path, shown_as)
    except TvmFfiWheelError:
        raise
    except DamagedDeviceCode as err:
        raise TvmFfiWheelError(f"{shown_as}: {err}", "rebuild the binary, or remove the damaged device code") from None
    except (ValueError, KeyError, IndexError, struct.error, OSError, OverflowError, EOFError) as err:
        raise _damaged(shown_as, err) from None


@dataclasses.dataclass
class _LoadCommands:
    install_name: str | None = None
    needed: list[str] = dataclasses.field(default_factory=list)
    run_paths: list[str] = dataclasses.field(default_factory=list)
    minimum_os: str = ""
    signature_place: tuple[int, int] | None = None
    sections: list[tuple[str, int, int]] = dataclasses.field(default_factory=list)  # (name, start, end)


def _read_load_commands(header: Any, file_size: int) -> _LoadCommands:
    found = _LoadCommands()
    for load_command, command, data in header.commands:
        kind = load_command.cmd
        if kind in _DYLIB_COMMANDS or kind == mach_o.LC_ID_DYLIB:
            name = data.split(b"\0", 1)[0].decode("utf-8", "replace")
            if kind == mach_o.LC_ID_DYLIB:
                found.install_name = name
            else:
                found.needed.append(name)
        elif kind == mach_o.LC_RPATH:
            found.run_paths.append(data.split(b"\0", 1)[0].decode("utf-8", "replace"))
        elif kind == mach_o.LC_BUILD_VERSION:
            found.minimum_os = _version_text(command.minos)
        elif kind == mach_o.LC_VERSION_MIN_MACOSX and not found.minimum_os:
            found.minimum_os = _version_text(command.version)
        elif kind == mach_o.LC_CODE_SIGNATURE:
            found.signature_place = (command.dataoff, command.datasize)
        elif kind in (mach_o.LC_SEGMENT, mach_o.LC_SEGMENT_64):
            if command.fileoff + command.filesize > file_size:
                raise ValueError(f"it is cut short: a segment ends at byte {command.fileoff + command.filesize}, "
                                 f"the file at {file_size}")
            for section in data:
                if section.size and section.offset and (section.flags & 0xFF) not in _ZEROFILL_TYPES:
                    name = f"{_text(section.segname)},{_text(section.sectname)}"
                    found.sections.append((name, section.offset, section.offset + section.size))
    return found


def _read(path: Path, shown_as: str) -> BinaryFacts:
    macho = MachO(str(path))
    header = macho.headers[0]
    commands = _read_load_commands(header, path.stat().st_size)
    needed = commands.needed
    symbols = SymbolTable(macho, header)
    by_ordinal: dict[int, list[str]] = {}
    weak: set[str] = set()
    # macholib sets these only from a dynamic symbol table, which an object file may lack.
    for entry, raw_name in getattr(symbols, "undefsyms", ()):
        name = _c_name(raw_name)
        by_ordinal.setdefault((entry.n_desc >> 8) & 0xFF, []).append(name)
        if entry.n_desc & _N_WEAK_REF:
            weak.add(name)
    imports = frozenset(name for names in by_ordinal.values() for name in names)
    imports_from = tuple(
        (needed[ordinal - 1] if 0 < ordinal <= len(needed) else _ORDINAL_NAMES.get(ordinal, f"#{ordinal}"),
         tuple(sorted(names)))
        for ordinal, names in sorted(by_ordinal.items())
    )
    flat = set(by_ordinal.get(_DYNAMIC_LOOKUP_ORDINAL, ())) | set(by_ordinal.get(_SELF_ORDINAL, ()))
    with path.open("rb") as stream, mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) as data:
        place = commands.signature_place
        signature = code_signature(data, *place) if place is not None else None
        device_code = tuple(images_in_sections(data, commands.sections))
    return BinaryFacts(
        format="macho",
        architecture=ARCHITECTURE_BY_CPU.get(header.header.cputype, f"CPU type {header.header.cputype:#x}"),
        install_name=commands.install_name,
        needed=tuple(needed),
        run_paths=tuple(commands.run_paths),
        import_versions=(),
        python_c_api=tuple(sorted(s for s in flat if s.startswith(PYTHON_C_API_PREFIXES))),
        imports=imports,
        exports=frozenset(_c_name(raw_name) for _, raw_name in getattr(symbols, "extdefsyms", ())),
        device_code=device_code,
        weak_imports=frozenset(weak),
        imports_from=imports_from,
        minimum_os=commands.minimum_os,
        code_signature=signature,
    )


_ORDINAL_NAMES = {
    _SELF_ORDINAL: "(this binary)",
    _DYNAMIC_LOOKUP_ORDINAL: "(any loaded library: dynamic lookup)",
    _EXECUTABLE_ORDINAL: "(the main executable)",
}


def _text(raw: bytes | str) -> str:
    return raw.rstrip(b"\0").decode("ascii", "replace") if isinstance(raw, bytes) else raw.rstrip("\0")
