"""What every platform a wheel can target answers, in one object per platform.

The decisions (classify, plan, verify, check) ask a `Platform` and never test which platform
or binary format they have: the names tvm-ffi and NVIDIA's libraries go by, what the system
provides, where the loader looks for a library, how a run path names the binary's folder,
how a vendored copy is named, which tag the binaries deserve, what a binary or a package must
have to load, and which patcher changes the platform's binaries. linux.py, macos.py and
windows.py hold the three; a new platform is one more module beside them.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import posixpath
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tvmffi_wheel.common._auditwheel import PlatformPolicy
from tvmffi_wheel.deciding.nvidia import NvidiaLibrary
from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting.facts import BinaryFacts, BinaryFormat
from tvmffi_wheel.inspecting.wheel import WheelBinary

if TYPE_CHECKING:  # classify.py asks its platform, and a platform judges through a classifier
    from tvmffi_wheel.deciding.classify import Classifier


@dataclasses.dataclass(frozen=True)
class LibrarySearch:
    """Where the platform's loader looks for a library after the binary's own run paths, as
    the inspecting stage's library finder reads it off this machine."""

    variables: tuple[str, ...]  # environment variables holding folders, in order
    loader_paths: bool  # also $LD_LIBRARY_PATH and ld.so.conf, as glibc's loader reads them
    searched: str  # for messages: everything searched, in words


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
# Collects what a classifier leaves unprovided, found on this machine (plan.py's).
Vendor = Callable[["Classifier"], dict[str, VendoredLibrary]]


