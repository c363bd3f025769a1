"""Patch Mach-O binaries: install names, references and run paths, with install_name_tool.

On macOS, Apple's `install_name_tool` makes the change and `codesign --force --sign -`
signs the result ad hoc again. Elsewhere LLVM's `llvm-install-name-tool` does both: it
signs a linker-signed arm64 binary again after changing it (LLVM 13 and later). Debian and
Ubuntu ship it in the `llvm` package, as `llvm-install-name-tool` or with the version as a
suffix; Homebrew's and conda-forge's `llvm` have it too. Whatever did the change, the verify
stage checks every page hash of the result.
"""

from __future__ import annotations

import glob
import shutil
import subprocess
import sys
from pathlib import Path

from tvmffi_wheel.errors import TvmFfiWheelError

_LLVM_NAMES = ("llvm-install-name-tool", *(f"llvm-install-name-tool-{n}" for n in range(30, 12, -1)))


def _llvm_install_name_tool() -> str | None:
    for name in _LLVM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    candidates = sorted(glob.glob("/usr/lib/llvm-*/bin/llvm-install-name-tool"), reverse=True)
    return candidates[0] if candidates else None


class MachOPatcher:
    """Runs the platform's tool on one file at a time."""

    def __init__(self) -> None:
        self._apple = sys.platform == "darwin" and shutil.which("install_name_tool") is not None
        tool = shutil.which("install_name_tool") if self._apple else _llvm_install_name_tool()
        if tool is None:
            raise TvmFfiWheelError(
                "changing a Mach-O binary's run paths and install names needs llvm-install-name-tool "
                "(or Apple's install_name_tool on macOS), and none is on PATH",
                "install LLVM 13 or later: `apt install llvm` on Debian and Ubuntu, `brew install llvm`, "
                "or `conda install -c conda-forge llvm-tools`",
            )
        self.tool = tool

    def patch(self, target: Path, shown: str, arguments: list[str]) -> None:
        if not arguments:
            return
        self._run([self.tool, *arguments, str(target)], shown)
        if self._apple:
            self._run(["codesign", "--force", "--sign", "-", str(target)], shown)

    def _run(self, command: list[str], shown: str) -> None:
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise TvmFfiWheelError(
                f"{Path(command[0]).name} failed on {shown}: {result.stderr.strip() or result.stdout.strip()}",
                "relink the binary with room for longer load commands (-headerpad_max_install_names)",
            )


def macho_arguments(
    renames: dict[str, str], needed: tuple[str, ...], current_run_path: tuple[str, ...],
    new_run_path: tuple[str, ...] | None, new_id: str | None = None,
) -> list[str]:
    """install_name_tool's options for one binary: the references to change, the run path
    entries to delete and to add (``new_run_path`` None: unchanged), and its new install name."""
    arguments = ["-id", new_id] if new_id else []
    for old in needed:
        if old in renames:
            arguments += ["-change", old, renames[old]]
    if new_run_path is not None:
        arguments += [a for entry in current_run_path if entry not in new_run_path for a in ("-delete_rpath", entry)]
        arguments += [a for entry in new_run_path if entry not in current_run_path for a in ("-add_rpath", entry)]
    return arguments
