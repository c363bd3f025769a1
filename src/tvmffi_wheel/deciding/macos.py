"""macOS's platform tag, and the rules a macOS binary must follow that no other system has.

The tag is `macosx_<major>_<minor>_<arch>` from the highest minimum macOS (LC_BUILD_VERSION)
over the binaries; MACOSX_DEPLOYMENT_TARGET may raise it, never lower it. From macOS 11 on,
pip only knows `<major>_0` tags, so 11.3 rounds up to 12_0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tvmffi_wheel.deciding.systems import MACOS
from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting.facts import BinaryFacts
from tvmffi_wheel.inspecting.wheel import WheelBinary

# arm64 Macs start at macOS 11; apache-tvm-ffi's own wheels are macosx_11_0_arm64.
OLDEST_BY_ARCH = {"arm64": (11, 0), "x86_64": (10, 9)}
_VERSION = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.\d+)?$")


def parse_macos_version(text: str, source: str) -> tuple[int, int]:
    match = _VERSION.match(text.strip())
    if match is None:
        raise TvmFfiWheelError(
            f"{source} is {text!r}, which is not a macOS version",
            "write it as MAJOR.MINOR, e.g. 11.0",
        )
    return int(match.group(1)), int(match.group(2) or 0)


def tag_version(version: tuple[int, int]) -> tuple[int, int]:
    """The tag's version for a minimum macOS: from 11 on, only X_0 tags exist, so round up."""
    major, minor = version
    if major >= 11 and minor:
        return major + 1, 0
    return major, minor


_TAG = re.compile(r"^macosx_(\d+)_(\d+)_")


def tag_version_of(platform: str) -> tuple[int, int] | None:
    """The macOS release a `macosx_*` tag names (None for another tag)."""
    match = _TAG.match(platform)
    return (int(match.group(1)), int(match.group(2))) if match else None


def macos_platform_tag(
    binaries: Sequence[WheelBinary], arch: str, deployment_target: str | None
) -> tuple[str, str]:
    """(tag, the binary that sets it) for the binaries' highest minimum macOS."""
    floor, setter = OLDEST_BY_ARCH.get(arch, (11, 0)), "the oldest macOS for " + arch
    for binary in binaries:
        if binary.facts.minimum_os:
            version = parse_macos_version(binary.facts.minimum_os, f"the minimum macOS of {binary.path}")
            if version > floor:
                floor, setter = version, f"{binary.path} (minimum macOS {binary.facts.minimum_os})"
    if deployment_target:
        wanted = parse_macos_version(deployment_target, "MACOSX_DEPLOYMENT_TARGET")
        if wanted < floor:
            raise TvmFfiWheelError(
                f"MACOSX_DEPLOYMENT_TARGET is {deployment_target}, but {setter} needs macOS "
                f"{floor[0]}.{floor[1]}",
                f"set MACOSX_DEPLOYMENT_TARGET to {floor[0]}.{floor[1]} or later, or unset it",
            )
        floor, setter = wanted, "MACOSX_DEPLOYMENT_TARGET"
    major, minor = tag_version(floor)
    return f"macosx_{major}_{minor}_{arch}", setter


def macos_problems(member: str, facts: BinaryFacts) -> list[str]:
    """What makes a macOS binary unsound whatever its wheel: a missing or broken signature
    on arm64 (the kernel kills the process), libtvm_ffi linked by a path of the build machine."""
    problems = []
    signature = facts.code_signature
    if facts.architecture == "arm64" and signature is None:
        problems.append(f"{member}: has no code signature; macOS on arm64 refuses to load it")
    elif signature is not None and signature.problem:
        problems.append(f"{member}: its code signature is broken ({signature.problem}); macOS kills "
                        "the process that loads it")
    for name in facts.needed:
        file_name = MACOS.file_name(name)
        if MACOS.matches(file_name, MACOS.tvm_ffi) and not name.startswith("@rpath/"):
            problems.append(
                f"{member}: links libtvm_ffi by the path {name}, which exists only where it was built "
                "(link against tvm_ffi::shared from apache-tvm-ffi's CMake package, whose install name "
                "is @rpath/libtvm_ffi.dylib)"
            )
    return problems
