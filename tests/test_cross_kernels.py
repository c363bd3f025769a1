"""cross_kernels.py's wheels are what they claim, by tools we did not write: LLVM's otool and
nm for the Mach-O library, pefile for the DLL."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest

from cross_kernels import HELPER_FUNCTION, KERNEL_FUNCTIONS, CrossWheel

LLVM = Path("/usr/lib/llvm-14/bin")
# Mach-O exports that zig's linker adds and does not let -fvisibility or an export list take
# away: libc++'s operator new and delete (weak definitions), and the linker's own symbols.
ZIG_MACHO_EXPORTS = {"___dso_handle", "__mh_dylib_header"}
OPERATOR_NEW_DELETE = ("__Znw", "__Zna", "__Zdl", "__Zda")


def tool(name: str, *args: str | Path) -> str:
    if not (LLVM / name).is_file():
        pytest.skip(f"needs {LLVM / name} (Debian: llvm-14)")
    return subprocess.run([str(LLVM / name), *map(str, args)], check=True, capture_output=True, text=True).stdout


def load_commands(library: Path) -> list[dict[str, str]]:
    """`llvm-otool -l`: each load command's fields, by name (the first word of each line)."""
    commands: list[dict[str, str]] = []
    for line in tool("llvm-otool", "-l", library).splitlines():
        if line.startswith("Load command"):
            commands.append({})
        elif commands and line.strip():
            key, _, value = line.strip().partition(" ")
            commands[-1].setdefault(key, value.strip())
    return commands


def dylib_name(command: dict[str, str]) -> str:
    return command["name"].split(" (offset")[0]


def unpack(cross: CrossWheel, scratch: Path) -> Path:
    with zipfile.ZipFile(cross.wheel) as archive:
        archive.extract(cross.library_member, scratch)
    return scratch / cross.library_member


def assert_well_formed(cross: CrossWheel, tag: str, library: str, helper: bool) -> None:
    """The unrepaired wheel: its package, library, METADATA, WHEEL and a RECORD that holds."""
    assert cross.wheel.name == f"example_kernels-0.1.0-{tag}.whl"
    assert cross.library_member == f"example_kernels/{library}"
    assert f"-{cross.tvm_ffi_version}-" in cross.tvm_ffi_wheel.name
    dist_info = "example_kernels-0.1.0.dist-info"
    with zipfile.ZipFile(cross.wheel) as archive:
        names = set(archive.namelist())
        assert names == {"example_kernels/__init__.py", cross.library_member,
                         f"{dist_info}/METADATA", f"{dist_info}/WHEEL", f"{dist_info}/RECORD"}
        record = archive.read(f"{dist_info}/RECORD").decode().splitlines()
        for line in record:
            path, digest, size = line.rsplit(",", 2)
            if path.endswith("RECORD"):
                assert (digest, size) == ("", "")
                continue
            data = archive.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert (digest, int(size)) == (f"sha256={expected}", len(data)), path
        assert {line.rsplit(",", 2)[0] for line in record} == names
        wheel = archive.read(f"{dist_info}/WHEEL").decode().splitlines()
        metadata = archive.read(f"{dist_info}/METADATA").decode().splitlines()
        init = archive.read("example_kernels/__init__.py").decode()
    assert f"Tag: {tag}" in wheel and "Root-Is-Purelib: false" in wheel
    assert f"Requires-Dist: apache-tvm-ffi>={cross.tvm_ffi_version}" in metadata
    assert f"tvm_ffi.load_module(os.path.join(os.path.dirname(__file__), {library!r}))" in init
    assert (f"{HELPER_FUNCTION} = _LIB.{HELPER_FUNCTION}" in init) == helper


# --------------------------------------------------------------------------- macOS arm64


def test_macos_library_is_signed_arm64_for_macos_11_and_links_tvm_ffi_by_rpath(macos_cross_wheels, tmp_path):
    cross = macos_cross_wheels[0]
    assert_well_formed(cross, "py3-none-macosx_11_0_arm64", "libexample_kernels.dylib", helper=False)
    assert cross.helper_dir is None
    library = unpack(cross, tmp_path)
    header = tool("llvm-otool", "-hv", library).splitlines()[-1].split()
    assert header[:2] == ["MH_MAGIC_64", "ARM64"] and header[4] == "DYLIB", header
    commands = load_commands(library)
    (build,) = [c for c in commands if c["cmd"] == "LC_BUILD_VERSION"]
    assert (build["platform"], build["minos"]) == ("macos", "11.0")
    (identity,) = [c for c in commands if c["cmd"] == "LC_ID_DYLIB"]
    assert dylib_name(identity) == "@rpath/libexample_kernels.dylib"
    assert sorted(dylib_name(c) for c in commands if c["cmd"] == "LC_LOAD_DYLIB") == [
        "/usr/lib/libSystem.B.dylib", "@rpath/libtvm_ffi.dylib"]
    assert not [c for c in commands if c["cmd"] == "LC_RPATH"], "the repair under test adds the rpath"
    assert [c for c in commands if c["cmd"] == "LC_CODE_SIGNATURE"]

    imports = [line.split() for line in tool("llvm-nm", "-u", "-m", library).splitlines()]
    # "(undefined) external _TVMFFIErrorSetRaised (from libtvm_ffi)"
    from_tvm_ffi = [fields[2] for fields in imports if fields[-1] == "libtvm_ffi)"]
    assert from_tvm_ffi and all(symbol.startswith("_TVMFFI") for symbol in from_tvm_ffi), from_tvm_ffi
    assert {fields[-1] for fields in imports} == {"libtvm_ffi)", "libSystem)"}

    exports = set(tool("llvm-nm", "-g", "-j", "--defined-only", library).split())
    kernels = {symbol for symbol in exports if symbol.startswith("___tvm_ffi_")}
    assert kernels == {f"___tvm_ffi_{function}" for function in KERNEL_FUNCTIONS}
    others = exports - kernels - ZIG_MACHO_EXPORTS
    assert all(symbol.startswith(OPERATOR_NEW_DELETE) for symbol in others), others