@dataclasses.dataclass(frozen=True)
class TagChoice:
    """The wheel's platform tags, the policy they promise (Linux's manylinux), what must be
    vendored for them, and what sets them or rules out the next older one."""

    tags: tuple[str, ...]
    policy: PlatformPolicy | None
    vendored: dict[str, VendoredLibrary]
    reason: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class TagJudgement:
    """`check`'s view of a finished wheel's tag: the policy the carried tag promises, the
    platform the binaries deserve, the classifier to judge the binaries with, and problems."""

    policy: PlatformPolicy | None
    deserved: str
    classifier: Classifier
    problems: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Platform:
    """The rules of one operating system (patterns are shell patterns, fnmatch's)."""

    name: str  # as people say it: "Linux", "macOS", "Windows"
    format: BinaryFormat  # its binaries' format
    key: str  # in the ABI table and in tags' prefixes: "linux", "macos", "windows"
    tvm_ffi: tuple[str, ...]  # libtvm_ffi, matched against the needed name's file name
    cuda_driver: tuple[str, ...]  # the driver and, on Windows, CUDA's DLLs: never vendored
    loader: tuple[str, ...]
    python: tuple[str, ...]  # the interpreter's library
    provided: tuple[str, ...]  # what the system provides, matched against the whole name
    origin: str | None  # how a run path names the binary's own folder (None: no run paths)
    fold_case: bool  # library names are case-insensitive (Windows)
    architectures: tuple[str, ...]  # those a wheel can be tagged for, as tags spell them
    search: LibrarySearch
    patcher: str  # the writing stage's patcher for its binaries: "patchelf", "install_name_tool", "pe"
    libc: str | None = None  # the C library whose exports a kernel library must not export again
    drops_libpython: bool = False  # a NEEDED libpython is removed (the interpreter provides it)
    renames_vendored_id: bool = True  # a vendored copy's own name (SONAME, install name) is changed

    # ---------------------------------------------------------------- names

    def matches(self, name: str, patterns: Iterable[str]) -> bool:
        text = name.lower() if self.fold_case else name
        return any(fnmatch.fnmatchcase(text, pattern) for pattern in patterns)

    def file_name(self, needed: str) -> str:
        return posixpath.basename(needed.replace("\\", "/"))

    def key_of(self, name: str) -> str:
        """The name as this system compares library names."""
        return name.lower() if self.fold_case else name

    def nvidia_library(self, soname: str) -> NvidiaLibrary | None:
        """The library of NVIDIA's wheels ``soname`` is (nvidia.py); None where they provide none."""
        return None

    def vendored_names(self, soname: str, digest: str) -> tuple[str, str]:
        """(the copy's file name, the name binaries ask for it by): `libgomp.so.1` ->
        `libgomp-<8 hex>.so.1`, as auditwheel names them; `greeting.dll` -> `greeting-<8 hex>.dll`."""
        name = posixpath.basename(soname)
        for suffix in (".so", ".dylib", ".dll", ".DLL"):
            if suffix in name:
                stem, dot, rest = name.partition(suffix)
                file_name = f"{stem}-{digest[:8]}{dot}{rest}"
                return file_name, file_name
        return f"{name}-{digest[:8]}", f"{name}-{digest[:8]}"

    # ---------------------------------------------------------------- finding libraries

    def places(self, name: str, origin: str | None, run_paths: Sequence[str], search_dirs: Sequence[str]) -> list[str]:
        """Where the loader looks for ``name``, in order: the requester's run paths (``origin``:
        the folder `$ORIGIN` names for it, None to skip such entries), then ``search_dirs``."""
        places = [posixpath.join(folder, name) for entry in run_paths
                  if (folder := self.resolved(entry, origin)) is not None]
        return places + [posixpath.join(folder, self.file_name(name)) for folder in search_dirs]

    @staticmethod
    def resolved(entry: str, origin: str | None) -> str | None:
        """A run path entry or install name as a path (None: it names the binary's folder and
        ``origin`` is None, or another place a loader fills in, such as `@executable_path`)."""
        for token in _ORIGIN_TOKENS:
            if entry.startswith(token):
                return None if origin is None else origin + entry[len(token):]
        return None if entry.startswith("@") else entry

    def abi_table_key(self, arch: str) -> str:
        """This platform's entry in the table of releases (common/tvm_ffi_releases.py)."""
        return f"{self.key}-{arch}"

    # ---------------------------------------------------------------- tags

    def check_architecture(self, member: str, arch: str) -> None:
        """``member``'s architecture can be tagged on this platform."""
        if arch not in self.architectures:
            raise TvmFfiWheelError(
                f"{member} is built for {arch}, which no {self.name} wheel tag names",
                f"build it for one of: {', '.join(self.architectures)}",
            )

    def choose_tags(
        self, binaries: Sequence[WheelBinary], classifier: Classifier, arch: str, plat: str, vendor: Vendor,
        deployment_target: str | None,
    ) -> TagChoice:
        """The best tags the binaries allow once what nothing provides is vendored (``vendor``)."""
        raise NotImplementedError

    def cross_tags(self, binaries: Sequence[WheelBinary], arch: str) -> tuple[str, ...]:
        """The tag a cross build's wheel starts with: scikit-build-core tagged it for the host."""
        raise NotImplementedError

    def describe_tag(self, choice: TagChoice) -> str:
        line = f"platform tag {'.'.join(choice.tags)}"
        return line + (f" (an older one is ruled out by {choice.reason[0]})" if choice.reason else "")

    def judge_tag(self, carried: str, binaries: Sequence[WheelBinary], classifier: Classifier,
                  arch: str) -> TagJudgement:
        """`check`: the carried tag against what the binaries deserve."""
        raise NotImplementedError

    # ---------------------------------------------------------------- what loads

    def binary_problems(self, member: str, facts: BinaryFacts) -> list[str]:
        """What makes a binary unsound whatever its wheel (macOS: its code signature)."""
        return []

    def policy_problems(self, policy: PlatformPolicy | None, binaries: Sequence[WheelBinary]) -> list[str]:
        """What in the binaries the policy the wheel is tagged for does not provide."""
        return []

    def judges_missing_libraries(self, policy: PlatformPolicy | None) -> bool:
        """Whether a library nothing provides is a problem for a wheel tagged with ``policy``."""
        return True

    def dll_folders(self, binaries: Sequence[WheelBinary], classifier: Classifier, vendoring: bool) -> tuple[str, ...]:
        """Folders (site-packages relative) a package adds when imported so its libraries load."""
        return ()

    def packages_to_patch(self, binaries: Sequence[WheelBinary], libs_dir: str) -> tuple[str, ...]:
        """The packages whose `__init__.py` adds the DLL folders."""
        return ()

    def load_problems(self, binaries: Sequence[WheelBinary], classifier: Classifier,
                      dll_folder_packages: Collection[str]) -> list[str]:
        """What a finished wheel's packages lack for their libraries to load (Windows's folders)."""
        return []

    def import_libraries(self, members: Sequence[str], binaries: Sequence[WheelBinary]) -> list[str]:
        """Members that serve only to link against the wheel's own libraries (Windows)."""
        return []
