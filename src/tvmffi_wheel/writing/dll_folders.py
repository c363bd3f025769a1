"""Windows: the lines a repair puts at the top of a package's `__init__.py` so its DLLs load.

Windows has no run path. Python 3.8 and later (ctypes, extension modules) resolve DLLs'
dependencies in the folders added with os.add_dll_directory, so the package adds tvm_ffi.dll's
folder (found without importing tvm_ffi) and its vendored DLLs' folder before anything else
runs. A plain LoadLibrary (tvm_ffi.load_module's, a C++ host's) does not search those folders,
but binds an import to a DLL of that name already loaded: so the block also loads each
vendored DLL by its full path, and their names are the repair's own (`greeting-1a2b3c4d.dll`),
which no other package's DLL has. The block is marked, and a repair replaces a block it finds,
so repairing twice gives the same bytes.
"""

from __future__ import annotations

import ast
import posixpath
import re
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from tvmffi_wheel.common.dll_folders import DLL_FOLDERS_BEGIN, DLL_FOLDERS_END
from tvmffi_wheel.common.tvm_ffi import TVM_FFI_LIB_DIR
from tvmffi_wheel.errors import info

_BLOCK = re.compile(rf"{re.escape(DLL_FOLDERS_BEGIN)}\n.*?{re.escape(DLL_FOLDERS_END)}\n", re.DOTALL)

_TEMPLATE = '''{begin}
def _tvmffi_wheel_add_dll_folders():
    import importlib.util
    import os

    if not hasattr(os, "add_dll_directory"):
        return
    here = os.path.dirname(os.path.abspath(__file__))
    for relative in {relative!r}:
        folder = os.path.normpath(os.path.join(here, relative))
        if os.path.isdir(folder):
            os.add_dll_directory(folder)
            import ctypes

            for name in sorted(os.listdir(folder)):
                if name.lower().endswith(".dll"):
                    ctypes.WinDLL(os.path.join(folder, name))
    if {tvm_ffi!r}:
        spec = importlib.util.find_spec("tvm_ffi")
        for location in (spec.submodule_search_locations or []) if spec else []:
            folder = os.path.join(location, "lib")
            if os.path.isdir(folder):
                os.add_dll_directory(folder)


_tvmffi_wheel_add_dll_folders()
del _tvmffi_wheel_add_dll_folders
{end}
'''


def dll_folder_block(package: str, folders: tuple[str, ...], tvm_ffi_folder: str) -> str:
    """The block for ``package`` (site-packages relative): the folders besides tvm-ffi's
    relative to it, and whether to add tvm_ffi's lib folder."""
    relative = tuple(posixpath.relpath(f, package) for f in folders if f != tvm_ffi_folder)
    return _TEMPLATE.format(begin=DLL_FOLDERS_BEGIN, end=DLL_FOLDERS_END, relative=relative,
                            tvm_ffi=tvm_ffi_folder in folders)


def with_dll_folders(source: str, block: str) -> str:
    """``source`` with ``block`` before its first statement, after its docstring and its
    `from __future__` imports (a docstring must come first to be one, a future import before
    any other statement), replacing the block an earlier repair put there."""
    source = _BLOCK.sub("", source)
    lines = source.splitlines(keepends=True)
    insert_at = 0
    try:
        body = ast.parse(source).body
    except (SyntaxError, ValueError):
        body = []  # the package would not import anyway; its own error stays the first one
    for index, statement in enumerate(body):
        docstring = index == 0 and isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant) \
            and isinstance(statement.value.value, str)
        if not (docstring or (isinstance(statement, ast.ImportFrom) and statement.module == "__future__")):
            break
        insert_at = statement.end_lineno or statement.lineno
    if insert_at and not lines[insert_at - 1].endswith("\n"):
        lines[insert_at - 1] += "\n"
    return "".join(lines[:insert_at]) + block + "".join(lines[insert_at:])


def add_dll_folders(
    members: Collection[str], read_text: Callable[[str], str], packages: Sequence[str],
    folders: tuple[str, ...], scratch: Path,
) -> tuple[dict[str, Path], dict[str, Path]]:
    """(replaced, added) `__init__.py` members: each package holding DLLs adds ``folders``."""
    replaced: dict[str, Path] = {}
    added: dict[str, Path] = {}
    for package in packages:
        member = f"{package}/__init__.py"
        exists = member in members
        source = read_text(member) if exists else ""
        target = scratch / "dll_folders" / member
        target.parent.mkdir(parents=True, exist_ok=True)
        block = dll_folder_block(package, folders, TVM_FFI_LIB_DIR)
        target.write_bytes(with_dll_folders(source, block).encode("utf-8"))
        (replaced if exists else added)[member] = target
        info(f"{member} adds the DLL folders {', '.join(folders)} at import")
    return replaced, added
