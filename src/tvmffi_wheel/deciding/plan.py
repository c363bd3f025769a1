"""Decide a repair: the platform, what to vendor, and every binary's new run path.

A pure function of the wheel's binary facts, the platform's rules and policies, and what a
library finder (inspecting/library_finder.py) finds on this machine in the places the
platform names, so it is unit-tested without building anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

from tvmffi_wheel.common._auditwheel import PlatformPolicy
from tvmffi_wheel.common.tvm_ffi import TVM_FFI_LIB_DIR
from tvmffi_wheel.deciding.classify import Classifier, Kind
from tvmffi_wheel.deciding.nvidia import nvidia_wheel_folder
from tvmffi_wheel.deciding.platforms import LINUX, Platform, wheel_architecture
from tvmffi_wheel.deciding.platforms.base import TagChoice, VendoredLibrary
from tvmffi_wheel.deciding.runpath import planned_run_path
from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting.library_finder import FoundLibrary
from tvmffi_wheel.inspecting.wheel import WheelBinary


class Finder(Protocol):
    """What the plan asks of the machine (inspecting/library_finder.LibraryFinder)."""

    search_dirs: tuple[str, ...]

    def find(self, places: Sequence[str], *, fold_case: bool, file_format: str,
             architecture: str) -> FoundLibrary | None: ...


@dataclasses.dataclass(frozen=True)
class RepairPlan:
    platform_tags: tuple[str, ...]
    policy: PlatformPolicy | None  # the manylinux policy (None on macOS and Windows)
    vendored: tuple[VendoredLibrary, ...]
    run_paths: dict[str, tuple[str, ...]]  # member -> new run path, only where it changes
    removed_needed: dict[str, tuple[str, ...]]  # member -> needed libraries to drop (libpython)
    tag_reason: tuple[str, ...]  # what keeps the wheel off the next older platform
    system: Platform = LINUX
    # Windows: the folders (site-packages relative) the package adds for its DLLs at import.
    dll_folders: tuple[str, ...] = ()

    @property
    def renamed_needed(self) -> dict[str, str]:
        return {lib.soname: lib.new_name for lib in self.vendored}

    @property
    def description(self) -> str:
        """The log's line for the tag."""
        return self.system.describe_tag(TagChoice(self.platform_tags, self.policy, {}, self.tag_reason))


def _collect_vendored(
    binaries: Sequence[WheelBinary], classifier: Classifier, finder: Finder
) -> dict[str, VendoredLibrary]:
    """Every library nothing provides, found on this machine, with what it needs in turn."""
    platform = classifier.system
    vendored: dict[str, VendoredLibrary] = {}
    pending = [(b.path, b.origin, b.facts) for b in binaries]
    while pending:
        shown, origin, facts = pending.pop()
        for soname in classifier.unprovided(facts):
            if soname in vendored:
                continue
            places = platform.places(soname, None if origin is None else str(origin), facts.run_paths,
                                     finder.search_dirs)
            found = finder.find(places, fold_case=platform.fold_case, file_format=facts.format,
                                architecture=facts.architecture)
            if found is None:
                raise TvmFfiWheelError(
                    f"{shown} needs {soname}, which cannot be found on this machine "
                    f"(searched {platform.search.searched})",
                    "pass the folder that holds it with --lib-path so it can be vendored; "
                    "if users' systems provide it, add it to the `exclude` option",
                )
            if platform.matches(found.path.name, classifier.excludes):
                continue
            file_name, new_name = platform.vendored_names(soname, found.digest)
            path = f"{classifier.libs_dir}/{file_name}"
            vendored[soname] = VendoredLibrary(soname, found.path, found.facts, path, new_name)
            pending.append((soname, found.path.parent, found.facts))
    return vendored


def _wanted_folders(binary: WheelBinary, classifier: Classifier, requirements: frozenset[str]) -> list[str]:
    """The folders a binary's run path must reach for everything it needs."""
    wanted = []
    for soname, kind in classifier.needs(binary.facts):
        if kind is Kind.TVM_FFI:
            wanted.append(TVM_FFI_LIB_DIR)
        elif kind is Kind.NOT_PROVIDED:
            wanted.append(classifier.libs_dir)
        elif kind in (Kind.IN_WHEEL, Kind.VENDORED):
            wanted.append(classifier.provider_folder(soname))
        elif kind is Kind.NVIDIA_WHEEL:
            wanted.append(nvidia_wheel_folder(soname, requirements, binary.path))
    return wanted


def plan_repair(
    binaries: Sequence[WheelBinary],
    classifier: Classifier,
    *,
    plat: str,
    finder: Finder,
    requirements: frozenset[str] = frozenset(),
    deployment_target: str | None = None,
) -> RepairPlan:
    """The best platform the binaries allow, with what must be vendored to get there.

    ``requirements`` are the canonical names the wheel's Requires-Dist lists: an NVIDIA
    library is only acceptable when the wheel that provides it is among them.
    ``deployment_target``: MACOSX_DEPLOYMENT_TARGET, which may raise a macOS tag.
    """
    platform = classifier.system
    choice = platform.choose_tags(binaries, classifier, wheel_architecture(binaries), plat,
                                  lambda judged: _collect_vendored(binaries, judged, finder), deployment_target)
    policy, vendored = choice.policy, choice.vendored
    judged = classifier.with_whitelist(policy.whitelist) if policy is not None else classifier
    origin = platform.origin
    run_paths: dict[str, tuple[str, ...]] = {}
    removed_needed: dict[str, tuple[str, ...]] = {}
    for binary in binaries:
        if origin is not None:
            new_run_path = planned_run_path(
                binary.path, binary.facts.run_paths, _wanted_folders(binary, judged, requirements), origin
            )
            if new_run_path != binary.facts.run_paths:
                run_paths[binary.path] = new_run_path
        dropped = tuple(s for s, kind in judged.needs(binary.facts) if kind is Kind.PYTHON)
        if dropped and platform.drops_libpython:
            removed_needed[binary.path] = dropped
    if origin is not None:
        for library in vendored.values():
            needs_sibling = any(n in vendored for n in library.facts.needed)
            run_paths[library.path] = (origin,) if needs_sibling else ()
    return RepairPlan(
        platform_tags=choice.tags,
        policy=policy,
        vendored=tuple(vendored.values()),
        run_paths=run_paths,
        removed_needed=removed_needed,
        tag_reason=choice.reason,
        system=platform,
        dll_folders=platform.dll_folders(binaries, judged, bool(vendored)),
    )