def test_macos_library_with_helper_needs_libgreeting_left_outside_the_wheel(macos_cross_wheels, tmp_path):
    cross = macos_cross_wheels[1]
    assert_well_formed(cross, "py3-none-macosx_11_0_arm64", "libexample_kernels.dylib", helper=True)
    library = unpack(cross, tmp_path)
    commands = load_commands(library)
    assert sorted(dylib_name(c) for c in commands if c["cmd"] == "LC_LOAD_DYLIB") == [
        "/usr/lib/libSystem.B.dylib", "@rpath/libgreeting.dylib", "@rpath/libtvm_ffi.dylib"]
    assert not [c for c in commands if c["cmd"] == "LC_RPATH"]
    assert "(undefined) external _greeting_value (from libgreeting)" in tool("llvm-nm", "-u", "-m", library)
    assert f"___tvm_ffi_{HELPER_FUNCTION}" in tool("llvm-nm", "-g", "-j", "--defined-only", library).split()

    assert cross.helper_dir is not None
    assert sorted(p.name for p in cross.helper_dir.iterdir()) == ["libgreeting.dylib"]
    helper = cross.helper_dir / "libgreeting.dylib"
    helper_commands = load_commands(helper)
    (identity,) = [c for c in helper_commands if c["cmd"] == "LC_ID_DYLIB"]
    assert dylib_name(identity) == "@rpath/libgreeting.dylib"
    (build,) = [c for c in helper_commands if c["cmd"] == "LC_BUILD_VERSION"]
    assert (build["platform"], build["minos"]) == ("macos", "11.0")
    assert "_greeting_value" in tool("llvm-nm", "-g", "-j", "--defined-only", helper).split()


# --------------------------------------------------------------------------- Windows amd64

SYSTEM_DLLS = ("kernel32.dll", "api-ms-win-crt-")  # the UCRT, through its API sets


def pe_facts(path: Path) -> tuple[int, int, bool, dict[str, list[str]], set[str]]:
    """machine, optional header magic, is a DLL, imports by DLL (lower case), exports."""
    pefile = pytest.importorskip("pefile")
    with pefile.PE(str(path), fast_load=False) as image:  # not the global default: delvewheel sets it
        imports = {entry.dll.decode().lower(): [i.name.decode() for i in entry.imports if i.name]
                   for entry in getattr(image, "DIRECTORY_ENTRY_IMPORT", [])}
        exports = {s.name.decode() for s in image.DIRECTORY_ENTRY_EXPORT.symbols if s.name}
        is_dll = bool(image.FILE_HEADER.Characteristics & 0x2000)  # IMAGE_FILE_DLL
        return image.FILE_HEADER.Machine, image.OPTIONAL_HEADER.Magic, is_dll, imports, exports


def test_windows_dll_is_x86_64_and_exports_only_its_kernels(windows_cross_wheels, tmp_path):
    cross = windows_cross_wheels[0]
    assert_well_formed(cross, "py3-none-win_amd64", "example_kernels.dll", helper=False)  # no .pdb either
    assert cross.helper_dir is None
    machine, magic, is_dll, imports, exports = pe_facts(unpack(cross, tmp_path))
    assert (machine, magic, is_dll) == (0x8664, 0x20B, True)  # x86-64, PE32+
    assert imports["tvm_ffi.dll"] and all(name.startswith("TVMFFI") for name in imports["tvm_ffi.dll"])
    # libc++ and libunwind are linked in: no other DLL than tvm-ffi's and the system's.
    assert [dll for dll in imports if dll != "tvm_ffi.dll" and not dll.startswith(SYSTEM_DLLS)] == []
    assert exports == {f"__tvm_ffi_{function}" for function in KERNEL_FUNCTIONS}


def test_windows_dll_with_helper_needs_greeting_dll_left_outside_the_wheel(windows_cross_wheels, tmp_path):
    cross = windows_cross_wheels[1]
    assert_well_formed(cross, "py3-none-win_amd64", "example_kernels.dll", helper=True)
    _, _, _, imports, exports = pe_facts(unpack(cross, tmp_path))
    assert imports["greeting.dll"] == ["greeting_value"]
    assert all(name.startswith("TVMFFI") for name in imports["tvm_ffi.dll"])
    assert exports == {f"__tvm_ffi_{function}" for function in (*KERNEL_FUNCTIONS, HELPER_FUNCTION)}

    assert cross.helper_dir is not None
    assert sorted(p.name for p in cross.helper_dir.iterdir()) == ["greeting.dll"]  # no import library, no .pdb
    machine, _, is_dll, helper_imports, helper_exports = pe_facts(cross.helper_dir / "greeting.dll")
    assert (machine, is_dll) == (0x8664, True)
    assert helper_exports == {"greeting_value"}
    assert all(dll.startswith(SYSTEM_DLLS) for dll in helper_imports), helper_imports
