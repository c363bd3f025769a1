"""Read a wheel archive safely, and write a new one atomically with a correct RECORD."""

from __future__ import annotations

import base64
import contextlib
import csv
import dataclasses
import hashlib
import io
import os
import queue
import secrets
import shutil
import stat
import struct
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from packaging.tags import Tag
from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from tvmffi_wheel.errors import TvmFfiWheelError

_CHUNK = 1 << 20


def record_hash(digest: hashlib._Hash) -> str:
    return "sha256=" + base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


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
        part = lambda attr: ".".join(dict.fromkeys(getattr(t, attr) for t in self.tags))  # noqa: E731
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
def _damage_reported(path: Path) -> Iterator[None]:
    """Damaged archive data becomes one clear error."""
    try:
        yield
    except ZIP_READ_ERRORS as err:
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
        try:
            self._zip = zipfile.ZipFile(path)
        except ZIP_READ_ERRORS as err:
            raise TvmFfiWheelError(
                f"{path} is not a readable wheel ({err})", "rebuild or download it again"
            ) from None
        self.members = self._zip.infolist()
        names = [m.filename for m in self.members]
        for name in names:
            if name.startswith("/") or ".." in name.split("/") or "\\" in name:
                raise TvmFfiWheelError(f"{path} has an unsafe member name {name!r}")
        if len(set(names)) != len(names):
            raise TvmFfiWheelError(f"{path} has duplicate members")
        for info in self.members:
            if stat.S_ISLNK(info.external_attr >> 16):
                raise TvmFfiWheelError(
                    f"{path} has a symbolic link member, {info.filename}; installers write it "
                    "as a file holding the link's target",
                    "ship the file itself, or create the link at run time",
                )
        self.dist_info = f"{self.name.distribution}-{self.name.version}.dist-info"
        for required in ("WHEEL", "METADATA", "RECORD"):
            if f"{self.dist_info}/{required}" not in names:
                raise TvmFfiWheelError(
                    f"{path} has no {self.dist_info}/{required}",
                    "the file name and the .dist-info folder inside must agree",
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
                "a wheel must not be renamed; rebuild it, or retag it with `tvmffi-wheel repair`",
            )
        fields = {}
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

    def read_text(self, member: str) -> str:
        with _damage_reported(self.path):
            return self._zip.read(member).decode("utf-8")

    def dist_info_text(self, file_name: str) -> str:
        return self.read_text(f"{self.dist_info}/{file_name}")

    @property
    def record_name(self) -> str:
        return f"{self.dist_info}/RECORD"

    def record_rows(self) -> dict[str, tuple[str, str]]:
        """RECORD as member -> (hash, size)."""
        text = self.read_text(self.record_name)
        return {row[0]: (row[1], row[2]) for row in csv.reader(io.StringIO(text)) if len(row) >= 3}

    def stream(self, info: zipfile.ZipInfo, *, hashed: bool = False) -> Iterator[bytes]:
        """The member's content in chunks, inflated in order.

        A large deflated member is inflated on a second thread while the caller hashes
        and reads the chunks: zlib and hashlib both release the GIL, so the two overlap.
        Its CRC is checked unless ``hashed``: the caller compares a SHA-256 of the content
        with RECORD, which catches more than the CRC would.
        """
        with _damage_reported(self.path):
            if info.file_size < _READ_AHEAD_FROM or info.compress_type != zipfile.ZIP_DEFLATED:
                with self._zip.open(info) as source:
                    yield from iter(lambda: source.read(_CHUNK), b"")
            else:
                yield from _read_ahead(lambda: _inflate(self.path, info, check_crc=not hashed))

    def extract(self, info: zipfile.ZipInfo, root: Path) -> Path:
        target = root / info.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        with _damage_reported(self.path), self._zip.open(info) as source, target.open("wb") as sink:
            shutil.copyfileobj(source, sink, _CHUNK)
        return target

    def info(self, member: str) -> zipfile.ZipInfo:
        return self._zip.getinfo(member)

    def open_member(self, info: zipfile.ZipInfo) -> io.BufferedIOBase:
        return self._zip.open(info)


