"""Decide a repair: the platform, what to vendor, and every binary's new run path.

A pure function of the wheel's binary facts, the platform policies and what a library finder
finds on this machine, so it is unit-tested without building anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import posixpath
from collections.abc import Sequence
from pathlib import Path

from tvmffi_wheel.deciding._auditwheel import PlatformPolicy, manylinux_policies
from tvmffi_wheel.deciding.classify import TVM_FFI_LIB_DIR, Classifier, Kind, matches
from tvmffi_wheel.deciding.nvidia import nvidia_wheel_folder
from tvmffi_wheel.deciding.platforms import Violation, policy_named, policy_violations, wheel_architecture
from tvmffi_wheel.deciding.runpath import planned_run_path
from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting.binary import read_binary_facts
from tvmffi_wheel.inspecting.facts import BinaryFacts
from tvmffi_wheel.inspecting.wheel import WheelBinary


@dataclasses.dataclass(frozen=True)
class VendoredLibrary:
    """A library copied into the wheel's `<name>.libs` folder under a hashed name."""

    soname: str  # the name binaries ask for
    source: Path
    facts: BinaryFacts
    path: str  # archive member name, e.g. "pkg.libs/libgomp-1a2b3c4d.so.1"

    @property
    def new_soname(self) -> str:
        return posixpath.basename(self.path)


class LibraryFinder:
    """Finds libraries the way the dynamic loader would: run paths, then system dirs."""

    def __init__(self, system_dirs: Sequence[str]) -> None:
        self._system_dirs = tuple(system_dirs)
        self._facts: dict[Path, BinaryFacts] = {}

    def facts(self, path: Path) -> BinaryFacts:
        if path not in self._facts:
            self._facts[path] = read_binary_facts(path, str(path))
        return self._facts[path]

    def find(self, soname: str, origin: Path | None, requester_facts: BinaryFacts) -> Path | None:
        """``origin``: the folder `$ORIGIN` names for the requester (None: skip such entries)."""
        run_dirs = [
            entry.replace("${ORIGIN}", str(origin)).replace("$ORIGIN", str(origin))
            for entry in requester_facts.run_paths
            if origin is not None or "ORIGIN" not in entry
        ]
        for directory in [*run_dirs, *self._system_dirs]:
            candidate = Path(directory) / soname
            if not candidate.is_file():
                continue
            facts = self.facts(candidate.resolve())
            if facts.architecture == requester_facts.architecture:
                return candidate.resolve()
        return None


@dataclasses.dataclass(frozen=True)
class RepairPlan:
    policy: PlatformPolicy
    vendored: tuple[VendoredLibrary, ...]
    run_paths: dict[str, tuple[str, ...]]  # member -> new run path, only where it changes
    removed_needed: dict[str, tuple[str, ...]]  # member -> needed libraries to drop (libpython)
    tag_reason: tuple[Violation, ...]  # what keeps the wheel off the next older platform

    @property
    def platform_tags(self) -> tuple[str, ...]:
        return (self.policy.name, *self.policy.aliases)

    @property
    def renamed_needed(self) -> dict[str, str]:
        return {lib.soname: lib.new_soname for lib in self.vendored}


def vendored_name(soname: str, source: Path) -> str:
    """`libgomp.so.1` -> `libgomp-<8 hex of its content>.so.1`, as auditwheel names them."""
    digest = hashlib.sha256()
    with source.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    stem, dot, rest = soname.partition(".so")
    return f"{stem}-{digest.hexdigest()[:8]}{dot}{rest}"


