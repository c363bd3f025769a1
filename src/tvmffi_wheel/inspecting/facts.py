"""The facts of one binary that the later stages read, whatever its file format.

The decide and verify stages read `BinaryFacts` only; a reader per format fills it: ELF
(elf.py, and elf_stream.py for members streamed out of a wheel), Mach-O (macho.py) and PE
(pe.py). binary.py picks the reader for a file.

Symbol names are the names the linker of the platform's C compiler sees: a Mach-O symbol
loses its leading underscore (`_TVMFFIFunctionCall` is `TVMFFIFunctionCall`, as on ELF),
so C names compare across formats. C++ manglings still differ: Itanium on ELF and Mach-O
(with `long` and `long long` told apart differently), MSVC's on PE.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from tvmffi_wheel.inspecting.device_code import DeviceImage

# The file formats a reader exists for.
BinaryFormat = Literal["elf", "macho", "pe"]


@dataclasses.dataclass(frozen=True)
class ImportVersion:
    """One symbol version the binary needs from a library, e.g. libc.so.6 GLIBC_2.14."""

    library: str
    version: str
    symbols: tuple[str, ...]  # the imports bound to this version, for messages

    def describe(self) -> str:
        if self.symbols:
            return ", ".join(f"{s}@{self.version}" for s in self.symbols[:3])
        return self.version


@dataclasses.dataclass(frozen=True)
class CodeSignature:
    """A Mach-O code signature, as far as it can be checked without Apple's tools."""

    ad_hoc: bool  # no identity: the linker's or `codesign -s -`
    problem: str = ""  # why it is invalid ("": every page hash matches)


@dataclasses.dataclass(frozen=True)
class BinaryFacts:
    format: BinaryFormat
    # The architecture as platform tags spell it ("x86_64", "aarch64"); for a machine with no
    # such name, the format's own description, e.g. "EM_SPARC (32-bit)".
    architecture: str
    install_name: str | None  # the name other binaries ask for it by (an ELF SONAME)
    needed: tuple[str, ...]  # the libraries it loads, in its own order
    run_paths: tuple[str, ...]  # where the loader looks for them first, in order
    import_versions: tuple[ImportVersion, ...]  # which library version each versioned import binds to
    python_c_api: tuple[str, ...]  # imports from the CPython C API, sorted
    imports: frozenset[str]
    exports: frozenset[str]  # what other binaries can bind to
    device_code: tuple[DeviceImage, ...] = ()  # CUDA device code, wherever in the file
    compilers: tuple[str, ...] = ()  # what the compilers recorded, e.g. "GCC: (Debian 12.2.0-14) 12.2.0"
    weak_imports: frozenset[str] = frozenset()  # imports that may stay unresolved
    # The library each import binds to, where the format records it (Mach-O, PE):
    # (library, its symbols) pairs, in the binary's order of libraries.
    imports_from: tuple[tuple[str, tuple[str, ...]], ...] = ()
    minimum_os: str = ""  # the oldest OS release it runs on, where the format records it (macOS: "11.0")
    code_signature: CodeSignature | None = None  # Mach-O only; None: unsigned
