"""Decide: what stays outside the wheel, what is vendored, the run paths, and the tags.

Everything here is a pure function of ELF facts and auditwheel's policy tables (plus a
library finder for what must be vendored), so it is unit-tested without building.
"""

from __future__ import annotations

import dataclasses
import enum
import fnmatch
import hashlib
import posixpath
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name

from tvmffi_wheel._auditwheel import PlatformPolicy, architecture_of, manylinux_policies
from tvmffi_wheel.cuda import cuda_major_of, library_folder, nvidia_library, wheel_for
from tvmffi_wheel.elf import ElfFacts, read_elf_facts
from tvmffi_wheel.errors import TvmFfiWheelError

# Where the apache-tvm-ffi wheel installs libtvm_ffi.so, relative to site-packages.
TVM_FFI_LIB_DIR = "tvm_ffi/lib"

TVM_FFI_PATTERNS = ("libtvm_ffi.so*", "libtvm_ffi-*.so*")
CUDA_DRIVER_PATTERNS = ("libcuda.so*", "libnvidia-*")
LOADER_PATTERNS = ("ld-linux*.so*", "ld64.so*")
PYTHON_LIBRARY_PATTERNS = ("libpython*",)


class Kind(enum.Enum):
    """How a NEEDED library is satisfied once the wheel is installed (values are stable ids)."""

    TVM_FFI = "tvm-ffi"  # the apache-tvm-ffi wheel's tvm_ffi/lib
    CUDA_DRIVER = "cuda-driver"  # the system's driver
    CUDA_LIBRARY = "cuda-library"  # an NVIDIA wheel (libcudart, libcublas, ...)
    EXCLUDED = "excluded"  # the `exclude` option: the user's system provides it
    LOADER = "loader"  # the dynamic loader
    PYTHON = "python"  # libpython: the interpreter
    IN_WHEEL = "wheel"  # another binary in the wheel
    SYSTEM = "system"  # the manylinux policy
    VENDORED = "outside-policy"  # none of the above: must be vendored


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def classify(
    soname: str,
    *,
    excludes: Sequence[str],
    in_wheel: frozenset[str],
    whitelist: frozenset[str],
) -> Kind:
    if _matches(soname, TVM_FFI_PATTERNS):
        return Kind.TVM_FFI
    if _matches(soname, CUDA_DRIVER_PATTERNS):
        return Kind.CUDA_DRIVER
    if nvidia_library(soname) is not None:
        return Kind.CUDA_LIBRARY
    if _matches(soname, LOADER_PATTERNS):
        return Kind.LOADER
    if _matches(soname, PYTHON_LIBRARY_PATTERNS):
        return Kind.PYTHON
    if _matches(soname, excludes):
        return Kind.EXCLUDED
    if soname in in_wheel:
        return Kind.IN_WHEEL
    if soname in whitelist:
        return Kind.SYSTEM
    return Kind.VENDORED


def is_tvm_ffi_library(file_name: str) -> bool:
    return _matches(file_name, TVM_FFI_PATTERNS)


def is_never_vendored(file_name: str) -> bool:
    """Libraries that must never be inside a wheel, whatever put them there."""
    base = re.sub(r"-[0-9a-f]{8}(?=\.so)", "", file_name)  # auditwheel's hashed copies too
    return (
        _matches(file_name, TVM_FFI_PATTERNS + CUDA_DRIVER_PATTERNS)
        or nvidia_library(base) is not None
    )


def nvidia_folder(soname: str, requirements: frozenset[str], shown: str) -> str:
    """The folder of the NVIDIA wheel that provides ``soname``; an error if not required."""
    library = nvidia_library(soname)
    assert library is not None
    major = cuda_major_of(soname)
    if major is None:
        raise TvmFfiWheelError(
            f"{shown} needs {soname}, which names no CUDA major version, so no NVIDIA wheel "
            "can be chosen for it",
            "link the versioned library (libfoo.so.13), e.g. through CMake's CUDAToolkit targets",
        )
    wheel = wheel_for(library, major)
    if canonicalize_name(wheel) not in requirements:
        raise TvmFfiWheelError(
            f"{shown} needs {soname}, which tvmffi-wheel never vendors: it belongs to NVIDIA's "
            f"{wheel} wheel (CUDA {major})",
            f"add {wheel!r} to [project] dependencies; the binary then gets a run path to "
            f"its {library_folder(library, major)}"
            + (" (or link it statically: tvmffi-wheel.cuda.runtime = \"static\")"
               if library.wheel == "nvidia-cuda-runtime" else ""),
        )
    return library_folder(library, major)


