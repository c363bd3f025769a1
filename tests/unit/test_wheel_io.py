"""Reading wheels safely and writing new ones atomically with a correct RECORD."""

import csv
import io
import os
import tempfile
import threading
import zipfile
from pathlib import Path

import pytest

from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting.wheel import inspect_wheel
from tvmffi_wheel.inspecting.wheel_reader import Hasher, WheelArchive, WheelName
from tvmffi_wheel.writing.wheel_writer import (
    WheelChanges,
    WheelWriter,
    ensure_writable_directory,
    rewrite_wheel_file,
)


def write_wheel(archive, out_path, changes):
    """Everything written in one go (no copy ahead), as the writer's simplest use."""
    writer = WheelWriter(archive, out_path.parent)
    try:
        writer.create()
        writer.finish(changes)
        writer.publish(out_path)
    except BaseException:
        writer.abort()
        raise


def verify_record(path):
    """RECORD lists every member with the hash and size of its content (inspect_wheel checks)."""
    with WheelArchive(path) as archive, tempfile.TemporaryDirectory() as scratch:
        inspect_wheel(archive, Path(scratch))


WHEEL = "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: cp311-cp311-linux_x86_64\n\n"


def make_wheel(directory, name="demo-1.0-cp311-cp311-linux_x86_64.whl", members=None):
    members = members or {"demo/__init__.py": b"x = 1\n"}
    path = directory / name
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
        archive.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
        archive.writestr("demo-1.0.dist-info/WHEEL", WHEEL)
        archive.writestr("demo-1.0.dist-info/RECORD", "")
    return path


def test_wheel_name_round_trip_with_aliases():
    name = WheelName.parse("demo-1.0-cp311-cp311-linux_x86_64.whl")
    retagged = name.with_tags(("py3", "none"), ("manylinux_2_17_x86_64", "manylinux2014_x86_64"))
    assert retagged.file_name == "demo-1.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"


def test_bad_wheel_name_is_a_clear_error():
    with pytest.raises(TvmFfiWheelError, match="not a valid wheel file name"):
        WheelName.parse("demo.whl")


def test_wheel_file_tags_are_replaced():
    name = WheelName.parse("demo-1.0-py3-none-manylinux_2_31_x86_64.whl")
    text = rewrite_wheel_file(WHEEL, name)
    assert text.endswith("Root-Is-Purelib: false\nTag: py3-none-manylinux_2_31_x86_64\n")


def test_not_a_zip_is_refused(tmp_path):
    path = tmp_path / "demo-1.0-cp311-cp311-linux_x86_64.whl"
    path.write_bytes(b"not a zip")
    with pytest.raises(TvmFfiWheelError, match="is not a readable wheel"):
        WheelArchive(path)


def test_unsafe_member_names_are_refused(tmp_path):
    path = make_wheel(tmp_path, members={"../evil.py": b""})
    with pytest.raises(TvmFfiWheelError, match="unsafe member name"):
        WheelArchive(path)


def test_encrypted_member_is_refused_not_asked_a_password_for(tmp_path):
    path = make_wheel(tmp_path)
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")  # the first central directory entry: demo/__init__.py
    data[central + 8] |= 0x1  # general purpose flag bit 0: encrypted
    path.write_bytes(bytes(data))
    with pytest.raises(TvmFfiWheelError, match=r"encrypted member, demo/__init__\.py"):
        WheelArchive(path)


def test_written_wheel_has_a_correct_record_and_new_members(tmp_path):
    source = make_wheel(tmp_path)
    extra = tmp_path / "extra.bin"
    extra.write_bytes(b"pretend data")
    out = tmp_path / "out"
    out.mkdir()
    target = out / "demo-1.0-cp311-cp311-linux_x86_64.whl"
    metadata = "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nRequires-Dist: x\n"
    with WheelArchive(source) as archive:
        changes = WheelChanges(
            digests={},
            added={"demo.libs/extra.bin": extra},
            dist_info_files={"demo-1.0.dist-info/METADATA": metadata},
        )
        write_wheel(archive, target, changes)
    verify_record(target)
    assert sorted(p.name for p in out.iterdir()) == [target.name]
    with zipfile.ZipFile(target) as archive:
        names = archive.namelist()
        assert names.index("demo.libs/extra.bin") < names.index("demo-1.0.dist-info/METADATA")
        assert names[-1] == "demo-1.0.dist-info/RECORD"
        assert b"Requires-Dist: x" in archive.read("demo-1.0.dist-info/METADATA")
        rows = list(csv.reader(io.StringIO(archive.read("demo-1.0.dist-info/RECORD").decode())))
        assert len(rows) == len(names)