_READ_AHEAD_FROM = 8 << 20
_READ_AHEAD_DEPTH = 4  # chunks in flight: bounds the memory a large member costs


def _data_offset(stream: BinaryIO, info: zipfile.ZipInfo) -> int:
    """Where a member's compressed bytes start: after its local header."""
    stream.seek(info.header_offset)
    header = stream.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for {info.filename}")
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_length + extra_length


def _inflate(path: Path, info: zipfile.ZipInfo, *, check_crc: bool) -> Iterator[bytes]:
    """Inflate a deflated member straight from the file, checking its size (and CRC).

    The same work zipfile does, without its per-read overhead on large members.
    """
    with path.open("rb") as stream:
        stream.seek(_data_offset(stream, info))
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        remaining, crc, size = info.compress_size, 0, 0
        while remaining:
            compressed = stream.read(min(_CHUNK, remaining))
            if not compressed:
                raise zipfile.BadZipFile(f"{info.filename} is cut short")
            remaining -= len(compressed)
            block = inflater.decompress(compressed)
            size += len(block)
            if check_crc:
                crc = zlib.crc32(block, crc)
            yield block
        block = inflater.flush()
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


def _new_info(name: str, template: zipfile.ZipInfo) -> zipfile.ZipInfo:
    """The header fields of every member we write, whether copied or compressed anew.

    Copies and new members must look the same, so that repairing a repaired wheel
    writes the same bytes.
    """
    info = zipfile.ZipInfo(name, date_time=template.date_time)
    info.external_attr = template.external_attr
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _copy_compressed(
    source: BinaryIO, template: zipfile.ZipInfo, out: zipfile.ZipFile
) -> None:
    """Copy a member's compressed bytes as they are: no inflating, no deflating.

    zipfile has no public way to do this, so this writes the local header and the data
    itself and registers the entry for the central directory (`fp`, `filelist`,
    `NameToInfo`, `start_dir`: internals stable since Python 3.6).
    """
    info = _new_info(template.filename, template)
    info.compress_type = template.compress_type
    info.CRC = template.CRC
    info.compress_size = template.compress_size
    info.file_size = template.file_size
    start = _data_offset(source, template)
    info.header_offset = out.fp.tell()
    zip64 = info.file_size > zipfile.ZIP64_LIMIT or info.compress_size > zipfile.ZIP64_LIMIT
    out.fp.write(info.FileHeader(zip64))
    out.fp.flush()
    _copy_range(source, start, template.compress_size, out.fp)
    out.filelist.append(info)
    out.NameToInfo[info.filename] = info
    out.start_dir = out.fp.tell()


def _copy_range(source: BinaryIO, start: int, length: int, sink: BinaryIO) -> None:
    """Copy bytes between files in the kernel where it can (copy_file_range), else through us."""
    copied = 0
    if hasattr(os, "copy_file_range"):
        sink_offset = sink.tell()
        try:
            while copied < length:
                done = os.copy_file_range(
                    source.fileno(), sink.fileno(), length - copied, start + copied, sink_offset + copied
                )
                if done == 0:
                    break
                copied += done
        except OSError:  # not supported between these files: copy the rest by hand
            pass
        sink.seek(sink_offset + copied)
    source.seek(start + copied)
    while copied < length:
        block = source.read(min(_CHUNK, length - copied))
        if not block:
            raise TvmFfiWheelError(f"{getattr(source, 'name', 'the source wheel')} is cut short")
        sink.write(block)
        copied += len(block)