# --------------------------------------------------------------------------- inputs


@dataclasses.dataclass(frozen=True)
class WheelBinary:
    """An ELF file inside the wheel."""

    path: str  # archive member name
    disk_path: Path  # where it is unpacked
    facts: ElfFacts


@dataclasses.dataclass(frozen=True)
class VendoredLibrary:
    """A library copied into the wheel's `<name>.libs` folder under a hashed name."""

    soname: str  # the name binaries ask for
    source: Path
    facts: ElfFacts
    path: str  # archive member name, e.g. "pkg.libs/libgomp-1a2b3c4d.so.1"

    @property
    def new_soname(self) -> str:
        return posixpath.basename(self.path)


class LibraryFinder:
    """Finds libraries the way the dynamic loader would: run paths, then system dirs."""

    def __init__(self, system_dirs: Sequence[str]) -> None:
        self._system_dirs = tuple(system_dirs)
        self._facts: dict[Path, ElfFacts] = {}

    def facts(self, path: Path) -> ElfFacts:
        if path not in self._facts:
            self._facts[path] = read_elf_facts(path, str(path))
        return self._facts[path]

    def find(self, soname: str, requester: Path, requester_facts: ElfFacts) -> Path | None:
        origin = str(requester.parent)
        run_dirs = [
            entry.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)
            for entry in requester_facts.run_paths
        ]
        for directory in [*run_dirs, *self._system_dirs]:
            candidate = Path(directory) / soname
            if not candidate.is_file():
                continue
            facts = self.facts(candidate.resolve())
            if (facts.machine, facts.elf_class) == (
                requester_facts.machine,
                requester_facts.elf_class,
            ):
                return candidate.resolve()
        return None


# --------------------------------------------------------------------------- platform


@dataclasses.dataclass(frozen=True)
class Violation:
    """One reason a binary does not fit a platform policy."""

    file: str
    detail: str

    def __str__(self) -> str:
        return f"{self.file}: {self.detail}"


def _version_family(version: str) -> str:
    return version.split("_", 1)[0]


def policy_violations(
    policy: PlatformPolicy, binaries: Iterable[tuple[str, ElfFacts]]
) -> list[Violation]:
    """What in ``binaries`` the platform does not provide: symbol versions and banned symbols."""
    violations = []
    for shown, facts in binaries:
        for need in facts.version_needs:
            if _matches(need.library, LOADER_PATTERNS):
                continue  # the loader's versions are glibc's own; auditwheel skips them too
            allowed = policy.symbol_versions.get(_version_family(need.version))
            if allowed is not None and need.version not in allowed:
                violations.append(
                    Violation(shown, f"needs {need.describe()} (from {need.library})")
                )
        for library in facts.needed:
            banned = policy.blacklist.get(library, frozenset()) & facts.undefined
            if banned:
                violations.append(
                    Violation(shown, f"uses {', '.join(sorted(banned))} from {library}, "
                              f"which {policy.name} forbids")
                )
    return violations


def wheel_architecture(binaries: Sequence[WheelBinary]) -> str:
    arches = {}
    for binary in binaries:
        arch = architecture_of(binary.facts.machine, binary.facts.elf_class)
        if arch is None:
            raise TvmFfiWheelError(
                f"{binary.path} is built for {binary.facts.machine} "
                f"({binary.facts.elf_class}-bit), which has no manylinux platform",
            )
        arches.setdefault(arch, binary.path)
    if len(arches) > 1:
        shown = ", ".join(f"{path} is {arch}" for arch, path in arches.items())
        raise TvmFfiWheelError(
            f"the wheel mixes architectures: {shown}",
            "build every binary for one architecture; a wheel has one platform tag",
        )
    return next(iter(arches))


