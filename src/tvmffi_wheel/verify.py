"""Verify: the checks a wheel must pass before it is written (and that `check` reports).

They are phrased on the final facts, independent of how the repair got there, so a bug
in the repair shows up here instead of at a user's import.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from tvmffi_wheel._auditwheel import PlatformPolicy
from tvmffi_wheel.cuda import cuda_major_of, library_folder, nvidia_library
from tvmffi_wheel.elf import ElfFacts
from tvmffi_wheel.policy import (
    TVM_FFI_LIB_DIR,
    Kind,
    classify,
    install_path,
    is_never_vendored,
    is_tvm_ffi_library,
    origin_target,
    policy_violations,
)


def verify_wheel(
    binaries: Sequence[tuple[str, ElfFacts]],
    members: Sequence[str],
    *,
    policy: PlatformPolicy | None,
    python_tag: tuple[str, str],
    excludes: Sequence[str],
    repaired: bool,
) -> list[str]:
    """Problems with the wheel, one line each; empty when it is sound.

    ``policy`` is the platform the wheel is tagged for (None for a `linux_*` wheel, which
    promises nothing about the system it runs on). ``repaired``: the run paths must be
    relative and reach tvm_ffi/lib (false only for `repair=skip`).
    """
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

    provided = set()
    for member, facts in binaries:
        provided.add(posixpath.basename(member))
        if facts.soname:
            provided.add(facts.soname)

    for member, facts in binaries:
        location = install_path(member) or ""
        if repaired:
            for entry in facts.run_paths:
                if origin_target(entry, location) is None:
                    problems.append(f"{member}: run path entry {entry!r} is not relative to $ORIGIN")
        for soname in facts.needed:
            kind = classify(
                soname,
                excludes=excludes,
                in_wheel=frozenset(provided),
                whitelist=policy.whitelist if policy is not None else frozenset(),
            )
            if kind is Kind.TVM_FFI and repaired:
                targets = {origin_target(e, location) for e in facts.run_paths}
                if TVM_FFI_LIB_DIR not in targets:
                    problems.append(
                        f"{member}: needs {soname} but has no run path to {TVM_FFI_LIB_DIR}, "
                        "so it only loads after `import tvm_ffi`"
                    )
            elif kind is Kind.CUDA_LIBRARY and repaired:
                library = nvidia_library(soname)
                major = cuda_major_of(soname)
                folder = library_folder(library, major) if library and major else None
                targets = {origin_target(e, location) for e in facts.run_paths}
                if folder is not None and folder not in targets:
                    problems.append(f"{member}: needs {soname} but has no run path to {folder}")
            elif kind is Kind.VENDORED and policy is not None:
                problems.append(f"{member}: needs {soname}, which {policy.name} does not "
                                "provide and the wheel does not contain")
        if python_tag[1] == "none" and facts.python_c_api:
            problems.append(f"{member}: uses the Python C API ({facts.python_c_api[0]}) in a "
                            f"{python_tag[0]}-none wheel")
    if policy is not None:
        problems += [str(v) for v in policy_violations(policy, binaries)]
    return problems


# Mangled-name prefixes of the C++ standard library and of the C++ runtime's helpers: a
# kernel library that exports these can have them bound by other libraries in the process.
_STL_PREFIXES = ("_ZNSt", "_ZNKSt", "_ZSt", "_ZTISt", "_ZTSSt", "_ZTVSt", "_ZN9__gnu_cxx",
                 "_ZNK9__gnu_cxx", "_ZN10__cxxabiv1", "_ZTIN10__cxxabiv1")
_RUNTIME_NAMES = ("__cxa_", "__gxx_personality", "__gcc_personality", "_Unwind_", "__dynamic_cast")


def leaked_exports(facts: ElfFacts, libc_exports: frozenset[str]) -> list[str]:
    """Exported symbols that belong to the C++ standard library, its runtime, or glibc."""
    return sorted(
        name
        for name in facts.exported
        if name.startswith(_STL_PREFIXES)
        or name.startswith(_RUNTIME_NAMES)
        or name in libc_exports
    )