def _collect_vendored(
    binaries: Sequence[WheelBinary], classifier: Classifier, finder: LibraryFinder
) -> dict[str, VendoredLibrary]:
    """Every library nothing provides, found on this machine, with what it needs in turn."""
    vendored: dict[str, VendoredLibrary] = {}
    pending = [(b.path, b.origin, b.facts) for b in binaries]
    while pending:
        shown, origin, facts = pending.pop()
        for soname, kind in classifier.needs(facts):
            if kind is not Kind.NOT_PROVIDED or soname in vendored:
                continue
            source = finder.find(soname, origin, facts)
            if source is None:
                raise TvmFfiWheelError(
                    f"{shown} needs {soname}, which cannot be found on this machine "
                    "(searched its run path, $LD_LIBRARY_PATH and the system's library folders)",
                    "install the library or point LD_LIBRARY_PATH at it so it can be vendored; "
                    "if users' systems provide it, add it to the `exclude` option",
                )
            if matches(source.name, classifier.excludes):
                continue
            library_facts = finder.facts(source)
            path = f"{classifier.libs_dir}/{vendored_name(soname, source)}"
            vendored[soname] = VendoredLibrary(soname, source, library_facts, path)
            pending.append((soname, source.parent, library_facts))
    return vendored


def _choose_policy(
    binaries: Sequence[WheelBinary], classifier: Classifier, plat: str, finder: LibraryFinder
) -> tuple[PlatformPolicy, dict[str, VendoredLibrary], list[Violation]]:
    """The best candidate platform the binaries fit once vendored, with what rules out the
    next better one."""
    arch = wheel_architecture(binaries)
    candidates = [policy_named(plat, arch)] if plat else list(manylinux_policies(arch))
    previous: list[Violation] = []
    for policy in candidates:
        judged = classifier.with_whitelist(policy.whitelist)
        vendored = _collect_vendored(binaries, judged, finder)
        checked = [(b.path, b.facts) for b in binaries]
        checked += [(f"{lib.soname} (vendored from {lib.source})", lib.facts) for lib in vendored.values()]
        violations = policy_violations(policy, checked)
        if not violations:
            return policy, vendored, previous
        previous = violations
    listed = "\n    ".join(str(v) for v in previous[:10])
    if plat:
        raise TvmFfiWheelError(
            f"the wheel cannot be tagged {candidates[0].name}:\n    {listed}",
            f"build on an older glibc (e.g. in the quay.io/pypa/{candidates[0].name} image), or "
            "leave `plat` unset for the best tag these binaries allow",
        )
    raise TvmFfiWheelError(
        f"no manylinux platform allows these binaries:\n    {listed}",
        f"build in a manylinux image (e.g. quay.io/pypa/manylinux_2_28_{arch}) so the binaries "
        "need an older glibc, or set tvmffi-wheel.repair=skip to write a linux_* wheel that PyPI "
        "will not accept",
    )


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
    finder: LibraryFinder,
    requirements: frozenset[str] = frozenset(),
) -> RepairPlan:
    """The best platform the binaries allow, with what must be vendored to get there.

    ``requirements`` are the canonical names the wheel's Requires-Dist lists: an NVIDIA
    library is only acceptable when the wheel that provides it is among them.
    """
    policy, vendored, tag_reason = _choose_policy(binaries, classifier, plat, finder)
    judged = classifier.with_whitelist(policy.whitelist)
    run_paths: dict[str, tuple[str, ...]] = {}
    removed_needed: dict[str, tuple[str, ...]] = {}
    for binary in binaries:
        new_run_path = planned_run_path(
            binary.path, binary.facts.run_paths, _wanted_folders(binary, judged, requirements)
        )
        if new_run_path != binary.facts.run_paths:
            run_paths[binary.path] = new_run_path
        dropped = tuple(s for s, kind in judged.needs(binary.facts) if kind is Kind.PYTHON)
        if dropped:
            removed_needed[binary.path] = dropped
    for library in vendored.values():
        needs_sibling = any(n in vendored for n in library.facts.needed)
        run_paths[library.path] = ("$ORIGIN",) if needs_sibling else ()
    return RepairPlan(
        policy=policy,
        vendored=tuple(vendored.values()),
        run_paths=run_paths,
        removed_needed=removed_needed,
        tag_reason=tuple(tag_reason),
    )
