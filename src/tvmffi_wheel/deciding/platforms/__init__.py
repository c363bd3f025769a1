"""The platforms a wheel can target, one object each (base.py says what they answer), and
which one a wheel's binaries or tag name."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from tvmffi_wheel.deciding.platforms.base import Platform
from tvmffi_wheel.deciding.platforms.linux import LINUX
from tvmffi_wheel.deciding.platforms.macos import MACOS
from tvmffi_wheel.deciding.platforms.windows import WINDOWS
from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting.facts import BinaryFacts, BinaryFormat
from tvmffi_wheel.inspecting.wheel import WheelBinary

PLATFORMS: tuple[Platform, ...] = (LINUX, MACOS, WINDOWS)
_BY_FORMAT: dict[BinaryFormat, Platform] = {platform.format: platform for platform in PLATFORMS}
_TAG_PLATFORM = (
    (re.compile(r"^(?:many|musl)?linux"), LINUX),
    (re.compile(r"^macosx_"), MACOS),
    (re.compile(r"^win"), WINDOWS),
)
_PLATFORM_ARCH = (
    re.compile(r"^(?:many|musl)?linux(?:_\d+_\d+|1|2010|2014)?_(.+)$"),
    re.compile(r"^macosx_\d+_\d+_(.+)$"),
    re.compile(r"^win_(.+)$"),
)
_FORMAT_NAMES: dict[BinaryFormat, str] = {"elf": "ELF", "macho": "Mach-O", "pe": "PE"}


def platform_of(facts: BinaryFacts) -> Platform:
    """The platform a binary is built for."""
    return _BY_FORMAT[facts.format]


def wheel_platform(formats: Iterable[tuple[str, BinaryFormat]]) -> Platform:
    """The one platform the binaries ((member, format) pairs) are built for (Linux when none)."""
    found: dict[BinaryFormat, str] = {}
    for member, file_format in formats:
        found.setdefault(file_format, member)
    if len(found) > 1:
        shown = ", ".join(f"{member} is for {_BY_FORMAT[f].name}" for f, member in found.items())
        raise TvmFfiWheelError(
            f"the wheel mixes binaries for several operating systems: {shown}",
            "build one wheel per platform; a wheel has one platform tag",
        )
    return _BY_FORMAT[next(iter(found))] if found else LINUX


def binaries_platform(binaries: Sequence[WheelBinary]) -> Platform:
    return wheel_platform((b.path, b.facts.format) for b in binaries)


def platform_of_tag(tag: str) -> Platform | None:
    """The platform a platform tag names (None: `any` or one tvmffi-wheel does not know)."""
    return next((platform for pattern, platform in _TAG_PLATFORM if pattern.match(tag)), None)


def tag_architecture(tag: str) -> str | None:
    """The architecture a platform tag names, as the binaries' facts spell it."""
    if tag == "win32":
        return "x86"
    for pattern in _PLATFORM_ARCH:
        match = pattern.match(tag)
        if match:
            return match.group(1)
    return None


def wheel_architecture(binaries: Sequence[WheelBinary]) -> str:
    platform = binaries_platform(binaries)
    arches: dict[str, str] = {}
    for binary in binaries:
        platform.check_architecture(binary.path, binary.facts.architecture)
        arches.setdefault(binary.facts.architecture, binary.path)
    if len(arches) > 1:
        shown = ", ".join(f"{path} is {arch}" for arch, path in arches.items())
        raise TvmFfiWheelError(
            f"the wheel mixes architectures: {shown}",
            "build every binary for one architecture; a wheel has one platform tag",
        )
    return next(iter(arches))


def check_architecture(tags: Sequence[str], binaries: Sequence[WheelBinary]) -> None:
    """The binaries are built for the platform and architecture the wheel's platform tags name."""
    if not binaries:
        return
    platform = binaries_platform(binaries)
    for tag in tags:
        tagged = platform_of_tag(tag)
        if tagged is not None and tagged is not platform:
            kind = _FORMAT_NAMES[binaries[0].facts.format]
            raise TvmFfiWheelError(
                f"the wheel is tagged {tag}, a {tagged.name} platform, but its binaries are {kind} "
                f"files for {platform.name} (e.g. {binaries[0].path})",
                f"tag the wheel for {platform.name}: build it there (or cross-compile for it), then run "
                "`tvmffi-wheel repair` on the wheel as built",
            )
    arch = wheel_architecture(binaries)
    for tag in tags:
        wanted = tag_architecture(tag)
        if wanted is not None and wanted != arch:
            raise TvmFfiWheelError(
                f"the wheel is tagged {tag}, but its binaries are built for {arch} (e.g. {binaries[0].path})",
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
