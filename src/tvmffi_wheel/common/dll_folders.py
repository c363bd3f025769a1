"""The marks around the block a repair writes into a Windows package's `__init__.py`
(writing/dll_folders.py), by which `check` and the verify stage tell whether a package has it."""

from __future__ import annotations

DLL_FOLDERS_BEGIN = "# begin tvmffi-wheel: DLL folders"
DLL_FOLDERS_END = "# end tvmffi-wheel: DLL folders"


def has_dll_folders(source: str) -> bool:
    """The package source holds the DLL folders block."""
    return DLL_FOLDERS_BEGIN in source and DLL_FOLDERS_END in source
