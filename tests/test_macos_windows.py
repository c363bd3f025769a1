"""`check` and `repair` on macOS and Windows wheels: a real one from PyPI (jax-tvm-ffi 0.1.3's
macOS arm64 wheel), and the bad inputs each gets one clear message for. Judged with Debian's
LLVM tools, pefile and a signature check of the tests' own (macho_tools.py)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pefile
import pytest

from conftest import run
from macho_tools import linked_libraries, llvm_tool, rpaths, signature_is_valid
from old_glibc import CACHE

JAX_TVM_FFI = "jax-tvm-ffi==0.1.3"
DYLIB = "jax_tvm_ffi/jax_tvm_ffi.dylib"


def _download(requirement: str, platform: str, python_version: str) -> Path:
    """A wheel from the index, kept across runs (the index's files never change)."""
    folder = CACHE / "downloads" / f"{requirement}-{platform}"
    found = sorted(folder.glob("*.whl"))
    if not found:
        run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--platform",
             platform, "--python-version", python_version, "--dest", folder, requirement])
        found = sorted(folder.glob("*.whl"))
    return found[0]


@pytest.fixture(scope="session")
def jax_wheel() -> Path:
    return _download(JAX_TVM_FFI, "macosx_11_0_arm64", "3.12")


@pytest.fixture(scope="session")
def tvm_ffi_windows_wheel() -> Path:
    return _download("apache-tvm-ffi", "win_amd64", "3.13")


def _member(wheel: Path, member: str, out: Path) -> Path:
    with zipfile.ZipFile(wheel) as archive:
        return Path(archive.extract(member, out))


