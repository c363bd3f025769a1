"""Read a wheel archive safely: its name, its members, its dist-info files, their content."""

from __future__ import annotations

import base64
import collections
import contextlib
import csv
import dataclasses
import hashlib
import io
import queue
import stat
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

from packaging.tags import Tag
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from tvmffi_wheel.common.build_facts import BUILD_FACTS_FILE, BuildFacts, build_facts_from_json
from tvmffi_wheel.errors import TvmFfiWheelError, environment_problem
from tvmffi_wheel.inspecting._zipraw import data_offset

CHUNK = 1 << 20


def record_hash(digest: hashlib._Hash) -> str:
    return "sha256=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def record_hash_hex(value: str) -> str:
    """RECORD's `sha256=<urlsafe base64>` as the hex digest an SBOM gives."""
    encoded = value.partition("=")[2]
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).hex()


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of a file, read in chunks."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


@dataclasses.dataclass(frozen=True)
class WheelName:
    distribution: str  # as in the file name, e.g. "example_kernels"
    version: str
    build: str  # "" or the build tag
    tags: tuple[Tag, ...]

    @classmethod
    def parse(cls, file_name: str) -> WheelName:
        try:
            _, _, build, _ = parse_wheel_filename(file_name)
        except InvalidWheelFilename as err:
            raise TvmFfiWheelError(
                f"{file_name} is not a valid wheel file name ({err})",
                "wheel names look like name-1.0-py3-none-manylinux_2_28_x86_64.whl",
            ) from None
        parts = file_name[: -len(".whl")].split("-")
        interpreters, abis, platforms = (p.split(".") for p in parts[-3:])
        # In the order the file name gives them, which parse_wheel_filename's set loses.
        tags = tuple(Tag(i, a, p) for i in interpreters for a in abis for p in platforms)
        build_text = f"{build[0]}{build[1]}" if build else ""
        return cls(parts[0], parts[1], build_text, tags)

    @property
    def python_tag(self) -> tuple[str, str]:
        return self.tags[0].interpreter, self.tags[0].abi

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(t.platform for t in self.tags))

    def with_tags(self, python: tuple[str, str], platforms: tuple[str, ...]) -> WheelName:
        tags = tuple(Tag(python[0], python[1], p) for p in platforms)
        return dataclasses.replace(self, tags=tags)

    @property
    def tag_text(self) -> str:
        """`py3-none-a.b`: the compressed tag set of the file name."""

        def part(attribute: str) -> str:
            return ".".join(dict.fromkeys(getattr(t, attribute) for t in self.tags))

        return f"{part('interpreter')}-{part('abi')}-{part('platform')}"

    @property
    def file_name(self) -> str:
        build = f"-{self.build}" if self.build else ""
        return f"{self.distribution}-{self.version}{build}-{self.tag_text}.whl"


# What zipfile raises on damaged archives (the fuzz tests in tests/unit/test_fuzz.py found
# each of these): bad headers, bad CRCs, cut-off deflate streams, offsets that point nowhere.
ZIP_READ_ERRORS = (
    zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError, OverflowError, OSError,
)


@contextlib.contextmanager
def damage_reported(path: Path) -> Iterator[None]:
    """Damaged archive data becomes one clear error. The machine's own errors (a full disk
    while copying out of the archive) are not the archive's: they pass on as they are."""
    try:
        yield
    except ZIP_READ_ERRORS as err:
        if isinstance(err, OSError) and environment_problem(err) is not None:
            raise
        raise TvmFfiWheelError(
            f"{path} is not a readable wheel ({err})", "rebuild or download it again"
        ) from None