_PLATFORM_ARCH = re.compile(r"^(?:many|musl)?linux(?:_\d+_\d+|1|2010|2014)?_(.+)$")


def check_architecture(platforms: Sequence[str], binaries: Sequence[WheelBinary]) -> None:
    """The binaries are built for the architecture the wheel's platform tag names."""
    if not binaries:
        return
    arch = wheel_architecture(binaries)
    for platform in platforms:
        match = _PLATFORM_ARCH.match(platform)
        if match and match.group(1) != arch:
            raise TvmFfiWheelError(
                f"the wheel is tagged {platform}, but its binaries are built for {arch} "
                f"(e.g. {binaries[0].path})",
                f"build the wheel on (or cross-compile it for) {match.group(1)}",
            )


def _policy_named(name: str, policies: Sequence[PlatformPolicy], arch: str) -> PlatformPolicy:
    wanted = name if name.endswith(f"_{arch}") else f"{name}_{arch}"
    for policy in policies:
        if wanted == policy.name or wanted in policy.aliases:
            return policy
    known = ", ".join(p.name for p in policies)
    raise TvmFfiWheelError(
        f"`plat` is {name!r}, which is not a manylinux platform for {arch}",
        f"use one of: {known}",
    )


def best_fitting_policy(
    binaries: Sequence[WheelBinary], excludes: Sequence[str]
) -> PlatformPolicy | None:
    """The best platform the wheel fits as it is, with nothing vendored; None if none."""
    if not binaries:
        return None
    in_wheel = frozenset(_in_wheel_names(binaries))
    for policy in manylinux_policies(wheel_architecture(binaries)):
        outside = [
            soname
            for binary in binaries
            for soname in binary.facts.needed
            if classify(soname, excludes=excludes, in_wheel=in_wheel, whitelist=policy.whitelist)
            is Kind.VENDORED
        ]
        if not outside and not policy_violations(policy, [(b.path, b.facts) for b in binaries]):
            return policy
    return None


def policy_for_tag(platform: str, arch: str) -> PlatformPolicy | None:
    """The manylinux policy a platform tag names; None for `linux_*` and other tags."""
    for policy in manylinux_policies(arch):
        if platform == policy.name or platform in policy.aliases:
            return policy
    return None


# --------------------------------------------------------------------------- run paths


def install_path(member: str) -> str | None:
    """Where an archive member lands, relative to site-packages (None: outside it)."""
    parts = member.split("/")
    if parts[0].endswith(".data"):
        if len(parts) > 2 and parts[1] in ("purelib", "platlib"):
            return "/".join(parts[2:])
        return None
    return member


def origin_entry(file_install_path: str, target_dir: str) -> str:
    """The `$ORIGIN`-relative run path entry from a file to a folder (both site-packages relative)."""
    relative = posixpath.relpath(target_dir, posixpath.dirname(file_install_path) or ".")
    return "$ORIGIN" if relative == "." else f"$ORIGIN/{relative}"


def origin_target(entry: str, file_install_path: str) -> str | None:
    """The folder an `$ORIGIN` entry points to, site-packages relative; None if not `$ORIGIN`-based."""
    for token in ("${ORIGIN}", "$ORIGIN"):
        if entry == token or entry.startswith(token + "/"):
            rest = entry[len(token) :].lstrip("/")
            base = posixpath.dirname(file_install_path)
            return posixpath.normpath(posixpath.join(base, rest)) if rest or base else "."
    return None


