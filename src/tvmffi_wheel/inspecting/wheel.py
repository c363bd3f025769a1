"""Inspect: read a wheel once, yielding the facts of every binary, the device code of
every `.cubin`, `.fatbin` and `.ptx` file, and every member's hash.

`repair` and `check` both start here, so they judge the same facts.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from tvmffi_wheel.common.cores import usable_cores
from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting.binary import (
    binary_format,
    is_binary,
    is_debug_companion,
    read_binary_facts,
    unreadable_binary,
)
from tvmffi_wheel.inspecting.device_code import CUBIN_HEADER, DEVICE_FILE_SUFFIXES, DeviceImage, cubin_image
from tvmffi_wheel.inspecting.elf_stream import read_device_file, read_streamed_facts
from tvmffi_wheel.inspecting.facts import BinaryFacts
from tvmffi_wheel.inspecting.wheel_reader import Digest, Hasher, WheelArchive


class Unpacker:
    """Unpacks members of one wheel into one folder, each at most once, when asked."""

    def __init__(self, archive: WheelArchive, root: Path) -> None:
        self._archive = archive
        self.root = root

    def location(self, member: str) -> Path:
        """Where ``member`` is (or would be) unpacked."""
        return self.root / member

    def unpack(self, member: str) -> Path:
        target = self.location(member)
        if not target.exists():
            self._archive.extract(self._archive.info(member), self.root)
        return target


@dataclasses.dataclass(frozen=True)
class WheelBinary:
    """A binary inside the wheel."""

    path: str  # archive member name
    facts: BinaryFacts
    unpacker: Unpacker | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def origin(self) -> Path | None:
        """The folder `$ORIGIN` names while repairing: where the binary is, or would be,
        unpacked (None for facts that come from no wheel)."""
        if self.unpacker is None:
            return None
        return self.unpacker.location(self.path).parent

    def on_disk(self) -> Path:
        """The binary as a file, unpacked on first use (most are never unpacked)."""
        if self.unpacker is None:
            raise RuntimeError(f"{self.path} is not in a wheel that can be unpacked")
        return self.unpacker.unpack(self.path)


@dataclasses.dataclass(frozen=True)
class DeviceFile:
    """CUDA device code shipped as a file: a `.cubin`, `.fatbin` or `.ptx`."""

    path: str  # archive member name
    images: tuple[DeviceImage, ...]


def all_device_code(binaries: Sequence[WheelBinary], files: Sequence[DeviceFile]) -> list[DeviceImage]:
    """Every image of device code in the wheel: in its binaries and in its device code files."""
    return [image for b in binaries for image in b.facts.device_code] + [i for f in files for i in f.images]


def device_code_groups(
    binaries: Sequence[WheelBinary], files: Sequence[DeviceFile]
) -> list[tuple[str, list[DeviceImage]]]:
    """(where, images) for each piece that must cover the declared architectures on its own:
    each binary with device code, and the device code files together (a package may ship
    one file per architecture)."""
    groups = [(b.path, list(b.facts.device_code)) for b in binaries if b.facts.device_code]
    if files:
        where = "the device code files (" + ", ".join(f.path for f in files) + ")"
        groups.append((where, [image for f in files for image in f.images]))
    return groups


@dataclasses.dataclass(frozen=True)
class DebugFile:
    """Debug symbols shipped beside a binary: a `.dSYM` bundle's file, a `.pdb`."""

    path: str  # archive member name
    size: int  # bytes, unpacked


@dataclasses.dataclass(frozen=True)
class Inspection:
    binaries: list[WheelBinary]
    digests: dict[str, Digest]  # every member but RECORD, from its content
    record_problems: list[str]  # members whose content RECORD does not describe
    device_files: list[DeviceFile] = dataclasses.field(default_factory=list)
    debug_files: list[DebugFile] = dataclasses.field(default_factory=list)
    # Files that claim to be binaries (by name or first bytes) but that no reader reads.
    unreadable: list[str] = dataclasses.field(default_factory=list)


def _is_device_file(name: str, first: bytes) -> bool:
    """A cubin (an ELF file for the GPU), or a file named like device code."""
    return cubin_image(first[:CUBIN_HEADER], "file") is not None or name.endswith(DEVICE_FILE_SUFFIXES)


@dataclasses.dataclass(frozen=True)
class _MemberReading:
    """What reading one member found: its digest, and what it is."""

    digest: Digest
    binary: WheelBinary | None = None
    device_file: DeviceFile | None = None
    debug_file: DebugFile | None = None
    unreadable: str | None = None  # it claims to be a binary, and no reader reads it


