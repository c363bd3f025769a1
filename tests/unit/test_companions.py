"""Files beside a wheel's libraries: debug symbols and import libraries the backend's own wheels
leave out, files that claim to be binaries but are none, and where a Windows package's DLL
folders block goes."""

from __future__ import annotations

import ast
import dataclasses
import struct

import pytest
from synthetic import binary

from tvmffi_wheel.deciding.companions import left_out_of_build
from tvmffi_wheel.inspecting.binary import is_debug_companion, unreadable_binary
from tvmffi_wheel.inspecting.wheel import DebugFile
from tvmffi_wheel.writing.dll_folders import dll_folder_block, with_dll_folders

MACHO_DSYM = b"\xcf\xfa\xed\xfe" + struct.pack("<III", 0x0100000C, 0, 0xA) + bytes(16)  # MH_DSYM
MACHO_DYLIB = b"\xcf\xfa\xed\xfe" + struct.pack("<III", 0x0100000C, 0, 0x6) + bytes(16)  # MH_DYLIB


def test_debug_companions_by_place_and_kind() -> None:
    assert is_debug_companion("pkg/libk.dylib.dSYM/Contents/Info.plist", b"<?xml")
    assert is_debug_companion("pkg/libk.dylib.dSYM/Contents/Resources/DWARF/libk.dylib", MACHO_DSYM)
    assert is_debug_companion("pkg/k.dylib", MACHO_DSYM)  # a dSYM's DWARF file, wherever it is
    assert is_debug_companion("pkg/k.pdb", b"Microsoft C/C++ MSF 7.00")
    assert not is_debug_companion("pkg/libk.dylib", MACHO_DYLIB)


@pytest.mark.parametrize(("name", "head", "claim"), [
    ("pkg/libk.dylib", bytes(range(64)), "pkg/libk.dylib is named like a shared library but is no ELF"),
    ("pkg/libk.so.1.2", b"INPUT(-lk)", "pkg/libk.so.1.2 is named like a shared library"),
    ("pkg/k.pyd", b"junk", "pkg/k.pyd is named like a shared library"),
    ("pkg/k.dll", b"MZ" + bytes(100), "pkg/k.dll starts like a Windows binary (MZ) but has no PE header"),
    ("pkg/data.bin", b"MZ" + bytes(100), "pkg/data.bin starts like a Windows binary (MZ)"),
])
def test_files_that_claim_to_be_binaries(name: str, head: bytes, claim: str) -> None:
    found = unreadable_binary(name, head)
    assert found is not None and found.startswith(claim)


def test_data_is_data() -> None:
    assert unreadable_binary("pkg/table.json", b"{}") is None
    assert unreadable_binary("pkg/libk.so.txt", b"notes") is None


def test_the_backends_wheels_leave_out_debug_symbols_and_import_libraries() -> None:
    dll = binary("pkg/my_ext.dll")
    dll = dataclasses.replace(dll, facts=dataclasses.replace(dll.facts, format="pe"))
    members = ["pkg/__init__.py", "pkg/my_ext.dll", "pkg/my_ext.dll.a", "pkg/my_ext.lib", "pkg/other.lib",
               "pkg/libk.dylib.dSYM/Contents/Info.plist"]
    debug = [DebugFile("pkg/libk.dylib.dSYM/Contents/Info.plist", 10)]
    assert left_out_of_build(members, [dll], debug) == {
        "pkg/libk.dylib.dSYM/Contents/Info.plist": "debug symbols", "pkg/my_ext.dll.a": "an import library",
        "pkg/my_ext.lib": "an import library",
    }
    # A static library that is no DLL's import library, and any .lib of a wheel without DLLs, stay.
    assert left_out_of_build(["pkg/libk.so", "pkg/k.lib"], [binary("pkg/libk.so")], []) == {}


@pytest.mark.parametrize("source", [
    '# license\n"""The package."""\nfrom ._api import *\n',
    '"""The package.\n\nMore.\n"""\nfrom __future__ import annotations\nimport os\n',
    "from __future__ import annotations\nimport os\n",
    "import os\n",
    "",
])
def test_the_dll_folders_block_follows_the_docstring_and_future_imports(source: str) -> None:
    block = dll_folder_block("pkg", ("tvm_ffi/lib",), "tvm_ffi/lib")
    patched = with_dll_folders(source, block)
    compile(patched, "__init__.py", "exec")  # a future import after the block would not compile
    assert ast.get_docstring(ast.parse(patched)) == (ast.get_docstring(ast.parse(source)) if source else None)
    assert with_dll_folders(patched, block) == patched
    statements = ast.parse(patched).body
    first_call = next(i for i, s in enumerate(statements) if isinstance(s, ast.FunctionDef))
    assert all(isinstance(s, ast.Expr) or (isinstance(s, ast.ImportFrom) and s.module == "__future__")
               for s in statements[:first_call])
