"""Decide a repair: the platform, what to vendor, and every binary's new run path.

A pure function of the wheel's binary facts, the platform policies and what a library finder
finds on this machine, so it is unit-tested without building anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import posixpath
from collections.abc import Mapping, Sequence
from pathlib import Path

from tvmffi_wheel.common._auditwheel import PlatformPolicy, manylinux_policies, system_library_dirs
from tvmffi_wheel.common.tvm_ffi import TVM_FFI_LIB_DIR
from tvmffi_wheel.deciding.classify import Classifier, Kind
from tvmffi_wheel.deciding.macos import macos_platform_tag
from tvmffi_wheel.deciding.nvidia import nvidia_wheel_folder
from tvmffi_wheel.deciding.platforms import Violation, policy_named, policy_violations, wheel_architecture
from tvmffi_wheel.deciding.runpath import planned_run_path
from tvmffi_wheel.deciding.systems import LINUX, MACOS, WINDOWS, System
from tvmffi_wheel.deciding.windows import dll_folders, windows_platform_tag
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
    new_name: str  # the name binaries ask for it by after the repair (macOS: "@rpath/<file>")


# How each system's loader names the folder of the binary that asks, in a run path entry.
_ORIGIN_TOKENS = ("${ORIGIN}", "$ORIGIN", "@loader_path")


class LibraryFinder:
    """Finds libraries the way the system's loader would: the requester's run paths (and
    on macOS its install names), then ``search_dirs`` (--lib-path, then the system's own
    list: LD_LIBRARY_PATH and ld.so.conf, DYLD_LIBRARY_PATH, PATH); ``searched`` says which,
    for messages."""

    def __init__(self, search_dirs: Sequence[str], searched: str = "") -> None:
        self._search_dirs = tuple(search_dirs)
        self.searched = searched
        self._facts: dict[Path, BinaryFacts] = {}

    def facts(self, path: Path) -> BinaryFacts:
        if path not in self._facts:
            self._facts[path] = read_binary_facts(path, str(path))
        return self._facts[path]

    def _places(self, name: str, origin: Path | None, requester: BinaryFacts) -> list[Path]:
        """Where the loader would look for ``name``, in order."""
        def resolved(entry: str) -> str | None:
            for token in _ORIGIN_TOKENS:
                if entry.startswith(token):
                    return None if origin is None else str(origin) + entry[len(token):]
            return None if entry.startswith("@") else entry

        places: list[Path] = []
        file_name = posixpath.basename(name)
        if requester.format == "macho":
            if name.startswith("@rpath/"):
                rest = name[len("@rpath/"):]
                places += [Path(d) / rest for e in requester.run_paths if (d := resolved(e)) is not None]
            elif (direct := resolved(name)) is not None:
                places.append(Path(direct))  # an absolute install name, or @loader_path/...
        elif requester.format == "elf":
            places += [Path(d) / name for e in requester.run_paths if (d := resolved(e)) is not None]
        places += [Path(d) / file_name for d in self._search_dirs]
        return places

    def find(self, soname: str, origin: Path | None, requester_facts: BinaryFacts) -> Path | None:
        """``origin``: the folder `$ORIGIN` (`@loader_path`) names for the requester (None:
        skip such entries)."""
        for candidate in self._places(soname, origin, requester_facts):
            if requester_facts.format == "pe" and not candidate.is_file():
                candidate = _case_insensitive(candidate)
            if not candidate.is_file():
                continue
            facts = self.facts(candidate.resolve())
            if (facts.format, facts.architecture) == (requester_facts.format, requester_facts.architecture):
                return candidate.resolve()
        return None


def library_finder(system: System, lib_path: Sequence[Path], environ: Mapping[str, str]) -> LibraryFinder:
    """Where a repair looks for libraries to vendor: --lib-path, then what the system's
    loader searches (LD_LIBRARY_PATH and the system's folders, DYLD_LIBRARY_PATH, PATH)."""
    extra = [str(p) for p in lib_path]
    if system is MACOS:
        own = [d for name in ("DYLD_LIBRARY_PATH", "DYLD_FALLBACK_LIBRARY_PATH")
               for d in environ.get(name, "").split(os.pathsep) if d]
        searched = "its run paths and install names, --lib-path and $DYLD_LIBRARY_PATH"
    elif system is WINDOWS:
        own = [d for d in environ.get("PATH", "").split(os.pathsep) if d]
        searched = "the wheel, --lib-path and $PATH"
    else:
        own = list(system_library_dirs())
        searched = "its run path, --lib-path, $LD_LIBRARY_PATH and the system's library folders"
    return LibraryFinder([*extra, *own], searched)


def _case_insensitive(candidate: Path) -> Path:
    """The file in ``candidate``'s folder whose name matches it but for case (Windows names)."""
    try:
        wanted = candidate.name.lower()
        return next((p for p in candidate.parent.iterdir() if p.name.lower() == wanted), candidate)
    except OSError:
        return candidate


@dataclasses.dataclass(frozen=True)
class RepairPlan:
    platform_tags: tuple[str, ...]
    policy: PlatformPolicy | None  # the manylinux policy (None on macOS and Windows)
    vendored: tuple[VendoredLibrary, ...]
    run_paths: dict[str, tuple[str, ...]]  # member -> new run path, only where it changes
    removed_needed: dict[str, tuple[str, ...]]  # member -> needed libraries to drop (libpython)
    tag_reason: tuple[str, ...]  # what keeps the wheel off the next older platform
    system: System = LINUX
    # Windows: the folders (site-packages relative) the package adds for its DLLs at import.
    dll_folders: tuple[str, ...] = ()

    @property
    def renamed_needed(self) -> dict[str, str]:
        return {lib.soname: lib.new_name for lib in self.vendored}


def vendored_name(soname: str, source: Path) -> str:
    """`libgomp.so.1` -> `libgomp-<8 hex of its content>.so.1`, as auditwheel names them;
    `greeting.dll` -> `greeting-<8 hex>.dll`, `@rpath/libz.dylib` -> `libz-<8 hex>.dylib`."""
    digest = hashlib.sha256()
    with source.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    name = posixpath.basename(soname)
    for suffix in (".so", ".dylib", ".dll", ".DLL"):
        if suffix in name:
            stem, dot, rest = name.partition(suffix)
            return f"{stem}-{digest.hexdigest()[:8]}{dot}{rest}"
    return f"{name}-{digest.hexdigest()[:8]}"


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
                    f"(searched {finder.searched or 'its run path'})",
                    "pass the folder that holds it with --lib-path so it can be vendored; "
                    "if users' systems provide it, add it to the `exclude` option",
                )
            if classifier.system.matches(source.name, classifier.excludes):
                continue
            library_facts = finder.facts(source)
            file_name = vendored_name(soname, source)
            new_name = f"@rpath/{file_name}" if classifier.system is MACOS else file_name
            path = f"{classifier.libs_dir}/{file_name}"
            vendored[soname] = VendoredLibrary(soname, source, library_facts, path, new_name)
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


