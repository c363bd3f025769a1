"""Write a new version of a wheel atomically, with a RECORD computed from the content."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import csv
import dataclasses
import hashlib
import io
import os
import secrets
import tempfile
import threading
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import IO, BinaryIO

from tvmffi_wheel.common.cores import usable_cores
from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting import _zipraw
from tvmffi_wheel.inspecting.wheel_reader import (
    CHUNK,
    Digest,
    WheelArchive,
    WheelName,
    damage_reported,
    record_hash,
)


@dataclasses.dataclass(frozen=True)
class WheelChanges:
    """What the new wheel holds instead of the old one's members."""

    digests: Mapping[str, Digest]  # unchanged members, hashed from their content when inspected
    replaced: Mapping[str, Path] = dataclasses.field(default_factory=dict)  # new content on disk
    added: Mapping[str, Path] = dataclasses.field(default_factory=dict)  # new members (vendored)
    new_files: Mapping[str, str] = dataclasses.field(default_factory=dict)  # new text members (a loader)
    # Dist-info members given as text; one the archive lacks is added.
    dist_info_files: Mapping[str, str] = dataclasses.field(default_factory=dict)
    removed: frozenset[str] = frozenset()  # members the new wheel leaves out

    def keeps(self, member: str) -> bool:
        """The member is copied as it is stored."""
        return (member in self.digests and member not in self.replaced and member not in self.dist_info_files
                and member not in self.removed)


def rewrite_wheel_file(text: str, name: WheelName) -> str:
    """The WHEEL file with its Tag lines replaced by the new tags."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("Tag:")]
    lines += [f"Tag: {tag}" for tag in name.tags]
    return "\n".join(lines) + "\n"


def _new_info(name: str, template: zipfile.ZipInfo) -> zipfile.ZipInfo:
    """The header fields of every member we write, whether copied or compressed anew.

    Copies and new members must look the same, so that repairing a repaired wheel
    writes the same bytes.
    """
    info = zipfile.ZipInfo(name, date_time=template.date_time)
    info.external_attr = template.external_attr
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _stored_copy_info(name: str, template: zipfile.ZipInfo) -> zipfile.ZipInfo:
    info = _new_info(name, template)
    info.compress_type = template.compress_type
    info.CRC = template.CRC
    info.compress_size = template.compress_size
    info.file_size = template.file_size
    return info


@dataclasses.dataclass(frozen=True)
class _Deflated:
    """A file's content deflated as zipfile deflates it, in an unnamed temporary file."""

    stream: BinaryIO  # the raw deflate stream; closing it removes the file
    crc: int
    size: int
    compressed_size: int
    hash: str  # RECORD's form


def _deflate(path: Path, folder: Path) -> _Deflated:
    # zipfile's own settings, so a member reads back the same whichever way it was written
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -zlib.MAX_WBITS)
    digest, crc, size = hashlib.sha256(), 0, 0
    # Unnamed: nothing is left behind, whatever stops us. Handed to the caller, closed by it.
    sink = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115
    try:
        with path.open("rb") as source:
            for block in iter(lambda: source.read(CHUNK), b""):
                digest.update(block)
                crc = zlib.crc32(block, crc)
                size += len(block)
                sink.write(compressor.compress(block))
        sink.write(compressor.flush())
        compressed_size = sink.tell()
    except BaseException:
        sink.close()
        raise
    return _Deflated(sink, crc, size, compressed_size, record_hash(digest))


