"""The platform side of a wheel: its architecture, the system its tag names, and which
manylinux policies it fits (macOS's and Windows's tags: macos.py, windows.py)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence

from tvmffi_wheel.common._auditwheel import PlatformPolicy, has_manylinux_policies, manylinux_policies
from tvmffi_wheel.deciding.classify import LOADER_PATTERNS, Classifier, Kind, matches
from tvmffi_wheel.deciding.systems import LINUX, System, system_of_tag, wheel_system
from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting.facts import BinaryFacts
from tvmffi_wheel.inspecting.wheel import WheelBinary


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
    policy: PlatformPolicy, binaries: Iterable[tuple[str, BinaryFacts]]
) -> list[Violation]:
    """What in ``binaries`` the platform does not provide: symbol versions and banned symbols."""
    violations = []
    for shown, facts in binaries:
        for need in facts.import_versions:
            if matches(need.library, LOADER_PATTERNS):
                continue  # the loader's versions are glibc's own; auditwheel skips them too
            allowed = policy.symbol_versions.get(_version_family(need.version))
            if allowed is not None and need.version not in allowed:
                violations.append(Violation(shown, f"needs {need.describe()} (from {need.library})"))
        for library in facts.needed:
            banned = policy.blacklist.get(library, frozenset()) & facts.imports
            if banned:
                violations.append(
                    Violation(shown, f"uses {', '.join(sorted(banned))} from {library}, "
                              f"which {policy.name} forbids")
                )
    return violations


def binaries_system(binaries: Sequence[WheelBinary]) -> System:
    """The operating system the binaries are built for (Linux when there are none)."""
    return wheel_system((b.path, b.facts.format) for b in binaries)


def wheel_architecture(binaries: Sequence[WheelBinary]) -> str:
    system = binaries_system(binaries)
    arches: dict[str, str] = {}
    for binary in binaries:
        arch = binary.facts.architecture
        if system is LINUX and not has_manylinux_policies(arch):
            raise TvmFfiWheelError(f"{binary.path} is built for {arch}, which has no manylinux platform")
        if arch not in system.architectures:
            raise TvmFfiWheelError(
                f"{binary.path} is built for {arch}, which no {system.name} wheel tag names",
                f"build it for one of: {', '.join(system.architectures)}",
            )
        arches.setdefault(arch, binary.path)
    if len(arches) > 1:
        shown = ", ".join(f"{path} is {arch}" for arch, path in arches.items())
        raise TvmFfiWheelError(
            f"the wheel mixes architectures: {shown}",
            "build every binary for one architecture; a wheel has one platform tag",
        )
    return next(iter(arches))


_PLATFORM_ARCH = (
    re.compile(r"^(?:many|musl)?linux(?:_\d+_\d+|1|2010|2014)?_(.+)$"),
    re.compile(r"^macosx_\d+_\d+_(.+)$"),
    re.compile(r"^win_(.+)$"),
)
_FORMAT_NAMES = {"elf": "ELF", "macho": "Mach-O", "pe": "PE"}


def tag_architecture(platform: str) -> str | None:
    """The architecture a platform tag names, as the binaries' facts spell it."""
    if platform == "win32":
        return "x86"
    for pattern in _PLATFORM_ARCH:
        match = pattern.match(platform)
        if match:
            return match.group(1)
    return None


def check_architecture(platforms: Sequence[str], binaries: Sequence[WheelBinary]) -> None:
    """The binaries are built for the system and architecture the wheel's platform tag names."""
    if not binaries:
        return
    system = binaries_system(binaries)
    for platform in platforms:
        tagged = system_of_tag(platform)
        if tagged is not None and tagged is not system:
            kind = _FORMAT_NAMES[binaries[0].facts.format]
            raise TvmFfiWheelError(
                f"the wheel is tagged {platform}, a {tagged.name} platform, but its binaries are {kind} "
                f"files for {system.name} (e.g. {binaries[0].path})",
                f"tag the wheel for {system.name}: build it there (or cross-compile for it), then run "
                "`tvmffi-wheel repair` on the wheel as built",
            )
    arch = wheel_architecture(binaries)
    for platform in platforms:
        wanted = tag_architecture(platform)
        if wanted is not None and wanted != arch:
            raise TvmFfiWheelError(
                f"the wheel is tagged {platform}, but its binaries are built for {arch} "
                f"(e.g. {binaries[0].path})",
                f"rebuild the wheel: its tag must name the architecture its binaries are built for, {arch} "
                "(a wheel renamed after it was built is not repaired)",
            )


def check_built_for(arch: str, binaries: Sequence[WheelBinary]) -> None:
    """Every binary is built for ``arch``, the architecture the build targeted."""
    for binary in binaries:
        built_for = binary.facts.architecture
        if built_for != arch:
            raise TvmFfiWheelError(
                f"the build targeted {arch}, but {binary.path} is built for {built_for}",
                "let CMake's compilers build every binary (a compiler or prebuilt library named in "
                "CMakeLists.txt escapes the toolchain tvmffi-wheel sets)",
            )


def policy_named(name: str, arch: str) -> PlatformPolicy:
    """The policy the `plat` option names, with or without the architecture suffix."""
    policies = manylinux_policies(arch)
    wanted = name if name.endswith(f"_{arch}") else f"{name}_{arch}"
    for policy in policies:
        if wanted == policy.name or wanted in policy.aliases:
            return policy
    known = ", ".join(p.name for p in policies)
    raise TvmFfiWheelError(
        f"`plat` is {name!r}, which is not a manylinux platform for {arch}",
        f"use one of: {known}",
    )


def best_fitting_policy(binaries: Sequence[WheelBinary], classifier: Classifier) -> PlatformPolicy | None:
    """The best platform the wheel fits as it is, with nothing vendored; None if none."""
    if not binaries:
        return None
    for policy in manylinux_policies(wheel_architecture(binaries)):
        judged = classifier.with_whitelist(policy.whitelist)
        outside = [
            soname
            for binary in binaries
            for soname, kind in judged.needs(binary.facts)
            if kind is Kind.NOT_PROVIDED
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