def test_removed_members_leave_the_wheel_and_its_record(tmp_path):
    source = make_wheel(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    target = out / "demo-1.0-cp311-cp311-linux_x86_64.whl"
    with WheelArchive(source) as archive:
        # make_wheel's RECORD is empty: the digests come from a lenient read.
        digests = inspect_wheel(archive, tmp_path / "scratch", strict=False).digests
        write_wheel(archive, target, WheelChanges(digests=digests, removed=frozenset({"demo/__init__.py"})))
    verify_record(target)
    with zipfile.ZipFile(target) as archive:
        assert "demo/__init__.py" not in archive.namelist()
        assert b"demo/__init__.py" not in archive.read("demo-1.0.dist-info/RECORD")


def test_failed_write_leaves_nothing(tmp_path):
    source = make_wheel(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    changes = WheelChanges(digests={}, replaced={"demo/__init__.py": tmp_path / "missing"})
    with WheelArchive(source) as archive, pytest.raises(FileNotFoundError):
        write_wheel(archive, out / "demo-1.0-cp311-cp311-linux_x86_64.whl", changes)
    assert list(out.iterdir()) == []


def test_record_mismatch_is_detected(tmp_path):
    path = make_wheel(tmp_path)  # its RECORD is empty
    with pytest.raises(TvmFfiWheelError, match="is not listed in RECORD"):
        verify_record(path)


def test_output_folder_that_is_a_file_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(TvmFfiWheelError, match="cannot be created"):
        ensure_writable_directory(blocker / "dist")


def test_copy_ahead_then_a_replaced_member_rewinds_and_stays_valid(tmp_path):
    members = {"demo/a.py": b"a = 1\n", "demo/b.py": b"b = 2\n", "demo/c.py": b"c\n"}
    source = make_wheel(tmp_path, members=members)
    replacement = tmp_path / "b.py"
    replacement.write_bytes(b"b = 3\n")
    out = tmp_path / "out"
    out.mkdir()
    with WheelArchive(source) as archive:
        digests = {}
        for info in archive.members:
            hasher = Hasher()
            for _ in hasher.wrap(archive.stream(info)):
                pass
            digests[info.filename] = hasher.result()
        writer = WheelWriter(archive, out)
        writer.create()
        writer.copy_ahead()
        target = out / "demo-1.0-cp311-cp311-linux_x86_64.whl"
        size = writer.finish(WheelChanges(digests=digests, replaced={"demo/b.py": replacement}))
        assert [p.name for p in out.iterdir()] == [writer.temp_path.name]  # not visible before publish
        assert size == writer.temp_path.stat().st_size
        writer.publish(target)
    verify_record(target)
    with zipfile.ZipFile(target) as archive:
        assert archive.read("demo/b.py") == b"b = 3\n"
        assert archive.read("demo/a.py") == b"a = 1\n" and archive.read("demo/c.py") == b"c\n"
        assert archive.namelist()[:3] == ["demo/a.py", "demo/b.py", "demo/c.py"]
    assert [p.name for p in out.iterdir()] == [target.name]


def test_aborted_writer_leaves_nothing(tmp_path):
    source = make_wheel(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    with WheelArchive(source) as archive:
        writer = WheelWriter(archive, out)
        writer.create()
        writer.copy_ahead()
        writer.abort()
    assert list(out.iterdir()) == []


def _replacements(folder, count):
    """Members and new content for them, more than the deflater runs ahead, some compressible."""
    folder.mkdir()
    replaced = {}
    for index in range(count):
        path = folder / f"data{index}.bin"
        path.write_bytes(os.urandom(300_000) + bytes(index * 50_000))
        replaced[f"demo/data{index}.bin"] = path
    return replaced


def test_new_members_deflated_ahead_read_back_as_zipfile_writes_them(tmp_path):
    replaced = _replacements(tmp_path / "new", 12)
    source = make_wheel(tmp_path, members=dict.fromkeys(replaced, b"old"))
    out = tmp_path / "out"
    out.mkdir()
    target = out / "demo-1.0-cp311-cp311-linux_x86_64.whl"
    with WheelArchive(source) as archive:
        digests = inspect_wheel(archive, tmp_path / "scratch", strict=False).digests
        write_wheel(archive, target, WheelChanges(digests=digests, replaced=replaced))
    verify_record(target)
    reference = tmp_path / "reference.zip"
    with zipfile.ZipFile(reference, "w", zipfile.ZIP_DEFLATED) as zipped:
        for member, path in replaced.items():
            zipped.writestr(member, path.read_bytes())
    with zipfile.ZipFile(target) as written, zipfile.ZipFile(reference) as expected:
        assert written.testzip() is None
        assert [n for n in written.namelist() if n in replaced] == list(replaced)  # in the archive's order
        for member, path in replaced.items():
            assert written.read(member) == path.read_bytes()
            ours, theirs = written.getinfo(member), expected.getinfo(member)
            assert (ours.CRC, ours.compress_size) == (theirs.CRC, theirs.compress_size)
    assert [p.name for p in out.iterdir()] == [target.name]


def test_a_new_member_that_cannot_be_read_stops_the_deflater_and_leaves_nothing(tmp_path):
    replaced = _replacements(tmp_path / "new", 12)
    replaced["demo/data5.bin"].unlink()
    source = make_wheel(tmp_path, members=dict.fromkeys(replaced, b"old"))
    out = tmp_path / "out"
    out.mkdir()
    threads_before = threading.active_count()
    with WheelArchive(source) as archive:
        digests = inspect_wheel(archive, tmp_path / "scratch", strict=False).digests
        with pytest.raises(FileNotFoundError, match=r"data5\.bin"):
            write_wheel(archive, out / "demo-1.0-cp311-cp311-linux_x86_64.whl",
                        WheelChanges(digests=digests, replaced=replaced))
    assert list(out.iterdir()) == []
    assert threading.active_count() == threads_before