def planned_run_path(
    binary_path: str, current: Sequence[str], wanted_dirs: Sequence[str]
) -> tuple[str, ...]:
    """Keep the `$ORIGIN` entries, drop absolute ones (a build tree), add what is missing."""
    location = install_path(binary_path)
    if location is None:
        if wanted_dirs:
            raise TvmFfiWheelError(
                f"{binary_path} is installed outside site-packages, so it cannot be given a "
                f"run path to {', '.join(wanted_dirs)}",
                "install the library into your package folder instead of a .data folder",
            )
        return tuple(e for e in current if origin_target(e, "") is not None)
    kept = [entry for entry in current if origin_target(entry, location) is not None]
    reached = {origin_target(entry, location) for entry in kept}
    for directory in wanted_dirs:
        if posixpath.normpath(directory) not in reached:
            kept.append(origin_entry(location, directory))
            reached.add(posixpath.normpath(directory))
    return tuple(dict.fromkeys(kept))


# --------------------------------------------------------------------------- the plan


@dataclasses.dataclass(frozen=True)
class RepairPlan:
    policy: PlatformPolicy
    vendored: tuple[VendoredLibrary, ...]
    run_paths: dict[str, tuple[str, ...]]  # member -> new run path, only where it changes
    removed_needed: dict[str, tuple[str, ...]]  # member -> NEEDED entries to drop (libpython)
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


def libs_folder(distribution: str) -> str:
    return f"{distribution}.libs"


def _in_wheel_names(binaries: Sequence[WheelBinary]) -> dict[str, str]:
    """SONAMEs and file names provided inside the wheel -> the folder providing them."""
    provided: dict[str, str] = {}
    for binary in binaries:
        location = install_path(binary.path)
        folder = posixpath.dirname(location) if location is not None else ""
        for name in filter(None, (binary.facts.soname, posixpath.basename(binary.path))):
            provided.setdefault(name, folder or ".")
    return provided


def _collect_vendored(
    binaries: Sequence[WheelBinary],
    policy: PlatformPolicy,
    excludes: Sequence[str],
    in_wheel: frozenset[str],
    finder: LibraryFinder,
    libs_dir: str,
) -> dict[str, VendoredLibrary]:
    vendored: dict[str, VendoredLibrary] = {}
    pending = [(b.path, b.disk_path, b.facts) for b in binaries]
    while pending:
        shown, disk_path, facts = pending.pop()
        for soname in facts.needed:
            kind = classify(soname, excludes=excludes, in_wheel=in_wheel, whitelist=policy.whitelist)
            if kind is not Kind.VENDORED or soname in vendored:
                continue
            source = finder.find(soname, disk_path, facts)
            if source is None:
                raise TvmFfiWheelError(
                    f"{shown} needs {soname}, which cannot be found on this machine "
                    "(searched its run path, $LD_LIBRARY_PATH and the system's library folders)",
                    "install the library or point LD_LIBRARY_PATH at it so it can be vendored; "
                    "if users' systems provide it, add it to the `exclude` option",
                )
            if _matches(source.name, excludes):
                continue
            library_facts = finder.facts(source)
            path = f"{libs_dir}/{vendored_name(soname, source)}"
            vendored[soname] = VendoredLibrary(soname, source, library_facts, path)
            pending.append((soname, source, library_facts))
    return vendored


