"""macOS: Mach-O binaries, install names and LC_RPATHs from `@loader_path`, and the rules no
other system has (a code signature that must hold).

The tag is `macosx_<major>_<minor>_<arch>` from the highest minimum macOS (LC_BUILD_VERSION)
over the binaries; MACOSX_DEPLOYMENT_TARGET may raise it, never lower it. From macOS 11 on,
pip only knows `<major>_0` tags, so 11.3 rounds up to 12_0.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tvmffi_wheel.deciding.platforms.base import LibrarySearch, Platform, TagChoice, TagJudgement, Vendor
from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting.facts import BinaryFacts
from tvmffi_wheel.inspecting.wheel import WheelBinary

if TYPE_CHECKING:
    from tvmffi_wheel.deciding.classify import Classifier

# arm64 Macs start at macOS 11; apache-tvm-ffi's own wheels are macosx_11_0_arm64.
OLDEST_BY_ARCH = {"arm64": (11, 0), "x86_64": (10, 9)}
_VERSION = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.\d+)?$")
_TAG = re.compile(r"^macosx_(\d+)_(\d+)_")


def parse_macos_version(text: str, source: str) -> tuple[int, int]:
    match = _VERSION.match(text.strip())
    if match is None:
        raise TvmFfiWheelError(f"{source} is {text!r}, which is not a macOS version",
                               "write it as MAJOR.MINOR, e.g. 11.0")
    return int(match.group(1)), int(match.group(2) or 0)


def tag_version(version: tuple[int, int]) -> tuple[int, int]:
    """The tag's version for a minimum macOS: from 11 on, only X_0 tags exist, so round up."""
    major, minor = version
    if major >= 11 and minor:
        return major + 1, 0
    return major, minor


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
                f"MACOSX_DEPLOYMENT_TARGET is {deployment_target}, but {setter} needs macOS {floor[0]}.{floor[1]}",
                f"set MACOSX_DEPLOYMENT_TARGET to {floor[0]}.{floor[1]} or later, or unset it",
            )
        floor, setter = wanted, "MACOSX_DEPLOYMENT_TARGET"
    major, minor = tag_version(floor)
    return f"macosx_{major}_{minor}_{arch}", setter


def refuse_plat(platform: Platform, plat: str) -> None:
    """`plat` names a manylinux tag; a macOS or Windows tag comes from the binaries."""
    if plat:
        raise TvmFfiWheelError(
            f"`plat` is {plat!r}, but the wheel's binaries are for {platform.name}, where tvmffi-wheel "
            "derives the tag from the binaries",
            "leave `plat` out (on macOS, MACOSX_DEPLOYMENT_TARGET raises the minimum macOS)",
        )


@dataclasses.dataclass(frozen=True)
class MacosPlatform(Platform):
    def vendored_names(self, soname: str, digest: str) -> tuple[str, str]:
        file_name, _ = super().vendored_names(soname, digest)
        return file_name, f"@rpath/{file_name}"

    def places(self, name: str, origin: str | None, run_paths: Sequence[str], search_dirs: Sequence[str]) -> list[str]:
        """`@rpath/x` in each LC_RPATH, an absolute or `@loader_path` install name where it says,
        then ``search_dirs``."""
        places = []
        if name.startswith("@rpath/"):
            rest = name[len("@rpath/"):]
            places += [posixpath.join(folder, rest) for entry in run_paths
                       if (folder := self.resolved(entry, origin)) is not None]
        elif (direct := self.resolved(name, origin)) is not None:
            places.append(direct)
        return places + [posixpath.join(folder, self.file_name(name)) for folder in search_dirs]

    def choose_tags(
        self, binaries: Sequence[WheelBinary], classifier: Classifier, arch: str, plat: str, vendor: Vendor,
        deployment_target: str | None,
    ) -> TagChoice:
        refuse_plat(self, plat)
        vendored = vendor(classifier)
        checked = list(binaries) + [WheelBinary(lib.path, lib.facts) for lib in vendored.values()]
        tag, setter = macos_platform_tag(checked, arch, deployment_target)
        return TagChoice((tag,), None, vendored, (setter,))

    def cross_tags(self, binaries: Sequence[WheelBinary], arch: str) -> tuple[str, ...]:
        return (macos_platform_tag(binaries, arch, None)[0],)

    def describe_tag(self, choice: TagChoice) -> str:
        return f"platform tag {'.'.join(choice.tags)}" + (f" (set by {choice.reason[0]})" if choice.reason else "")

    def judge_tag(self, carried: str, binaries: Sequence[WheelBinary], classifier: Classifier,
                  arch: str) -> TagJudgement:
        """Whether the carried tag promises too little: an older macOS than a binary needs."""
        deserved, setter = macos_platform_tag(binaries, arch, None)
        carried_version = tag_version_of(carried)
        problems: tuple[str, ...] = ()
        if carried_version is not None and carried_version < (tag_version_of(deserved) or carried_version):
            problems = (f"tagged {carried}, but {setter} needs a newer macOS: {deserved}",)
        return TagJudgement(None, deserved, classifier, problems)

    def binary_problems(self, member: str, facts: BinaryFacts) -> list[str]:
        """A missing or broken signature on arm64 (the kernel kills the process), libtvm_ffi
        linked by a path of the build machine."""
        problems = []
        signature = facts.code_signature
        if facts.architecture == "arm64" and signature is None:
            problems.append(f"{member}: has no code signature; macOS on arm64 refuses to load it")
        elif signature is not None and signature.problem:
            problems.append(f"{member}: its code signature is broken ({signature.problem}); macOS kills "
                            "the process that loads it")
        for name in facts.needed:
            if self.matches(self.file_name(name), self.tvm_ffi) and not name.startswith("@rpath/"):
                problems.append(
                    f"{member}: links libtvm_ffi by the path {name}, which exists only where it was built "
                    "(link against tvm_ffi::shared from apache-tvm-ffi's CMake package, whose install name "
                    "is @rpath/libtvm_ffi.dylib)"
                )
        return problems


MACOS = MacosPlatform(
    name="macOS", key="macos", format="macho",
    tvm_ffi=("libtvm_ffi.dylib", "libtvm_ffi-*.dylib"),
    cuda_driver=(),
    loader=("/usr/lib/dyld",),
    python=("*/Python", "*/libpython*.dylib", "libpython*.dylib"),
    provided=("/usr/lib/*", "/System/Library/*", "/System/iOSSupport/*"),
    origin="@loader_path",
    fold_case=False,
    architectures=("arm64", "x86_64"),
    search=LibrarySearch(("DYLD_LIBRARY_PATH", "DYLD_FALLBACK_LIBRARY_PATH"), False,
                         "its run paths and install names, --lib-path and $DYLD_LIBRARY_PATH"),
    patcher="install_name_tool",
)