def _rewrapped(wheel: Path, out: Path, change: dict[str, bytes], tag: str | None = None) -> Path:
    """A copy of ``wheel`` with members replaced (RECORD rewritten to match) and maybe retagged."""
    import base64
    import hashlib

    name = wheel.name if tag is None else "-".join(wheel.name.split("-")[:-3]) + f"-{tag}.whl"
    target = out / name
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as result:
        record_name = next(n for n in source.namelist() if n.endswith(".dist-info/RECORD"))
        rows = []
        for info in source.infolist():
            if info.filename == record_name or info.is_dir():
                continue
            data = change.get(info.filename, source.read(info.filename))
            if tag is not None and info.filename.endswith(".dist-info/WHEEL"):
                data = b"".join(line for line in data.splitlines(keepends=True) if not line.startswith(b"Tag:"))
                data += f"Tag: {tag}\n".encode()
            result.writestr(info.filename, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            rows.append(f"{info.filename},sha256={digest},{len(data)}")
        result.writestr(record_name, "\n".join([*rows, f"{record_name},,"]) + "\n")
    return target


def test_check_reads_a_real_macos_wheel(command, jax_wheel, tmp_path):
    result = command("check", "--json", jax_wheel, ok=False)
    report = json.loads(result.stdout)["wheels"][0]
    binary = report["binaries"][0]
    assert binary["path"] == DYLIB
    assert (binary["format"], binary["minimum_os"], binary["code_signature"]) == ("macho", "11.0", "ad hoc")
    assert {"soname": "@rpath/libtvm_ffi.dylib", "satisfied_by": "tvm-ffi"} in binary["needed"]
    assert report["deserved_platform"] == "macosx_11_0_arm64"
    assert any("has no upper bound" in p for p in report["problems"])
    assert any("no run path to tvm_ffi/lib" in p for p in report["problems"])
    # What llvm-otool sees agrees with what check read.
    dylib = _member(jax_wheel, DYLIB, tmp_path)
    assert [n["soname"] for n in binary["needed"]] == linked_libraries(dylib)[1:]
    text = command("check", jax_wheel, ok=False).stdout
    assert "jax_tvm_ffi/jax_tvm_ffi.dylib" in text and "tvm-ffi" in text


def test_repair_a_real_macos_wheel(command, jax_wheel, tmp_path):
    command("repair", "-w", tmp_path / "once", jax_wheel)
    repaired = next((tmp_path / "once").glob("*.whl"))
    assert repaired.name == jax_wheel.name  # py3-none-macosx_11_0_arm64 already
    dylib = _member(repaired, DYLIB, tmp_path / "unpacked")
    assert rpaths(dylib) == ["@loader_path/../tvm_ffi/lib"]
    assert signature_is_valid(dylib), "the repaired dylib's page hashes do not match"
    metadata = zipfile.ZipFile(repaired).read("jax_tvm_ffi-0.1.3.dist-info/METADATA").decode()
    requirement = next(line for line in metadata.splitlines() if "apache-tvm-ffi" in line)
    assert "<0.2" in requirement and ">=0.1.8.post2" in requirement
    command("check", repaired)
    command("repair", "-w", tmp_path / "twice", repaired)
    assert (tmp_path / "twice" / repaired.name).read_bytes() == repaired.read_bytes()


def _broken_signature(jax_wheel: Path, out: Path) -> Path:
    data = bytearray(_member(jax_wheel, DYLIB, out / "src").read_bytes())
    data[0x4000] ^= 0xFF  # a byte of code, in the second 16 KiB page
    return _rewrapped(jax_wheel, out / "broken", {DYLIB: bytes(data)})


def _fat(jax_wheel: Path, out: Path) -> Path:
    thin = _member(jax_wheel, DYLIB, out / "src").read_bytes()
    offset = 1 << 14
    header = struct.pack(">II", 0xCAFEBABE, 1) + struct.pack(">iiIII", 0x0100000C, 0, offset, len(thin), 14)
    fat = header + bytes(offset - len(header)) + thin
    return _rewrapped(jax_wheel, out / "fat", {DYLIB: fat}, tag="py3-none-macosx_11_0_universal2")


def _absolute_tvm_ffi(jax_wheel: Path, out: Path) -> Path:
    dylib = _member(jax_wheel, DYLIB, out / "src")
    subprocess.run([llvm_tool("llvm-install-name-tool"), "-change", "@rpath/libtvm_ffi.dylib",
                    "/Users/builder/venv/lib/python3.12/site-packages/tvm_ffi/lib/libtvm_ffi.dylib", str(dylib)],
                   check=True)
    return _rewrapped(jax_wheel, out / "absolute", {DYLIB: dylib.read_bytes()})


def _truncated_macho(jax_wheel: Path, out: Path) -> Path:
    data = _member(jax_wheel, DYLIB, out / "src").read_bytes()
    return _rewrapped(jax_wheel, out / "truncated", {DYLIB: data[:600]})


def _linux_tag(jax_wheel: Path, out: Path) -> Path:
    return _rewrapped(jax_wheel, out / "linux", {}, tag="py3-none-manylinux_2_28_x86_64")


@pytest.mark.parametrize(("make", "message"), [
    (_broken_signature, "code signature is broken (the hash of page 4"),
    (_fat, "is a universal (fat) Mach-O binary; tvmffi-wheel reads thin ones only"),
    (_absolute_tvm_ffi, "links libtvm_ffi by the path /Users/builder/venv"),
    (_truncated_macho, "looks like a Mach-O file but cannot be read"),
    (_linux_tag, "tagged manylinux_2_28_x86_64, a Linux platform, but its binaries are Mach-O files for macOS"),
])
def test_bad_macos_wheels_get_one_clear_message(command, jax_wheel, tmp_path, make, message):
    bad = make(jax_wheel, tmp_path)
    result = command("repair", "-w", tmp_path / "out", bad, ok=False)
    assert message in result.stdout, result.stdout
    assert "Traceback" not in result.stdout
    assert not list((tmp_path / "out").glob("*")), "a refused repair wrote something"


def _windows_kernel_wheel(tvm_ffi_wheel: Path, out: Path, machine: int | None = None, cut: int = 0) -> Path:
    """A wheel around apache-tvm-ffi's tvm_ffi_testing.dll (it imports tvm_ffi.dll, as a kernel
    does), with its Machine field changed or its bytes cut short, for the refusals."""
    data = bytearray(_member(tvm_ffi_wheel, "tvm_ffi/lib/tvm_ffi_testing.dll", out / "src").read_bytes())
    if machine is not None:
        image = pefile.PE(data=bytes(data), fast_load=True)
        image.FILE_HEADER.Machine = machine
        data = bytearray(image.write())
    if cut:
        data = data[:cut]
    folder = out / "kernel"
    (folder / "kernel").mkdir(parents=True, exist_ok=True)
    (folder / "kernel" / "kernel.dll").write_bytes(bytes(data))
    (folder / "kernel" / "__init__.py").write_text("")
    dist = folder / "kernel-1.0.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: kernel\nVersion: 1.0\n"
                                   "Requires-Dist: apache-tvm-ffi>=0.1.15.post2\n")
    (dist / "WHEEL").write_text(
        "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: py3-none-win_amd64\n"
    )
    (dist / "RECORD").write_text("")
    plain = out / "plain" / "kernel-1.0-py3-none-win_amd64.whl"
    plain.parent.mkdir(parents=True, exist_ok=True)
    shutil.make_archive(str(plain.with_suffix("")), "zip", folder)
    plain.with_suffix(".zip").rename(plain)
    return _rewrapped(plain, out / "wheel", {})