class WheelArchive:
    """An opened wheel: its members, its dist-info files, and extraction of its binaries."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise TvmFfiWheelError(f"{path} is not a file", "pass the path of a .whl file")
        self.name = WheelName.parse(path.name)
        with damage_reported(path):
            self._zip = zipfile.ZipFile(path)
        self._other_compression = threading.Lock()
        self.members = self._zip.infolist()
        names = [m.filename for m in self.members]
        for name in names:
            if name.startswith("/") or ".." in name.split("/") or "\\" in name:
                raise TvmFfiWheelError(f"{path} has an unsafe member name {name!r}")
        if len(set(names)) != len(names):
            raise TvmFfiWheelError(f"{path} has duplicate members")
        for info in self.members:
            if info.flag_bits & 0x1:  # zipfile would ask for a password, which no installer has
                raise TvmFfiWheelError(f"{path} has an encrypted member, {info.filename}", "rebuild the wheel")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise TvmFfiWheelError(
                    f"{path} has a symbolic link member, {info.filename}; installers write it "
                    "as a file holding the link's target",
                    "ship the file itself, or create the link at run time",
                )
        self.dist_info = f"{self.name.distribution}-{self.name.version}.dist-info"
        folders = sorted({n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")})
        if self.dist_info not in folders:
            raise TvmFfiWheelError(
                f"{path} has no {self.dist_info} folder"
                + (f", but {', '.join(folders)}" if folders else ", nor any .dist-info folder"),
                "the file name and the .dist-info folder inside must agree: rebuild the wheel, do not rename it",
            )
        for required in ("WHEEL", "METADATA", "RECORD"):
            if f"{self.dist_info}/{required}" not in names:
                raise TvmFfiWheelError(
                    f"{path} has no {self.dist_info}/{required}, which every wheel has",
                    "rebuild the wheel: installers need it",
                )
        self._check_name_against_contents()

    def _check_name_against_contents(self) -> None:
        """The file name's tags, name and version are what WHEEL and METADATA say."""
        wheel_tags = {
            line.split(":", 1)[1].strip()
            for line in self.dist_info_text("WHEEL").splitlines()
            if line.startswith("Tag:")
        }
        named_tags = {str(tag) for tag in self.name.tags}
        if wheel_tags != named_tags:
            raise TvmFfiWheelError(
                f"{self.path.name} is named for {', '.join(sorted(named_tags))}, but its WHEEL file "
                f"says {', '.join(sorted(wheel_tags)) or 'no tags'}",
                "a wheel must not be renamed: rebuild it",
            )
        fields: dict[str, str] = {}
        for line in self.dist_info_text("METADATA").partition("\n\n")[0].splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip().lower(), value.strip())
        try:
            same = canonicalize_name(fields.get("name", "")) == canonicalize_name(
                self.name.distribution
            ) and Version(fields.get("version", "")) == Version(self.name.version)
        except InvalidVersion:
            same = False
        if not same:
            raise TvmFfiWheelError(
                f"{self.path.name} is named {self.name.distribution} {self.name.version}, but its "
                f"METADATA says {fields.get('name')} {fields.get('version')}",
                "a wheel must not be renamed; rebuild it",
            )

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> WheelArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def member_names(self) -> list[str]:
        return [m.filename for m in self.members]

    def read_text(self, member: str) -> str:
        with damage_reported(self.path):
            return self._zip.read(member).decode("utf-8")

    def dist_info_text(self, file_name: str) -> str:
        return self.read_text(f"{self.dist_info}/{file_name}")

    def build_facts(self) -> BuildFacts | None:
        """What the build recorded in the dist-info's tvmffi_wheel.json (None: nothing readable)."""
        member = f"{self.dist_info}/{BUILD_FACTS_FILE}"
        return build_facts_from_json(self.read_text(member)) if member in self.member_names else None

    @property
    def record_name(self) -> str:
        return f"{self.dist_info}/RECORD"

    def record_rows(self) -> dict[str, tuple[str, str]]:
        """RECORD as member -> (hash, size)."""
        return {row[0]: (row[1], row[2]) for row in self._record() if len(row) >= 3}

    def record_repeats(self) -> list[str]:
        """The members RECORD lists more than once (installers disagree on which row counts)."""
        counts = collections.Counter(row[0] for row in self._record() if row)
        return sorted(name for name, count in counts.items() if count > 1)

    def _record(self) -> list[list[str]]:
        return list(csv.reader(io.StringIO(self.read_text(self.record_name))))

    def stream(self, info: zipfile.ZipInfo, *, hashed: bool = False) -> Iterator[bytes]:
        """The member's content in chunks, inflated in order.

        Each call reads through a file handle of its own, so several threads can stream
        members at once (zipfile shares one handle, and counts its users without a lock).
        A large deflated member is inflated on a further thread while the caller hashes and
        reads the chunks: zlib and hashlib both release the GIL, so the two overlap. Its CRC
        is checked unless ``hashed``: the caller compares a SHA-256 of the content with
        RECORD, which catches more than the CRC would.
        """
        with damage_reported(self.path):
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                with self._other_compression, self._zip.open(info) as source:  # rare in wheels
                    yield from iter(lambda: source.read(CHUNK), b"")
            elif info.file_size < _READ_AHEAD_FROM or info.compress_type != zipfile.ZIP_DEFLATED:
                yield from _member_chunks(self.path, info, check_crc=not hashed)
            else:
                yield from _read_ahead(lambda: _member_chunks(self.path, info, check_crc=not hashed))

    def extract(self, info: zipfile.ZipInfo, root: Path) -> Path:
        target = root / info.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as sink:
            for chunk in self.stream(info):
                sink.write(chunk)
        return target

    def info(self, member: str) -> zipfile.ZipInfo:
        return self._zip.getinfo(member)

    def open_member(self, info: zipfile.ZipInfo) -> IO[bytes]:
        return self._zip.open(info)


