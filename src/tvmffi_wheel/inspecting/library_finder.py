"""Finding the libraries a repair vendors on this machine, and reading them.

The platform (deciding/platforms) says where its loader would look, in order; this reads
those places off the disk: the first file there of the requester's format and architecture,
its facts, and its content's hash (which names the vendored copy). Each is read once.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from tvmffi_wheel.common._auditwheel import system_library_dirs
from tvmffi_wheel.inspecting.binary import read_binary_facts
from tvmffi_wheel.inspecting.facts import BinaryFacts
from tvmffi_wheel.inspecting.wheel_reader import file_sha256


@dataclasses.dataclass(frozen=True)
class FoundLibrary:
    path: Path  # resolved
    facts: BinaryFacts
    digest: str  # SHA-256 of its content, hexadecimal


def _case_insensitive(candidate: Path) -> Path:
    """The file in ``candidate``'s folder whose name matches it but for case (Windows names)."""
    try:
        wanted = candidate.name.lower()
        return next((p for p in candidate.parent.iterdir() if p.name.lower() == wanted), candidate)
    except OSError:
        return candidate


class LibraryFinder:
    """Finds libraries in the places a platform's loader would look; ``search_dirs`` are what
    it searches after a binary's own run paths (--lib-path, then the system's own list)."""

    def __init__(self, search_dirs: Sequence[str]) -> None:
        self.search_dirs = tuple(search_dirs)
        self._facts: dict[Path, BinaryFacts] = {}
        self._digests: dict[Path, str] = {}

    @classmethod
    def for_machine(cls, variables: Sequence[str], loader_paths: bool, lib_path: Sequence[Path],
                    environ: Mapping[str, str]) -> LibraryFinder:
        """--lib-path, then the folders ``variables`` list in ``environ``, then, with
        ``loader_paths``, $LD_LIBRARY_PATH and ld.so.conf as glibc's loader reads them."""
        own = [d for name in variables for d in environ.get(name, "").split(os.pathsep) if d]
        machine = list(system_library_dirs()) if loader_paths else []
        return cls([*(str(p) for p in lib_path), *own, *machine])

    def read(self, path: Path) -> BinaryFacts:
        if path not in self._facts:
            self._facts[path] = read_binary_facts(path, str(path))
        return self._facts[path]

    def find(self, places: Sequence[str], *, fold_case: bool, file_format: str,
             architecture: str) -> FoundLibrary | None:
        """The first of ``places`` that is a library of ``file_format`` and ``architecture``."""
        for place in places:
            candidate = Path(place)
            if fold_case and not candidate.is_file():
                candidate = _case_insensitive(candidate)
            if not candidate.is_file():
                continue
            path = candidate.resolve()
            facts = self.read(path)
            if (facts.format, facts.architecture) == (file_format, architecture):
                if path not in self._digests:  # only what is vendored is hashed
                    self._digests[path] = file_sha256(path)
                return FoundLibrary(path, facts, self._digests[path])
        return None


def system_library_exports(name: str) -> frozenset[str]:
    """What this machine's ``name`` (its C library, `libc.so.6`) exports; none where it has none."""
    for directory in system_library_dirs():
        candidate = Path(directory) / name
        if candidate.is_file():
            return read_binary_facts(candidate.resolve(), str(candidate)).exports
    return frozenset()
