"""The one module that imports delvewheel: renaming the DLLs a PE file imports.

A vendored DLL gets a name of its own (`greeting-1a2b3c4d.dll`), so two packages' copies
never meet in one process; the files that import it must then ask for that name. The
import directory's strings cannot simply be overwritten (the new names are longer), and
delvewheel solves that well: it writes them into the file's padding, or a new section.
delvewheel offers no Python API, so `replace_needed` of its private `_dll_utils` is used,
and pyproject.toml pins delvewheel to the series this was written against.

Importing delvewheel sets `pefile.fast_load = True` for the whole process, after which any
`pefile.PE(path)` elsewhere finds no imports. This module puts the setting back after the
import and sets it only while delvewheel runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pefile

from tvmffi_wheel.errors import TvmFfiWheelError

# Read before delvewheel's import changes it, hence an import below code.
_caller_fast_load = pefile.fast_load
from delvewheel import _dll_utils  # noqa: E402

pefile.fast_load = _caller_fast_load


def rename_imported_dlls(target: Path, shown: str, renames: Mapping[str, str]) -> None:
    """Make the PE file at ``target`` import each DLL of ``renames`` by its new name."""
    if not renames:
        return
    previous, pefile.fast_load = pefile.fast_load, True  # as delvewheel expects
    try:
        _dll_utils.replace_needed(str(target), list(renames), dict(renames), False, False)
    except (RuntimeError, ValueError) as err:
        raise TvmFfiWheelError(
            f"the DLLs {shown} imports could not be renamed: {err}",
            "exclude the DLL from vendoring (--exclude) and ship it another way",
        ) from None
    finally:
        pefile.fast_load = previous