_READ_AHEAD_FROM = 8 << 20
_READ_AHEAD_DEPTH = 4  # chunks in flight: bounds the memory a large member costs


def _member_chunks(path: Path, info: zipfile.ZipInfo, *, check_crc: bool) -> Iterator[bytes]:
    """A stored or deflated member's content, read straight from the file, its size (and
    CRC) checked: the same work zipfile does, without its per-read overhead and shared handle."""
    with path.open("rb") as stream:
        stream.seek(data_offset(stream, info))
        inflater = zlib.decompressobj(-zlib.MAX_WBITS) if info.compress_type == zipfile.ZIP_DEFLATED else None
        remaining, crc, size = info.compress_size, 0, 0
        while remaining:
            stored = stream.read(min(CHUNK, remaining))
            if not stored:
                raise zipfile.BadZipFile(f"{info.filename} is cut short")
            remaining -= len(stored)
            block = inflater.decompress(stored) if inflater is not None else stored
            size += len(block)
            if check_crc:
                crc = zlib.crc32(block, crc)
            yield block
        block = inflater.flush() if inflater is not None else b""
        size += len(block)
        if check_crc:
            crc = zlib.crc32(block, crc)
        if block:
            yield block
    if size != info.file_size or (check_crc and crc != info.CRC):
        raise zipfile.BadZipFile(f"bad CRC or size for {info.filename}")


def _read_ahead(make_source: Callable[[], Iterator[bytes]]) -> Iterator[bytes]:
    chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=_READ_AHEAD_DEPTH)
    stop = threading.Event()

    def produce() -> None:
        try:
            for block in make_source():
                if stop.is_set():
                    return
                chunks.put(block)
            chunks.put(None)
        except BaseException as err:  # handed to the consumer, which raises it
            chunks.put(err)

    producer = threading.Thread(target=produce, name="tvmffi-wheel-inflate", daemon=True)
    producer.start()
    try:
        while True:
            item = chunks.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while producer.is_alive():  # let a blocked put() finish
            with contextlib.suppress(queue.Empty):
                chunks.get(timeout=0.05)
        producer.join()


@dataclasses.dataclass(frozen=True)
class Digest:
    """A member's RECORD hash and size, computed from its content."""

    hash: str
    size: int


class Hasher:
    """Hashes chunks as they pass through on their way to another reader."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._size = 0

    def wrap(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self._digest.update(chunk)
            self._size += len(chunk)
            yield chunk

    def result(self) -> Digest:
        return Digest(record_hash(self._digest), self._size)