def rewrite_wheel_file(text: str, name: WheelName) -> str:
    """The WHEEL file with its Tag lines replaced by the new tags."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("Tag:")]
    lines += [f"Tag: {tag}" for tag in name.tags]
    return "\n".join(lines) + "\n"


def _write_member(
    out: zipfile.ZipFile, template: zipfile.ZipInfo, source: io.BufferedIOBase, size_hint: int
) -> tuple[str, int]:
    info = _new_info(template.filename, template)
    digest = hashlib.sha256()
    size = 0
    with out.open(info, "w", force_zip64=size_hint >= zipfile.ZIP64_LIMIT) as sink:
        for block in iter(lambda: source.read(_CHUNK), b""):
            digest.update(block)
            size += len(block)
            sink.write(block)
    return record_hash(digest), size


class WheelWriter:
    """Writes a new version of a wheel under a temporary name in the output folder.

    Output order is fixed, so a repaired wheel repaired again comes out the same: the
    archive's members outside the dist-info folder in their order, then added members
    (sorted), then the dist-info files, then RECORD. Unchanged members are copied
    compressed, as they are. ``copy_ahead`` starts copying the members outside the
    dist-info folder on a second thread while the caller still inspects and decides;
    ``finish`` then only rewinds to the first member that did change.
    """

    def __init__(self, archive: WheelArchive, out_dir: Path) -> None:
        self._archive = archive
        self._out_dir = out_dir
        self.temp_path: Path | None = None
        self._raw: BinaryIO | None = None
        self._zip: zipfile.ZipFile | None = None
        self._source: BinaryIO | None = None
        self._copied: list[tuple[str, int]] = []  # (member, header offset) copied ahead
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._stop = threading.Event()

    def create(self) -> None:
        """Create the temporary file. Call it where ``abort`` runs on any exception: the
        name is set before the file exists, so an interrupt at any point leaves nothing."""
        self.temp_path = self._out_dir / f".tvmffi-wheel-{secrets.token_hex(8)}.whl.tmp"
        # 0o666 less the umask: the permissions a wheel written by any other tool gets.
        descriptor = os.open(self.temp_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        self._raw = os.fdopen(descriptor, "w+b")
        self._zip = zipfile.ZipFile(self._raw, "w")
        self._source = self._archive.path.open("rb")

    def _body(self) -> list[zipfile.ZipInfo]:
        prefix = self._archive.dist_info + "/"
        return [i for i in self._archive.members if not i.is_dir() and not i.filename.startswith(prefix)]

    def copy_ahead(self) -> None:
        def run() -> None:
            try:
                for info in self._body():
                    if self._stop.is_set():
                        return
                    offset = self._zip.fp.tell()
                    _copy_compressed(self._source, info, self._zip)
                    self._copied.append((info.filename, offset))
            except BaseException as err:  # raised by finish()
                self._error = err

        self._thread = threading.Thread(target=run, name="tvmffi-wheel-copy", daemon=True)
        self._thread.start()

    def _wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error

    def _rewind_to(self, keep: int) -> None:
        """Drop what was copied ahead from the ``keep``-th member on."""
        if keep < len(self._copied):
            offset = self._copied[keep][1]
            self._zip.fp.seek(offset)
            self._zip.fp.truncate()
            del self._zip.filelist[keep:]
            self._zip.NameToInfo = {i.filename: i for i in self._zip.filelist}
            self._zip.start_dir = offset
            del self._copied[keep:]

    def finish(
        self,
        out_path: Path,
        *,
        digests: Mapping[str, Digest],
        replaced: Mapping[str, Path],
        added: Mapping[str, Path],
        dist_info_files: Mapping[str, str],
        check_size: Callable[[int], None] | None = None,
    ) -> None:
        """Write the rest, check it, and rename it to ``out_path``.

        ``digests`` holds the hashes of unchanged members, computed from their content
        when the wheel was inspected; a member without one is inflated and compressed
        again. ``dist_info_files`` maps members to text; one the archive lacks is added.
        """
        archive, out = self._archive, self._zip
        stamp = archive.info(f"{archive.dist_info}/WHEEL")
        record: list[tuple[str, str, str]] = []

        def put(template: zipfile.ZipInfo, source: io.BufferedIOBase, size_hint: int) -> None:
            digest, size = _write_member(out, template, source, size_hint)
            record.append((template.filename, digest, str(size)))

        def put_file(template: zipfile.ZipInfo, path: Path) -> None:
            with path.open("rb") as stream:
                put(template, stream, path.stat().st_size)

        def put_text(template: zipfile.ZipInfo, text: str) -> None:
            data = text.encode("utf-8")
            put(template, io.BytesIO(data), len(data))

        def put_member(info: zipfile.ZipInfo) -> None:
            if info.filename in dist_info_files:
                put_text(info, dist_info_files[info.filename])
            elif info.filename in replaced:
                put_file(info, replaced[info.filename])
            elif info.filename in digests:
                _copy_compressed(self._source, info, out)
                digest = digests[info.filename]
                record.append((info.filename, digest.hash, str(digest.size)))
            else:
                with _damage_reported(archive.path), archive.open_member(info) as stream:
                    put(info, stream, info.file_size)

        self._wait()
        body = self._body()
        keep = 0  # copied-ahead members that stay: up to the first one that changed
        for name, _ in self._copied:
            if name in replaced or name in dist_info_files or name not in digests:
                break
            digest = digests[name]
            record.append((name, digest.hash, str(digest.size)))
            keep += 1
        self._rewind_to(keep)
        for info in body[keep:]:
            put_member(info)
        for name in sorted(added):
            template = zipfile.ZipInfo(name, date_time=stamp.date_time)
            template.external_attr = 0o100755 << 16  # vendored libraries are executable
            put_file(template, added[name])
        prefix = archive.dist_info + "/"
        for info in archive.members:
            if info.filename.startswith(prefix) and info.filename != archive.record_name:
                put_member(info)
        existing = {info.filename for info in archive.members}
        for name in sorted(set(dist_info_files) - existing):
            template = zipfile.ZipInfo(name, date_time=stamp.date_time)
            template.external_attr = stamp.external_attr
            put_text(template, dist_info_files[name])
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerows(record)
        writer.writerow((archive.record_name, "", ""))
        out.writestr(_new_info(archive.record_name, stamp), buffer.getvalue())
        out.close()
        self._raw.close()
        self._source.close()
        _check_written(self.temp_path, record)
        if check_size is not None:
            check_size(self.temp_path.stat().st_size)
        os.replace(self.temp_path, out_path)

    def abort(self) -> None:
        """Stop, and remove the temporary file: nothing is left behind."""
        self._stop.set()
        try:
            # An interrupt can land inside Thread.start(), before there is a thread to join.
            if self._thread is not None and self._thread.ident is not None:
                self._thread.join()
        finally:
            for handle in (self._zip, self._raw, self._source):
                if handle is not None:
                    with contextlib.suppress(Exception):
                        handle.close()
            if self.temp_path is not None:
                with contextlib.suppress(OSError):
                    self.temp_path.unlink()


def _check_written(path: Path, record: list[tuple[str, str, str]]) -> None:
    """The archive holds exactly the members RECORD lists, with the sizes it lists.

    The hashes were computed from the content as it was written or inspected; reading
    the central directory back is enough to catch a member lost or doubled on the way.
    """
    with zipfile.ZipFile(path) as written:
        members = [(i.filename, str(i.file_size)) for i in written.infolist()]
        rows = list(csv.reader(io.StringIO(written.read(members[-1][0]).decode("utf-8"))))
    expected = [(name, size) for name, _, size in record]
    if members[:-1] != expected or [tuple(r) for r in rows[:-1]] != record:
        raise RuntimeError(f"{path.name}: the written archive does not match its RECORD")


def ensure_writable_directory(path: Path) -> None:
    """Check the output folder up front, so a long build does not fail at the last step."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TvmFfiWheelError(
            f"the output folder {path} cannot be created ({err.strerror})",
            "choose a folder you can write to",
        ) from None
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise TvmFfiWheelError(
            f"the output folder {path} is not a writable folder", "choose a folder you can write to"
        )
