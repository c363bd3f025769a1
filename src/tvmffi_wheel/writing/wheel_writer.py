"""Write a new version of a wheel atomically, with a RECORD computed from the content."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import os
import secrets
import threading
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, BinaryIO

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
        for info in self._body()[kept:]:
            self._put_member(info, changes)
        self._put_added(changes.added)
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
        with path.open("rb") as stream:
            self._put(template, stream, path.stat().st_size)

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
