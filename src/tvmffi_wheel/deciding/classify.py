"""How each library a binary needs is satisfied once the wheel is installed.

One `Classifier` per wheel answers that for the plan, the verification and `check`, so
the three cannot disagree.
"""

from __future__ import annotations

import dataclasses
import enum
import fnmatch
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence

from tvmffi_wheel.deciding.nvidia import nvidia_library
from tvmffi_wheel.deciding.runpath import install_path
from tvmffi_wheel.inspecting.facts import BinaryFacts

# Where the apache-tvm-ffi wheel installs libtvm_ffi.so, relative to site-packages.
TVM_FFI_LIB_DIR = "tvm_ffi/lib"

TVM_FFI_PATTERNS = ("libtvm_ffi.so*", "libtvm_ffi-*.so*")
CUDA_DRIVER_PATTERNS = ("libcuda.so*", "libnvidia-*")
LOADER_PATTERNS = ("ld-linux*.so*", "ld64.so*")
PYTHON_LIBRARY_PATTERNS = ("libpython*",)


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
    SYSTEM = "system"  # the manylinux platform's libraries
    NOT_PROVIDED = "not-provided"  # none of the above: a repair vendors it; in a finished wheel, a fault


def matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def is_tvm_ffi_library(file_name: str) -> bool:
    return matches(file_name, TVM_FFI_PATTERNS)


def is_never_vendored(file_name: str) -> bool:
    """Libraries that must never be inside a wheel, whatever put them there."""
    base = re.sub(r"-[0-9a-f]{8}(?=\.so)", "", file_name)  # auditwheel's hashed copies too
    return matches(file_name, TVM_FFI_PATTERNS + CUDA_DRIVER_PATTERNS) or nvidia_library(base) is not None


def libs_folder(distribution: str) -> str:
    """Where a repair puts vendored libraries: `<distribution>.libs`, as auditwheel does."""
    return f"{distribution}.libs"


@dataclasses.dataclass(frozen=True)
class Classifier:
    """Classifies the needed libraries of one wheel's binaries.

    ``provided`` maps the install names and file names of the wheel's binaries to the member
    that provides them; ``whitelist`` is the platform policy's (empty: none).
    """

    excludes: tuple[str, ...]
    provided: Mapping[str, str]
    libs_dir: str
    whitelist: frozenset[str] = frozenset()

    @classmethod
    def for_wheel(
        cls,
        binaries: Iterable[tuple[str, BinaryFacts]],
        *,
        distribution: str,
        excludes: Sequence[str],
        whitelist: frozenset[str] = frozenset(),
    ) -> Classifier:
        provided: dict[str, str] = {}
        for member, facts in binaries:
            for name in filter(None, (facts.install_name, posixpath.basename(member))):
                provided.setdefault(name, member)
        return cls(tuple(excludes), provided, libs_folder(distribution), whitelist)

    def with_whitelist(self, whitelist: frozenset[str]) -> Classifier:
        """The same wheel judged against another platform's libraries."""
        return dataclasses.replace(self, whitelist=whitelist)

    def kind(self, soname: str) -> Kind:
        if matches(soname, TVM_FFI_PATTERNS):
            return Kind.TVM_FFI
        if matches(soname, CUDA_DRIVER_PATTERNS):
            return Kind.CUDA_DRIVER
        if nvidia_library(soname) is not None:
            return Kind.NVIDIA_WHEEL
        if matches(soname, LOADER_PATTERNS):
            return Kind.LOADER
        if matches(soname, PYTHON_LIBRARY_PATTERNS):
            return Kind.PYTHON
        if matches(soname, self.excludes):
            return Kind.EXCLUDED
        if soname in self.provided:
            return Kind.VENDORED if self.provider_folder(soname) == self.libs_dir else Kind.IN_WHEEL
        if soname in self.whitelist:
            return Kind.SYSTEM
        return Kind.NOT_PROVIDED

    def needs(self, facts: BinaryFacts) -> list[tuple[str, Kind]]:
        """Each library a binary needs, with what satisfies it, in the binary's order."""
        return [(soname, self.kind(soname)) for soname in facts.needed]

    def provider_folder(self, soname: str) -> str:
        """The folder (site-packages relative) of the wheel's member providing ``soname``."""
        location = install_path(self.provided[soname])
        folder = posixpath.dirname(location) if location is not None else ""
        return folder or "."