def _platform(
    binaries: Sequence[WheelBinary], classifier: Classifier, plat: str, finder: LibraryFinder,
    deployment_target: str | None,
) -> tuple[tuple[str, ...], PlatformPolicy | None, dict[str, VendoredLibrary], tuple[str, ...]]:
    """(tags, manylinux policy, what to vendor, what rules out an older tag) on the binaries' system."""
    system = classifier.system
    if system is LINUX:
        policy, vendored, violations = _choose_policy(binaries, classifier, plat, finder)
        return (policy.name, *policy.aliases), policy, vendored, tuple(str(v) for v in violations)
    if plat:
        raise TvmFfiWheelError(
            f"`plat` is {plat!r}, but the wheel's binaries are for {system.name}, where tvmffi-wheel "
            "derives the tag from the binaries",
            "leave `plat` out (on macOS, MACOSX_DEPLOYMENT_TARGET raises the minimum macOS)",
        )
    arch = wheel_architecture(binaries)
    vendored = _collect_vendored(binaries, classifier, finder)
    if system is WINDOWS:
        return (windows_platform_tag(arch),), None, vendored, ()
    checked = list(binaries) + [WheelBinary(lib.path, lib.facts) for lib in vendored.values()]
    tag, setter = macos_platform_tag(checked, arch, deployment_target)
    return (tag,), None, vendored, (setter,)


def plan_repair(
    binaries: Sequence[WheelBinary],
    classifier: Classifier,
    *,
    plat: str,
    finder: LibraryFinder,
    requirements: frozenset[str] = frozenset(),
    deployment_target: str | None = None,
) -> RepairPlan:
    """The best platform the binaries allow, with what must be vendored to get there.

    ``requirements`` are the canonical names the wheel's Requires-Dist lists: an NVIDIA
    library is only acceptable when the wheel that provides it is among them.
    ``deployment_target``: MACOSX_DEPLOYMENT_TARGET, which may raise a macOS tag.
    """
    tags, policy, vendored, tag_reason = _platform(binaries, classifier, plat, finder, deployment_target)
    judged = classifier.with_whitelist(policy.whitelist) if policy is not None else classifier
    origin = classifier.system.origin
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
        if dropped and classifier.system is LINUX:
            removed_needed[binary.path] = dropped
    if origin is not None:
        for library in vendored.values():
            needs_sibling = any(n in vendored for n in library.facts.needed)
            run_paths[library.path] = (origin,) if needs_sibling else ()
    return RepairPlan(
        platform_tags=tags,
        policy=policy,
        vendored=tuple(vendored.values()),
        run_paths=run_paths,
        removed_needed=removed_needed,
        tag_reason=tag_reason,
        system=classifier.system,
        dll_folders=dll_folders(binaries, judged, bool(vendored)) if classifier.system is WINDOWS else (),
    )
