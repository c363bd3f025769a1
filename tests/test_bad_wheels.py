"""Damaged and dishonest wheels: `check` and `repair` give one message, exit 1, write nothing."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import stat
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

LIBRARY = "example_kernels/lib/libexample_kernels.so"


def record_line(name: str, data: bytes) -> tuple[str, str, str]:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return name, f"sha256={digest}", str(len(data))


def rewrite(source: Path, target: Path, change: Callable[[list], list], *, fix_record: bool = True) -> Path:
    """Copy a wheel, letting ``change`` edit its (ZipInfo, data) entries; RECORD is redone."""
    with zipfile.ZipFile(source) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    entries = change(entries)
    if fix_record:
        record = next(info.filename for info, _ in entries if info.filename.endswith("RECORD"))
        rows = [record_line(info.filename, data) for info, data in entries if info.filename != record]
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([*rows, (record, "", "")])
        entries = [(i, buffer.getvalue().encode() if i.filename == record else d) for i, d in entries]
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return target


def add(name: str, data: bytes, mode: int = 0o644):
    def change(entries):
        info = zipfile.ZipInfo(name)
        info.external_attr = mode << 16
        return [entries[0], (info, data), *entries[1:]]

    return change


def edit(name: str, edit_data: Callable[[bytes], bytes]):
    return lambda entries: [(i, edit_data(d) if i.filename == name else d) for i, d in entries]


def other_machine(data: bytes) -> bytes:
    return data[:18] + struct.pack("<H", 183) + data[20:]  # e_machine = EM_AARCH64


def vendored_tvm_ffi(entries):
    """What a hand-run auditwheel does: a second libtvm_ffi copied into <name>.libs/."""
    library = next(data for info, data in entries if info.filename == LIBRARY)
    info = zipfile.ZipInfo("example_kernels.libs/libtvm_ffi-1a2b3c4d.so")
    info.external_attr = 0o755 << 16
    return [entries[0], (info, library), *entries[1:]]


def record_repeating(name: str):
    """RECORD (already correct) with the row of ``name`` written twice."""
    def change(entries):
        record = next(i for i, _ in entries if i.filename.endswith("RECORD"))
        text = next(d for i, d in entries if i is record).decode()
        row = next(line for line in text.splitlines() if line.startswith(name + ","))
        return [(i, (text + row + "\n").encode() if i is record else d) for i, d in entries]

    return change


def without_record(entries):
    return [(i, d) for i, d in entries if not i.filename.endswith("RECORD")]


# Bytes that are no binary of any kind, as a random file named like one would be.
JUNK = bytes(range(7, 250)) * 4

CASES = {
    "vendored-libtvm_ffi": (vendored_tvm_ffi, True, "a copy of libtvm_ffi is inside the wheel"),
    "zip-slip-parent": (add("../evil.py", b"x"), True, "unsafe member name '../evil.py'"),
    "zip-slip-absolute": (add("/etc/evil.py", b"x"), True, "unsafe member name '/etc/evil.py'"),
    "symlink-member": (add("example_kernels/link", b"lib", stat.S_IFLNK | 0o777), True, "symbolic link member"),
    "duplicate-member": (lambda e: [*e[:2], e[1], *e[2:]], False, "duplicate members"),
    "record-mismatch": (edit("example_kernels/__init__.py", lambda d: d + b"\n# edited\n"), False,
                        "does not match its RECORD hash"),
    "not-elf-so": (add("example_kernels/lib/libbad.so", b"\x7fELF" + b"\x02\x01\x01" + bytes(40)), True,
                   "libbad.so looks like an ELF file but cannot be read"),
    "other-architecture": (edit(LIBRARY, other_machine), True, "binaries are built for aarch64"),
    # Files that claim to be binaries, beside the wheel's good library: named, never taken for data.
    "junk-dylib": (add("example_kernels/lib/libjunk.dylib", JUNK), True,
                   "libjunk.dylib is named like a shared library but is no ELF, Mach-O or PE file"),
    "mz-junk-dll": (add("example_kernels/lib/junk.dll", b"MZ" + JUNK), True,
                    "junk.dll starts like a Windows binary (MZ) but has no PE header"),
    "record-repeats-a-member": (record_repeating("example_kernels/__init__.py"), False,
                                "RECORD lists example_kernels/__init__.py more than once"),
    "no-record": (without_record, False, "has no example_kernels-0.1.0.dist-info/RECORD, which every wheel has"),
}


@pytest.mark.filterwarnings("ignore:Duplicate name")  # zipfile warns, and writes it: the point
@pytest.mark.parametrize("subcommand", ["check", "repair"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_wheel(command, example_wheel, tmp_path, subcommand, case):
    change, fix_record, message = CASES[case]
    bad = rewrite(example_wheel, tmp_path / example_wheel.name, change, fix_record=fix_record)
    out = tmp_path / "out"
    out.mkdir()
    args = ["repair", "-w", out, bad] if subcommand == "repair" else ["check", bad]
    result = command(*args, ok=False)
    assert result.returncode == 1
    assert message in result.stdout, result.stdout[-3000:]
    assert "Traceback" not in result.stdout
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("subcommand", ["check", "repair"])
def test_wheel_renamed_against_its_wheel_file(command, example_wheel, tmp_path, subcommand):
    renamed = tmp_path / example_wheel.name.replace("py3-none", "cp311-cp311")
    renamed.write_bytes(example_wheel.read_bytes())
    out = tmp_path / "out"
    out.mkdir()
    args = ["repair", "-w", out, renamed] if subcommand == "repair" else ["check", renamed]
    result = command(*args, ok=False)
    platform = example_wheel.name.rsplit("-", 1)[1].removesuffix(".whl")
    assert f"is named for cp311-cp311-{platform}, but its WHEEL file says py3-none" in result.stdout
    assert "a wheel must not be renamed: rebuild it" in result.stdout and "repair" not in result.stdout.split("fix:")[1]
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("subcommand", ["check", "repair"])
def test_a_wheel_whose_only_library_is_junk_is_told_so_not_given_cmake_advice(command, example_wheel, tmp_path,
                                                                              subcommand):
    def junk_only(entries):
        kept = [(i, d) for i, d in entries if i.filename != LIBRARY]
        return add("example_kernels/lib/libexample_kernels.dylib", JUNK)(kept)

    bad = rewrite(example_wheel, tmp_path / example_wheel.name, junk_only)
    out = tmp_path / "out"
    out.mkdir()
    args = ["repair", "-w", out, bad] if subcommand == "repair" else ["check", bad]
    result = command(*args, ok=False)
    assert "libexample_kernels.dylib is named like a shared library but is no ELF, Mach-O or PE file" in result.stdout
    assert "CMakeLists.txt" not in result.stdout and "Traceback" not in result.stdout
    assert list(out.iterdir()) == []
