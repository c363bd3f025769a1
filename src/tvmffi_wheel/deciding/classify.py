"""How each library a binary needs is satisfied once the wheel is installed.

One `Classifier` per wheel answers that for the plan, the verification and `check`, so
the three cannot disagree.
"""

from __future__ import annotations

import dataclasses
import enum
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence

from tvmffi_wheel.deciding.nvidia import nvidia_library
from tvmffi_wheel.deciding.platforms import LINUX, PLATFORMS, Platform, wheel_platform
from tvmffi_wheel.deciding.runpath import install_path
from tvmffi_wheel.inspecting.facts import BinaryFacts


class Kind(enum.Enum):
    """What satisfies a needed library once the wheel is installed (values are stable ids)."""

    TVM_FFI = "tvm-ffi"  # the apache-tvm-ffi wheel's tvm_ffi/lib
    CUDA_DRIVER = "cuda-driver"  # the system's NVIDIA driver
    NVIDIA_WHEEL = "nvidia-wheel"  # one of NVIDIA's wheels (libcudart, libcublas, ...)
    EXCLUDED = "excluded"  # the `exclude` option: the user's system provides it
    LOADER = "loader"  # the dynamic loader
    PYTHON = "python"  # libpython: the interpreter that loads the module
    IN_WHEEL = "in-wheel"  # another binary of the package
    VENDORED = "vendored"  # a copy in <name>.libs/, put there by a repair
    SYSTEM = "system"  # the platform's own libraries (a manylinux policy's, macOS's, Windows's)
    NOT_PROVIDED = "not-provided"  # none of the above: a repair vendors it; in a finished wheel, a fault


def is_tvm_ffi_library(file_name: str) -> bool:
    """libtvm_ffi under any system's name for it."""
    return any(platform.matches(file_name, platform.tvm_ffi) for platform in PLATFORMS)


def is_never_vendored(file_name: str) -> bool:
    """Libraries that must never be inside a wheel, whatever put them there."""
    base = re.sub(r"-[0-9a-f]{8}(?=\.so)", "", file_name)  # auditwheel's hashed copies too
    return (
        any(platform.matches(file_name, platform.tvm_ffi + platform.cuda_driver) for platform in PLATFORMS)
        or nvidia_library(base) is not None
    )


def libs_folder(distribution: str) -> str:
    """Where a repair puts vendored libraries: `<distribution>.libs`, as auditwheel does."""
    return f"{distribution}.libs"


@dataclasses.dataclass(frozen=True)
class Classifier:
    """Classifies the needed libraries of one wheel's binaries.

    ``provided`` maps the install names and file names of the wheel's binaries (as
    ``system`` compares names) to the member that provides them; ``whitelist`` is the
    manylinux policy's (empty: none; other systems list what they provide in `System`).
    """

    excludes: tuple[str, ...]
    provided: Mapping[str, str]
    libs_dir: str
    whitelist: frozenset[str] = frozenset()
    system: Platform = LINUX

    @classmethod
    def for_wheel(
        cls,
        binaries: Iterable[tuple[str, BinaryFacts]],
        *,
        distribution: str,
        excludes: Sequence[str],
        whitelist: frozenset[str] = frozenset(),
    ) -> Classifier:
        listed = list(binaries)
        system = wheel_platform((member, facts.format) for member, facts in listed)
        provided: dict[str, str] = {}
        for member, facts in listed:
            for name in filter(None, (facts.install_name, posixpath.basename(member))):
                provided.setdefault(system.key_of(name), member)
        return cls(tuple(excludes), provided, libs_folder(distribution), whitelist, system)

    def with_whitelist(self, whitelist: frozenset[str]) -> Classifier:
        """The same wheel judged against another platform's libraries."""
        return dataclasses.replace(self, whitelist=whitelist)

    def kind(self, soname: str) -> Kind:
        system, file_name = self.system, self.system.file_name(soname)
        if system.matches(file_name, system.tvm_ffi):
            return Kind.TVM_FFI
        if system.matches(file_name, system.cuda_driver):
            return Kind.CUDA_DRIVER
        if system.nvidia_library(soname) is not None:
            return Kind.NVIDIA_WHEEL
        if system.matches(soname, system.loader):
            return Kind.LOADER
        if system.matches(soname, system.python):
            return Kind.PYTHON
        if system.matches(soname, self.excludes) or system.matches(file_name, self.excludes):
            return Kind.EXCLUDED
        if system.key_of(soname) in self.provided:
            return Kind.VENDORED if self.provider_folder(soname) == self.libs_dir else Kind.IN_WHEEL
        if soname in self.whitelist or system.matches(soname, system.provided):
            return Kind.SYSTEM
        return Kind.NOT_PROVIDED

    def needs(self, facts: BinaryFacts) -> list[tuple[str, Kind]]:
        """Each library a binary needs, with what satisfies it, in the binary's order."""
        return [(soname, self.kind(soname)) for soname in facts.needed]

    def _needed_of(self, facts: BinaryFacts, kind: Kind) -> list[str]:
        return [soname for soname, found in self.needs(facts) if found is kind]

    def unprovided(self, facts: BinaryFacts) -> list[str]:
        """What the binary needs that nothing provides: a repair vendors it."""
        return self._needed_of(facts, Kind.NOT_PROVIDED)

    def needs_tvm_ffi(self, facts: BinaryFacts) -> list[str]:
        return self._needed_of(facts, Kind.TVM_FFI)

    def needs_vendored(self, facts: BinaryFacts) -> list[str]:
        return self._needed_of(facts, Kind.VENDORED)

    def provider_folder(self, soname: str) -> str:
        """The folder (site-packages relative) of the wheel's member providing ``soname``."""
        location = install_path(self.provided[self.system.key_of(soname)])
        folder = posixpath.dirname(location) if location is not None else ""
        return folder or "."