def plan_repair(
    binaries: Sequence[WheelBinary],
    *,
    distribution: str,
    excludes: Sequence[str],
    plat: str,
    finder: LibraryFinder,
    requirements: frozenset[str] = frozenset(),
) -> RepairPlan:
    """The best platform the binaries allow, with what must be vendored to get there.

    ``requirements`` are the canonical names the wheel's Requires-Dist lists: an NVIDIA
    library is only acceptable when the wheel that provides it is among them.
    """
    arch = wheel_architecture(binaries)
    policies = manylinux_policies(arch)
    candidates = [_policy_named(plat, policies, arch)] if plat else list(policies)
    provided = _in_wheel_names(binaries)
    in_wheel = frozenset(provided)
    libs_dir = libs_folder(distribution)

    previous: list[Violation] = []
    for policy in candidates:
        vendored = _collect_vendored(binaries, policy, excludes, in_wheel, finder, libs_dir)
        checked = [(b.path, b.facts) for b in binaries]
        checked += [(f"{lib.soname} (vendored from {lib.source})", lib.facts) for lib in vendored.values()]
        violations = policy_violations(policy, checked)
        if not violations:
            break
        previous = violations
    else:
        listed = "\n    ".join(str(v) for v in previous[:10])
        if plat:
            raise TvmFfiWheelError(
                f"the wheel cannot be tagged {candidates[0].name}:\n    {listed}",
                "build on an older glibc (e.g. in the quay.io/pypa/"
                f"{candidates[0].name} image), or leave `plat` unset for the best tag "
                "these binaries allow",
            )
        raise TvmFfiWheelError(
            f"no manylinux platform allows these binaries:\n    {listed}",
            "build in a manylinux image (e.g. quay.io/pypa/manylinux_2_28_"
            f"{arch}) so the binaries need an older glibc, or set "
            "tvmffi-wheel.repair=skip to write a linux_* wheel that PyPI will not accept",
        )

    run_paths: dict[str, tuple[str, ...]] = {}
    removed_needed: dict[str, tuple[str, ...]] = {}
    for binary in binaries:
        wanted: list[str] = []
        dropped: list[str] = []
        for soname in binary.facts.needed:
            kind = classify(soname, excludes=excludes, in_wheel=in_wheel, whitelist=policy.whitelist)
            if kind is Kind.TVM_FFI:
                wanted.append(TVM_FFI_LIB_DIR)
            elif kind is Kind.VENDORED:
                wanted.append(libs_dir)
            elif kind is Kind.IN_WHEEL:
                wanted.append(provided[soname])
            elif kind is Kind.CUDA_LIBRARY:
                wanted.append(nvidia_folder(soname, requirements, binary.path))
            elif kind is Kind.PYTHON:
                dropped.append(soname)
        new_run_path = planned_run_path(binary.path, binary.facts.run_paths, wanted)
        if new_run_path != binary.facts.run_paths:
            run_paths[binary.path] = new_run_path
        if dropped:
            removed_needed[binary.path] = tuple(dropped)
    for library in vendored.values():
        needs_sibling = any(n in vendored for n in library.facts.needed)
        run_paths[library.path] = ("$ORIGIN",) if needs_sibling else ()

    return RepairPlan(
        policy=policy,
        vendored=tuple(vendored.values()),
        run_paths=run_paths,
        removed_needed=removed_needed,
        tag_reason=tuple(previous),
    )


# --------------------------------------------------------------------------- python tag


def python_c_api_users(binaries: Iterable[WheelBinary]) -> dict[str, str]:
    """Binaries that use the CPython C API -> the evidence, for messages."""
    users = {}
    for binary in binaries:
        libpython = [n for n in binary.facts.needed if _matches(n, PYTHON_LIBRARY_PATTERNS)]
        if binary.facts.python_c_api:
            shown = ", ".join(binary.facts.python_c_api[:3])
            users[binary.path] = f"imports {shown}"
        elif libpython:
            users[binary.path] = f"needs {libpython[0]}"
    return users


def choose_python_tag(
    built: tuple[str, str], c_api_users: dict[str, str]
) -> tuple[tuple[str, str], str | None]:
    """(interpreter, abi) for the wheel, and a line explaining a CPython-specific tag.

    scikit-build-core tags `cpXY-cpXY` only when `wheel.py-api` is unset; any other tag
    was asked for, and is kept unless it claims independence from a C API that is used.
    """
    interpreter, abi = built
    if abi == "none":
        if c_api_users:
            path, evidence = next(iter(c_api_users.items()))
            raise TvmFfiWheelError(
                f"wheel.py-api gives the tag {interpreter}-none, but {path} uses the Python "
                f"C API ({evidence}), so it only works with the Python it was built for",
                "remove wheel.py-api to get an honest cpXY tag, or set it to cp3X for the "
                "stable ABI (abi3) if the module only uses the limited API",
            )
        return built, None
    if abi == "abi3" or abi != interpreter:
        return built, None
    if c_api_users:
        path, evidence = next(iter(c_api_users.items()))
        return built, f"tagged {interpreter}-{abi}: {path} uses the Python C API ({evidence})"
    return ("py3", "none"), None