def test_a_pe_for_another_machine(command, tvm_ffi_windows_wheel, tmp_path):
    bad = _windows_kernel_wheel(tvm_ffi_windows_wheel, tmp_path, machine=0x14C)
    result = command("repair", "-w", tmp_path / "out", bad, ok=False)
    assert "tagged win_amd64, but its binaries are built for x86" in result.stdout, result.stdout


def test_a_truncated_pe(command, tvm_ffi_windows_wheel, tmp_path):
    bad = _windows_kernel_wheel(tvm_ffi_windows_wheel, tmp_path, cut=2000)
    result = command("repair", "-w", tmp_path / "out", bad, ok=False)
    assert "kernel/kernel.dll looks like a PE file but cannot be read" in result.stdout, result.stdout


def test_repair_a_windows_wheel_keeps_tvm_ffi_out(command, tvm_ffi_windows_wheel, tmp_path):
    """tvm_ffi_testing.dll needs MSVCP140.dll, which CPython does not ship: it is vendored from
    --lib-path under a name of its own, tvm_ffi.dll never is."""
    wheel = _windows_kernel_wheel(tvm_ffi_windows_wheel, tmp_path)
    missing = command("repair", "-w", tmp_path / "refused", wheel, ok=False)
    assert "needs MSVCP140.dll, which cannot be found on this machine" in missing.stdout, missing.stdout
    lib_path = _member(tvm_ffi_windows_wheel, "apache_tvm_ffi.libs/msvcp140.dll", tmp_path / "libs").parent
    command("repair", "-w", tmp_path / "out", "--lib-path", lib_path, wheel)
    repaired = next((tmp_path / "out").glob("*.whl"))
    assert repaired.name == "kernel-1.0-py3-none-win_amd64.whl"
    names = zipfile.ZipFile(repaired).namelist()
    assert not [n for n in names if "tvm_ffi.dll" in n.lower()]
    vendored = [n for n in names if n.startswith("kernel.libs/")]
    assert len(vendored) == 1 and vendored[0].lower().startswith("kernel.libs/msvcp140-"), names
    init = zipfile.ZipFile(repaired).read("kernel/__init__.py").decode()
    assert "os.add_dll_directory" in init and "find_spec(\"tvm_ffi\")" in init and "../kernel.libs" in init
    kernel = _member(repaired, "kernel/kernel.dll", tmp_path / "unpacked")
    image = pefile.PE(str(kernel), fast_load=False)
    assert image.FILE_HEADER.Machine == 0x8664
    imported = [entry.dll.decode().lower() for entry in image.DIRECTORY_ENTRY_IMPORT]
    assert "tvm_ffi.dll" in imported and vendored[0].split("/")[1].lower() in imported, imported
    command("check", repaired)
    command("repair", "-w", tmp_path / "again", repaired)
    assert (tmp_path / "again" / repaired.name).read_bytes() == repaired.read_bytes()