class _Deflater:
    """Deflates the new files of a wheel on one thread a core, a few ahead of the writer,
    which takes them in its order. Compressing is most of a repair that patches hundreds
    of binaries, and zlib leaves the GIL free while it works."""

    def __init__(self, paths: list[Path], folder: Path, threads: int) -> None:
        self._pending = collections.deque(paths)
        self._folder = folder
        self._ahead = 2 * threads  # bounds the temporary space: a few members' compressed bytes
        self._pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="tvmffi-wheel-deflate")
        self._running: collections.deque[tuple[Path, concurrent.futures.Future[_Deflated]]] = collections.deque()
        self._top_up()

    def _top_up(self) -> None:
        while self._pending and len(self._running) < self._ahead:
            path = self._pending.popleft()
            self._running.append((path, self._pool.submit(_deflate, path, self._folder)))

    def take(self, path: Path) -> _Deflated:
        expected, future = self._running.popleft()
        if expected != path:
            raise RuntimeError(f"the writer asked for {path}, the deflater made {expected} next")
        self._top_up()
        return future.result()

    def close(self) -> None:
        """Stop: start nothing new, wait for what runs, and drop what was not taken."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        for _, future in self._running:
            if not future.cancelled() and future.exception() is None:
                future.result().stream.close()
        self._running.clear()


class _Open:
    """The files a writer holds while it writes."""

    def __init__(self, temp_path: Path, source_path: Path) -> None:
        # 0o666 less the umask: the permissions a wheel written by any other tool gets.
        descriptor = os.open(temp_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        self.raw: BinaryIO = os.fdopen(descriptor, "w+b")
        self.zip = zipfile.ZipFile(self.raw, "w")
        self.source: BinaryIO = source_path.open("rb")

    def close(self) -> None:
        for handle in (self.zip, self.raw, self.source):
            with contextlib.suppress(Exception):
                handle.close()


class WheelWriter:
    """Writes a new version of a wheel under a temporary name in the output folder.

    Output order is fixed, so a repaired wheel repaired again comes out the same: the
    archive's members outside the dist-info folder in their order, then added libraries
    (sorted), then new text files (sorted), then the dist-info files, then RECORD. Unchanged members are copied as they
    are stored. ``copy_ahead`` starts copying the members outside the dist-info folder on
    a second thread while the caller still inspects and decides; ``finish`` then only
    rewinds to the first member that did change. ``publish`` renames the finished file;
    ``abort`` removes it. The caller checks the file in between (its size, say).
    """

    def __init__(self, archive: WheelArchive, out_dir: Path, renames: Mapping[str, str] | None = None) -> None:
        """``renames`` maps member-name prefixes (a .dist-info or .data folder) to new ones."""
        self._archive = archive
        self._out_dir = out_dir
        self._renames = dict(renames or {})
        self.temp_path: Path | None = None
        self._open: _Open | None = None
        self._copied: list[str] = []  # members copied ahead, in order
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._record: list[tuple[str, str, str]] = []
        self._deflater: _Deflater | None = None

    def create(self) -> None:
        """Create the temporary file. Call it where ``abort`` runs on any exception: the
        name is set before the file exists, so an interrupt at any point leaves nothing."""
        self.temp_path = self._out_dir / f".tvmffi-wheel-{secrets.token_hex(8)}.whl.tmp"
        self._open = _Open(self.temp_path, self._archive.path)

    def _files(self) -> _Open:
        if self._open is None:
            raise RuntimeError("WheelWriter.create() was not called")
        return self._open

    def _body(self) -> list[zipfile.ZipInfo]:
        prefix = self._archive.dist_info + "/"
        return [i for i in self._archive.members if not i.is_dir() and not i.filename.startswith(prefix)]

    def _target(self, name: str) -> str:
        """A member's name in the new wheel."""
        for old, new in self._renames.items():
            if name.startswith(old):
                return new + name[len(old) :]
        return name

    def _copy_stored(self, info: zipfile.ZipInfo) -> None:
        files = self._files()
        with damage_reported(self._archive.path):
            start = _zipraw.data_offset(files.source, info)
            copy = _stored_copy_info(self._target(info.filename), info)
            _zipraw.append_stored(files.zip, copy, files.source, start)

    def copy_ahead(self) -> None:
        def run() -> None:
            try:
                for info in self._body():
                    if self._stop.is_set():
                        return
                    self._copy_stored(info)
                    self._copied.append(info.filename)
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

    def finish(self, changes: WheelChanges) -> int:
        """Write the rest and check it; returns the size of the finished file in bytes."""
        self._wait()
        kept = self._keep_copied(changes)
        body = [info for info in self._body()[kept:] if info.filename not in changes.removed]
        new_content = [changes.replaced[i.filename] for i in body  # in the order _put_member takes them
                       if i.filename in changes.replaced and i.filename not in changes.dist_info_files]
        new_content += [changes.added[name] for name in sorted(changes.added)]
        assert self.temp_path is not None
        self._deflater = _Deflater(new_content, self.temp_path.parent, usable_cores())
        try:
            for info in body:
                self._put_member(info, changes)
            self._put_added(changes.added)
        finally:
            self._deflater.close()
        self._put_new_files(changes.new_files)
        self._put_dist_info(changes)
        self._put_record()
        files = self._files()
        files.close()
        assert self.temp_path is not None
        _check_written(self.temp_path, self._record)
        return self.temp_path.stat().st_size

    def _keep_copied(self, changes: WheelChanges) -> int:
        """Keep the members copied ahead up to the first one that changed; drop the rest."""
        kept = 0
        for name in self._copied:
            if not changes.keeps(name):
                break
            digest = changes.digests[name]
            self._record.append((self._target(name), digest.hash, str(digest.size)))
            kept += 1
        _zipraw.truncate(self._files().zip, kept)
        del self._copied[kept:]
        return kept

    def _put(self, template: zipfile.ZipInfo, source: IO[bytes], size_hint: int) -> None:
        name = self._target(template.filename)
        info = _new_info(name, template)
        digest = hashlib.sha256()
        size = 0
        with self._files().zip.open(info, "w", force_zip64=size_hint >= zipfile.ZIP64_LIMIT) as sink:
            for block in iter(lambda: source.read(CHUNK), b""):
                digest.update(block)
                size += len(block)
                sink.write(block)
        self._record.append((name, record_hash(digest), str(size)))

    def _put_file(self, template: zipfile.ZipInfo, path: Path) -> None:
        """A new file's content, deflated ahead by the deflater."""
        if self._deflater is None:
            raise RuntimeError("WheelWriter.finish() deflates new files; nothing else writes them")
        deflated = self._deflater.take(path)
        with deflated.stream:
            name = self._target(template.filename)
            info = _new_info(name, template)
            info.CRC, info.file_size, info.compress_size = deflated.crc, deflated.size, deflated.compressed_size
            _zipraw.append_stored(self._files().zip, info, deflated.stream, 0)
        self._record.append((name, deflated.hash, str(deflated.size)))

    def _put_text(self, template: zipfile.ZipInfo, text: str) -> None:
        data = text.encode("utf-8")
        self._put(template, io.BytesIO(data), len(data))

    def _put_member(self, info: zipfile.ZipInfo, changes: WheelChanges) -> None:
        if info.filename in changes.removed:
            return
        if info.filename in changes.dist_info_files:
            self._put_text(info, changes.dist_info_files[info.filename])
        elif info.filename in changes.replaced:
            self._put_file(info, changes.replaced[info.filename])
        elif info.filename in changes.digests:
            self._copy_stored(info)
            digest = changes.digests[info.filename]
            self._record.append((self._target(info.filename), digest.hash, str(digest.size)))
        else:
            with damage_reported(self._archive.path), self._archive.open_member(info) as stream:
                self._put(info, stream, info.file_size)

    def _stamp(self) -> zipfile.ZipInfo:
        """New members take the date and attributes of the WHEEL file."""
        return self._archive.info(f"{self._archive.dist_info}/WHEEL")

    def _put_added(self, added: Mapping[str, Path]) -> None:
        for name in sorted(added):
            template = zipfile.ZipInfo(name, date_time=self._stamp().date_time)
            template.external_attr = 0o100755 << 16  # vendored libraries are executable
            self._put_file(template, added[name])

    def _put_new_files(self, new_files: Mapping[str, str]) -> None:
        for name in sorted(new_files):
            template = zipfile.ZipInfo(name, date_time=self._stamp().date_time)
            template.external_attr = 0o100644 << 16
            self._put_text(template, new_files[name])

    def _put_dist_info(self, changes: WheelChanges) -> None:
        archive = self._archive
        prefix = archive.dist_info + "/"
        for info in archive.members:
            # Folder entries, which some builders write, are left out here as everywhere.
            if info.filename.startswith(prefix) and info.filename != archive.record_name and not info.is_dir():
                self._put_member(info, changes)
        existing = set(archive.member_names)
        stamp = self._stamp()
        for name in sorted(set(changes.dist_info_files) - existing):
            template = zipfile.ZipInfo(name, date_time=stamp.date_time)
            template.external_attr = stamp.external_attr
            self._put_text(template, changes.dist_info_files[name])

    def _put_record(self) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerows(self._record)
        record_name = self._target(self._archive.record_name)
        writer.writerow((record_name, "", ""))
        self._files().zip.writestr(_new_info(record_name, self._stamp()), buffer.getvalue())

    def publish(self, out_path: Path) -> None:
        """Give the finished file its name: the only step that makes it visible."""
        assert self.temp_path is not None
        os.replace(self.temp_path, out_path)

    def abort(self) -> None:
        """Stop, and remove the temporary file: nothing is left behind."""
        self._stop.set()
        try:
            # An interrupt can land inside Thread.start(), before there is a thread to join.
            if self._thread is not None and self._thread.ident is not None:
                self._thread.join()
        finally:
            if self._open is not None:
                self._open.close()
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
