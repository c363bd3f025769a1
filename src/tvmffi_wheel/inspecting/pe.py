"""The PE reader: the facts of one Windows DLL or extension module (`BinaryFacts`), read with pefile.

pefile (Ero Carrera's, which delvewheel uses) parses the headers and the import, delay-load
and export directories; nothing else of the file is interpreted, apart from the sections'
bytes that device code may sit in. PE has no run path, no symbol versions and no minimum
OS that a wheel tag names.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pefile

from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting.device_code import DamagedDeviceCode, images_in_sections
from tvmffi_wheel.inspecting.facts import BinaryFacts

# IMAGE_FILE_MACHINE_* -> the architecture as Windows platform tags spell it.
ARCHITECTURE_BY_MACHINE = {0x8664: "amd64", 0xAA64: "arm64", 0x14C: "x86"}
_DIRECTORIES = [pefile.DIRECTORY_ENTRY[name] for name in (
    "IMAGE_DIRECTORY_ENTRY_IMPORT", "IMAGE_DIRECTORY_ENTRY_EXPORT", "IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT"
)]
_PE_SIGNATURE = b"PE\0\0"


def is_pe_header(head: bytes) -> bool:
    """An MZ header whose e_lfanew points at a PE signature within ``head``."""
    if head[:2] != b"MZ" or len(head) < 0x40:
        return False
    (offset,) = struct.unpack_from("<I", head, 0x3C)
    return head[offset : offset + 4] == _PE_SIGNATURE if offset + 4 <= len(head) else False


def is_python_dll(name: str) -> bool:
    """python3.dll, python313.dll, python313_d.dll: the interpreter's C API."""
    lowered = name.lower()
    return lowered.startswith("python3") and lowered.endswith(".dll")


def _text(raw: bytes | None) -> str:
    return raw.decode("utf-8", "replace") if raw else ""


def read_pe_facts(path: Path, shown_as: str) -> BinaryFacts:
    """Read the facts of the PE file at ``path``; ``shown_as`` names it in messages."""
    try:
        with pefile.PE(str(path), fast_load=True) as image:
            image.parse_data_directories(directories=_DIRECTORIES)
            return _facts(image)
    except DamagedDeviceCode as err:
        raise TvmFfiWheelError(f"{shown_as}: {err}", "rebuild the binary, or remove the damaged device code") from None
    except (pefile.PEFormatError, ValueError, IndexError, struct.error, OSError) as err:
        raise TvmFfiWheelError(
            f"{shown_as} looks like a PE file but cannot be read ({err})",
            "rebuild it, or remove the damaged file from the wheel",
        ) from None


def _facts(image: pefile.PE) -> BinaryFacts:
    # pefile reads what it can of a file cut short; the sections' extent tells it was.
    end = max((s.PointerToRawData + s.SizeOfRawData for s in image.sections), default=0)
    if end > len(image.__data__):
        raise ValueError(f"it is cut short: its sections end at byte {end}, the file at {len(image.__data__)}")
    needed: list[str] = []
    imports_from: list[tuple[str, tuple[str, ...]]] = []
    for entry in [*getattr(image, "DIRECTORY_ENTRY_IMPORT", ()), *getattr(image, "DIRECTORY_ENTRY_DELAY_IMPORT", ())]:
        library = _text(entry.dll)
        symbols = tuple(sorted(
            _text(item.name) if item.name else f"#{item.ordinal}" for item in entry.imports
        ))
        needed.append(library)
        imports_from.append((library, symbols))
    exports = frozenset(
        _text(symbol.name) for symbol in getattr(getattr(image, "DIRECTORY_ENTRY_EXPORT", None), "symbols", ())
        if symbol.name
    )
    machine = image.FILE_HEADER.Machine
    return BinaryFacts(
        format="pe",
        architecture=ARCHITECTURE_BY_MACHINE.get(machine, f"machine {machine:#06x}"),
        install_name=None,
        needed=tuple(needed),
        run_paths=(),
        import_versions=(),
        python_c_api=tuple(sorted(s for library, symbols in imports_from if is_python_dll(library) for s in symbols)),
        imports=frozenset(s for _, symbols in imports_from for s in symbols),
        exports=exports,
        device_code=tuple(images_in_sections(image.__data__, [
            (_text(section.Name.rstrip(b"\0")), section.PointerToRawData,
             section.PointerToRawData + section.SizeOfRawData)
            for section in image.sections if section.SizeOfRawData and section.PointerToRawData
        ])),
        imports_from=tuple(imports_from),
    )
