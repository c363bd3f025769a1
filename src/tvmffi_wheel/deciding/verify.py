"""Verify: the checks a wheel must pass before it is written (and that `check` reports).

They are phrased on the final facts, independent of how the repair got there, so a bug
in the repair shows up here instead of at a user's import.
"""

from __future__ import annotations

import posixpath
from collections.abc import Collection, Sequence

from tvmffi_wheel.common._auditwheel import PlatformPolicy
from tvmffi_wheel.common.symbols import is_runtime_symbol
from tvmffi_wheel.common.tvm_ffi import TVM_FFI_LIB_DIR
from tvmffi_wheel.deciding.classify import (
    Classifier,
    Kind,
    is_never_vendored,
    is_tvm_ffi_library,
)
from tvmffi_wheel.deciding.nvidia import folder_of
from tvmffi_wheel.deciding.placement import placement_problems
from tvmffi_wheel.deciding.platforms import platform_of
from tvmffi_wheel.deciding.runpath import install_path, origin_target, reached_folders
from tvmffi_wheel.inspecting.facts import BinaryFacts
from tvmffi_wheel.inspecting.wheel import WheelBinary


def _forbidden_members(members: Sequence[str]) -> list[str]:
    problems = []
    for member in members:
        name = posixpath.basename(member)
        if is_tvm_ffi_library(name):
            problems.append(f"{member}: a copy of libtvm_ffi is inside the wheel; two copies "
                            "in one process abort at import (remove the install() rule that "
                            "copies it: the run path finds the apache-tvm-ffi wheel's)")
        elif is_never_vendored(name):
            problems.append(f"{member}: CUDA's driver and libraries must come from the system "
                            "or NVIDIA's wheels, not from this wheel (remove the install() "
                            "rule that copies it)")
    return problems


def _binary_problems(
    binary: WheelBinary, classifier: Classifier, policy: PlatformPolicy | None, repaired: bool
) -> list[str]:
    member, facts = binary.path, binary.facts
    system = classifier.system
    problems = platform_of(facts).binary_problems(member, facts)
    reached = reached_folders(member, facts.run_paths)
    if repaired:
        location = install_path(member) or ""
        for entry in facts.run_paths:
            if origin_target(entry, location) is None:
                problems.append(f"{member}: run path entry {entry!r} is not relative to {system.origin}")
    for soname, kind in classifier.needs(facts):
        if kind is Kind.TVM_FFI and repaired and system.origin is not None and TVM_FFI_LIB_DIR not in reached:
            problems.append(
                f"{member}: needs {soname} but has no run path to {TVM_FFI_LIB_DIR}, "
                "so it only loads after `import tvm_ffi`"
            )
        elif kind is Kind.NVIDIA_WHEEL and repaired:
            folder = folder_of(soname)
            if folder is not None and folder not in reached:
                problems.append(f"{member}: needs {soname} but has no run path to {folder}")
        elif kind is Kind.NOT_PROVIDED and system.judges_missing_libraries(policy):
            platform = policy.name if policy is not None else system.name
            problems.append(f"{member}: needs {soname}, which {platform} does not "
                            "provide and the wheel does not contain")
    return problems


def _library_problems(binaries: Sequence[WheelBinary], members: Sequence[str], libs_dir: str,
                      library_expected: bool, packages: Collection[str], install_dir: str) -> list[str]:
    """A kernel wheel holds a library, and each library is in one of the wheel's own folders."""
    if not binaries and library_expected:
        return ["the wheel holds no compiled library: CMakeLists.txt installs none into it (add "
                "install(TARGETS <target> LIBRARY DESTINATION <package folder>))"]
    return placement_problems(binaries, members, distribution=libs_dir.removesuffix(".libs"), libs_dir=libs_dir,
                              packages=packages, install_dir=install_dir)


def verify_wheel(
    binaries: Sequence[WheelBinary],
    members: Sequence[str],
    *,
    classifier: Classifier,
    policy: PlatformPolicy | None,
    python_tag: tuple[str, str],
    repaired: bool,
    library_expected: bool = True,
    packages: Collection[str] = (),
    install_dir: str = "",
    dll_folder_packages: Collection[str] = (),
) -> list[str]:
    """Problems with the wheel, one line each; empty when it is sound.

    ``classifier`` judges the final binaries against ``policy``, the platform the wheel is
    tagged for (None for a `linux_*` wheel, which promises nothing about the system it runs
    on). ``repaired``: the run paths must be relative and reach tvm_ffi/lib (false only
    for `repair=skip`). ``library_expected``: a wheel without a compiled library is a problem
    (false only for an in-place editable install). ``packages``: package folders besides those
    with an `__init__.py` in the wheel (an editable wheel holds no package sources);
    ``install_dir``: the project's `wheel.install-dir` (placement.py); ``dll_folder_packages``:
    the packages whose `__init__.py` adds the DLL folders (Windows).
    """
    problems = _forbidden_members(members) + _library_problems(
        binaries, members, classifier.libs_dir, library_expected, packages, install_dir
    )
    if repaired:
        problems += classifier.system.load_problems(binaries, classifier, dll_folder_packages)
    for binary in binaries:
        problems += _binary_problems(binary, classifier, policy, repaired)
        if python_tag[1] == "none" and binary.facts.python_c_api:
            problems.append(f"{binary.path}: uses the Python C API ({binary.facts.python_c_api[0]}) "
                            f"in a {python_tag[0]}-none wheel")
    problems += classifier.system.policy_problems(policy, binaries)
    return problems


def leaked_exports(facts: BinaryFacts, libc_exports: frozenset[str]) -> list[str]:
    """Exported symbols that belong to the C++ standard library, its runtime, or glibc: other
    libraries in the process can bind to them (common/symbols.py says which, for every format)."""
    return sorted(name for name in facts.exports if is_runtime_symbol(name) or name in libc_exports)