def _read_member(archive: WheelArchive, member: zipfile.ZipInfo, hashed: bool, unpacker: Unpacker) -> _MemberReading:
    """Stream one member once: hash it, and read its facts if it is a binary or device code."""
    hasher = Hasher()
    chunks = hasher.wrap(archive.stream(member, hashed=hashed))
    first = next(chunks, b"")
    name = member.filename
    facts = debug_file = device_file = unreadable = None
    file_format = None
    if is_debug_companion(name, first):
        debug_file = DebugFile(name, member.file_size)
    elif _is_device_file(name, first):
        device_file = DeviceFile(name, read_device_file(itertools.chain([first], chunks), name, member.file_size))
    elif (file_format := binary_format(first)) == "elf":
        facts = read_streamed_facts(itertools.chain([first], chunks), name)
    elif file_format is None:
        unreadable = unreadable_binary(name, first)
    for _ in chunks:  # hash whatever the reader did not need
        pass
    binary = None
    if file_format is not None:
        if facts is None:  # not ELF, or a layout the streamed reader does not keep enough of
            facts = read_binary_facts(unpacker.unpack(name), name)
        binary = WheelBinary(name, facts, unpacker)
    return _MemberReading(hasher.result(), binary, device_file, debug_file, unreadable)


def inspect_wheel(archive: WheelArchive, scratch: Path, *, strict: bool = True) -> Inspection:
    """Stream every member once, hash it against RECORD, read the facts of binaries.

    Nothing is unpacked: elf_stream keeps the few byte ranges the facts need. Only a binary
    the streamed reader cannot read (an ELF file with an unusual layout, Mach-O, PE) is
    unpacked under ``scratch`` and read whole; a later stage unpacks a binary there when it
    needs the file (to patch it, say). Members are read on one thread a core: inflating and
    hashing, most of the work, release the GIL. A RECORD that does not match the content is
    an error when ``strict``, else listed in the result.
    """
    unpacker = Unpacker(archive, scratch)
    recorded = archive.record_rows()
    members = [m for m in archive.members if not m.is_dir() and m.filename != archive.record_name]
    readings = _read_all(archive, members, recorded, unpacker)
    binaries: list[WheelBinary] = []
    device_files: list[DeviceFile] = []
    debug_files: list[DebugFile] = []
    unreadable: list[str] = []
    digests: dict[str, Digest] = {}
    problems: list[str] = []
    for member, reading in zip(members, readings):
        listed = recorded.get(member.filename)
        if listed is None:
            problems.append(f"{member.filename} is not listed in RECORD")
        elif listed != (reading.digest.hash, str(reading.digest.size)):
            problems.append(f"{member.filename} does not match its RECORD hash and size")
        digests[member.filename] = reading.digest
        if reading.binary is not None:
            binaries.append(reading.binary)
        if reading.device_file is not None:
            device_files.append(reading.device_file)
        if reading.debug_file is not None:
            debug_files.append(reading.debug_file)
        if reading.unreadable is not None:
            unreadable.append(reading.unreadable)
    present = set(digests) | {archive.record_name}
    problems += [f"RECORD lists {name}, which the wheel lacks" for name in recorded if name not in present]
    problems += [f"RECORD lists {name} more than once" for name in archive.record_repeats()]
    if strict:
        _refuse_damage(archive.path.name, problems, unreadable)
    return Inspection(binaries, digests, problems, device_files, debug_files, unreadable)


def _read_all(archive: WheelArchive, members: list[zipfile.ZipInfo], recorded: Mapping[str, object],
              unpacker: Unpacker) -> list[_MemberReading]:
    """Every member read, in the archive's order, on up to one thread a core."""
    threads = min(usable_cores(), len(members))
    if threads <= 1:
        return [_read_member(archive, m, m.filename in recorded, unpacker) for m in members]
    pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="tvmffi-wheel-read")
    try:
        futures = [pool.submit(_read_member, archive, m, m.filename in recorded, unpacker) for m in members]
        return [future.result() for future in futures]
    finally:  # on an error or Ctrl-C, what has not started never starts
        pool.shutdown(wait=True, cancel_futures=True)


def _refuse_damage(wheel: str, problems: list[str], unreadable: list[str]) -> None:
    if problems:
        raise TvmFfiWheelError(
            f"{wheel} is damaged or was changed after it was built: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            "rebuild the wheel; do not edit a wheel's files in place",
        )
    if unreadable:
        raise TvmFfiWheelError(f"{wheel}: {'; '.join(unreadable)}",
                               "rebuild it, or remove the file from the wheel (it would not load)")


def inspect_patched(
    binaries: Sequence[WheelBinary], replaced: Mapping[str, Path], added: Mapping[str, Path]
) -> list[WheelBinary]:
    """The binaries as the new wheel holds them: each patched one read again, each added one
    (a vendored library) read; the others as inspected."""
    final = [WheelBinary(b.path, read_binary_facts(replaced[b.path], b.path)) if b.path in replaced else b
             for b in binaries]
    return final + [WheelBinary(member, read_binary_facts(path, member)) for member, path in added.items()
                    if is_binary(path)]
