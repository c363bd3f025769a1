"""Which reader reads a binary: the one place that dispatches on the file format.

A new format adds a reader that returns `BinaryFacts` (facts.py) and a branch here.
"""

from __future__ import annotations

from pathlib import Path

from tvmffi_wheel.inspecting.elf import is_elf_header, read_elf_facts
from tvmffi_wheel.inspecting.facts import BinaryFacts, BinaryFormat


def binary_format(head: bytes) -> BinaryFormat | None:
    """The format of a file that starts with ``head``; None if it is no binary we read."""
    return "elf" if is_elf_header(head) else None


def read_binary_facts(path: Path, shown_as: str) -> BinaryFacts:
    """The facts of the binary at ``path``; ``shown_as`` names it in messages."""
    return read_elf_facts(path, shown_as)
