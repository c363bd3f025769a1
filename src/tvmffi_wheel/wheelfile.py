"""Read a wheel archive safely, and write a new one atomically with a correct RECORD."""

from __future__ import annotations

import base64
import contextlib
import csv
import dataclasses
import hashlib
import io
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from packaging.tags import Tag
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from tvmffi_wheel.elf import is_elf_header
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


@contextlib.contextmanager
def _damage_reported(path: Path) -> Iterator[None]:
    """Damaged archive data (bad CRC, cut-off deflate stream) becomes one clear error."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
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
        except (zipfile.BadZipFile, OSError) as err:
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
        self.dist_info = f"{self.name.distribution}-{self.name.version}.dist-info"
        for required in ("WHEEL", "METADATA", "RECORD"):
            if f"{self.dist_info}/{required}" not in names:
                raise TvmFfiWheelError(
                    f"{path} has no {self.dist_info}/{required}",
                    "the file name and the .dist-info folder inside must agree",
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

    def elf_members(self) -> list[zipfile.ZipInfo]:
        """Members that are ELF files, found by their first four bytes."""
        found = []
        with _damage_reported(self.path):
            for info in self.members:
                if info.is_dir() or info.file_size < 4:
                    continue
                with self._zip.open(info) as stream:
                    if is_elf_header(stream.read(4)):
                        found.append(info)
        return found

    def extract(self, info: zipfile.ZipInfo, root: Path) -> Path:
        target = root / info.filename
        target.parent.mkdir(parents=True, exist_ok=True)
        with _damage_reported(self.path), self._zip.open(info) as source, target.open("wb") as sink:
            shutil.copyfileobj(source, sink, _CHUNK)
        return target

    def open_member(self, info: zipfile.ZipInfo) -> io.BufferedIOBase:
        return self._zip.open(info)


def rewrite_wheel_file(text: str, name: WheelName) -> str:
    """The WHEEL file with its Tag lines replaced by the new tags."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("Tag:")]
    lines += [f"Tag: {tag}" for tag in name.tags]
    return "\n".join(lines) + "\n"


def _write_member(
    out: zipfile.ZipFile, template: zipfile.ZipInfo, source: io.BufferedIOBase
) -> tuple[str, int]:
    info = zipfile.ZipInfo(template.filename, date_time=template.date_time)
    info.external_attr = template.external_attr
    info.compress_type = zipfile.ZIP_DEFLATED
    digest = hashlib.sha256()
    size = 0
    with out.open(info, "w", force_zip64=True) as sink:
        for block in iter(lambda: source.read(_CHUNK), b""):
            digest.update(block)
            size += len(block)
            sink.write(block)
    return record_hash(digest), size


def write_wheel(
    archive: WheelArchive,
    out_path: Path,
    *,
    replaced: Mapping[str, Path],
    added: Mapping[str, Path],
    dist_info_files: Mapping[str, str],
    check_size: Callable[[int], None] | None = None,
) -> None:
    """Write ``archive`` with members replaced, added and dist-info files rewritten.

    ``dist_info_files`` maps members to text; a member the archive lacks is added to the
    dist-info folder. The wheel is written under a temporary name in the output folder, its
    RECORD is checked against what was written, ``check_size`` sees its size, and only then
    is it renamed into place: a failure or an interrupt leaves nothing behind.
    """
    out_dir = out_path.parent
    fd, temp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_dir)
    temp_path = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w") as out:
            record: list[tuple[str, str, str]] = []
            stamp = archive._zip.getinfo(f"{archive.dist_info}/WHEEL")
            record_name = f"{archive.dist_info}/RECORD"

            def put(template: zipfile.ZipInfo, source: io.BufferedIOBase) -> None:
                digest, size = _write_member(out, template, source)
                record.append((template.filename, digest, str(size)))

            pending_additions = dict(added)
            for info in archive.members:
                if info.filename == record_name or info.is_dir():
                    continue
                if info.filename.startswith(archive.dist_info + "/") and pending_additions:
                    _add_new(put, pending_additions, stamp)
                if info.filename in dist_info_files:
                    text = dist_info_files[info.filename].encode("utf-8")
                    put(info, io.BytesIO(text))
                elif info.filename in replaced:
                    with replaced[info.filename].open("rb") as source:
                        put(info, source)
                else:
                    with archive.open_member(info) as source:
                        put(info, source)
            _add_new(put, pending_additions, stamp)
            existing = {info.filename for info in archive.members}
            for name in sorted(set(dist_info_files) - existing):
                template = zipfile.ZipInfo(name, date_time=stamp.date_time)
                template.external_attr = stamp.external_attr
                put(template, io.BytesIO(dist_info_files[name].encode("utf-8")))
            record_info = zipfile.ZipInfo(record_name, date_time=stamp.date_time)
            record_info.external_attr = stamp.external_attr
            record_info.compress_type = zipfile.ZIP_DEFLATED
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerows(record)
            writer.writerow((record_name, "", ""))
            out.writestr(record_info, buffer.getvalue())
        verify_record(temp_path)
        if check_size is not None:
            check_size(temp_path.stat().st_size)
        os.replace(temp_path, out_path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp_path.unlink()
        raise


def _add_new(put, pending: dict[str, Path], stamp: zipfile.ZipInfo) -> None:  # noqa: ANN001
    for name in sorted(pending):
        info = zipfile.ZipInfo(name, date_time=stamp.date_time)
        info.external_attr = (0o100755 << 16)  # vendored libraries are executable files
        with pending[name].open("rb") as source:
            put(info, source)
    pending.clear()


def verify_record(path: Path) -> None:
    """Every member is in RECORD with its hash and size, and RECORD lists nothing else."""
    with _damage_reported(path), zipfile.ZipFile(path) as archive:
        names = [i.filename for i in archive.infolist() if not i.is_dir()]
        records = [n for n in names if n.endswith(".dist-info/RECORD")]
        if len(records) != 1:
            raise TvmFfiWheelError(f"{path.name} must have exactly one RECORD, found {len(records)}")
        rows = list(csv.reader(io.StringIO(archive.read(records[0]).decode("utf-8"))))
        listed = {row[0]: row for row in rows if row}
        missing = sorted(set(names) - set(listed))
        extra = sorted(set(listed) - set(names))
        if missing or extra:
            raise TvmFfiWheelError(
                f"{path.name}: RECORD does not match the archive (unlisted: {missing[:3]}, "
                f"listed but absent: {extra[:3]})"
            )
        for name in names:
            if name == records[0]:
                continue
            digest = hashlib.sha256()
            size = 0
            with archive.open(name) as stream:
                for block in iter(lambda: stream.read(_CHUNK), b""):
                    digest.update(block)
                    size += len(block)
            _, expected_hash, expected_size = listed[name][:3]
            if (record_hash(digest), str(size)) != (expected_hash, expected_size):
                raise TvmFfiWheelError(f"{path.name}: RECORD hash or size is wrong for {name}")


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
