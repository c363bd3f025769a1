"""Decide the apache-tvm-ffi requirement, and write it into METADATA.

tvm-ffi versions are 0.X.Y and a change of X breaks the C ABI, so a kernel wheel needs
`>=<version it was built against>,<0.(X+1)`, narrowed further where a known release lacks
a symbol the binaries import (abi.py). Never `==` of our own: two kernel packages that pin
different patch releases could then never be installed together. A project's own exact pin
is its choice: it is kept as written, with a warning.
"""

from __future__ import annotations

from collections.abc import Mapping

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import Specifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from tvmffi_wheel.common.tvm_ffi import TVM_FFI_DISTRIBUTION
from tvmffi_wheel.deciding.abi import AbiRange, next_abi
from tvmffi_wheel.errors import TvmFfiWheelError, info, warn

_LOWER = (">=", ">")
_UPPER = ("<", "<=")


def compatible_range(version: Version, abi: AbiRange | None = None) -> SpecifierSet:
    """`>=version,<upper` and `!=` each release that lacks what the binaries import.

    The upper bound is the next ABI (the next minor for 0.X releases, the next major from
    1.0 on) unless a needed symbol is gone from an earlier release onwards.
    """
    upper = abi.upper if abi is not None and abi.upper is not None else next_abi(version)
    excluded = abi.excluded if abi is not None else ()
    return SpecifierSet(",".join([f">={version}", f"<{upper}", *(f"!={v}" for v in excluded)]))


def _bound(spec: Specifier) -> Version:
    return Version(spec.version)


def _tighter(a: Specifier, b: Specifier, *, lower: bool) -> Specifier:
    """The stricter of two bounds on the same side."""
    va, vb = _bound(a), _bound(b)
    if va != vb:
        return (a if va > vb else b) if lower else (a if va < vb else b)
    strict = ">" if lower else "<"
    return a if a.operator == strict else b


def _exact(spec: Specifier) -> bool:
    return spec.operator == "===" or (spec.operator == "==" and not spec.version.endswith(".*"))


def _refuse_excluding_build(user: Requirement, built_against: Version) -> TvmFfiWheelError:
    return TvmFfiWheelError(
        f"the project requires {TVM_FFI_DISTRIBUTION}{user.specifier}, but the wheel is built "
        f"against {built_against}, so it would require a tvm-ffi it was not built against",
        f"build against a matching {TVM_FFI_DISTRIBUTION} (pin it in [build-system] requires; "
        "`tvmffi-wheel repair --tvm-ffi-version` names it for a wheel built elsewhere), or widen "
        "the project's dependency",
    )


def merge(
    user: Requirement | None, built_against: Version, abi: AbiRange | None = None
) -> tuple[Requirement, list[str], list[str]]:
    """The requirement to publish, with notes for the log and warnings (a bound tightened,
    an exact pin kept)."""
    pin = compatible_range(built_against, abi)
    if user is None:
        return Requirement(f"{TVM_FFI_DISTRIBUTION}{pin}"), [], []
    if any(_exact(s) for s in user.specifier):
        if not user.specifier.contains(built_against, prereleases=True):
            raise _refuse_excluding_build(user, built_against)
        return Requirement(str(user)), [], [
            f"{TVM_FFI_DISTRIBUTION}{user.specifier} is the project's exact pin, kept as written: another "
            "kernel package that pins a different release cannot be installed beside this one"
        ]
    notes, warnings = [], []
    if not any(s.operator in _LOWER + _UPPER for s in user.specifier):
        notes.append(
            f"{TVM_FFI_DISTRIBUTION}: the project gives no version range; requiring {pin} "
            f"(built against {built_against})"
        )
    others = [s for s in user.specifier if s.operator not in _LOWER + _UPPER]
    merged = list(others)
    for side, lower in ((_LOWER, True), (_UPPER, False)):
        ours = next(s for s in pin if s.operator in side)
        theirs = [s for s in user.specifier if s.operator in side]
        best = ours
        for spec in theirs:
            best = _tighter(best, spec, lower=lower)
        if best is ours and theirs and theirs != [ours]:
            given = ",".join(str(s) for s in theirs)
            kind = "lower" if lower else "upper"
            warnings.append(
                f"{TVM_FFI_DISTRIBUTION}: {kind} bound tightened from {given} to {ours} "
                f"(built against {built_against})"
            )
        merged.append(best)
    merged += [s for s in pin if s.operator == "!=" and s not in merged]
    specifier = SpecifierSet(",".join(str(s) for s in merged))
    if not specifier.contains(built_against, prereleases=True):
        raise _refuse_excluding_build(user, built_against)
    result = Requirement(str(user))
    result.specifier = specifier
    return result, notes, warnings


def as_tvm_ffi_requirement(text: str) -> Requirement | None:
    """``text`` as a requirement on apache-tvm-ffi; None if it names another distribution."""
    try:
        requirement = Requirement(text)
    except InvalidRequirement:
        return None
    if canonicalize_name(requirement.name) == TVM_FFI_DISTRIBUTION:
        return requirement
    return None


def metadata_fields(metadata: str) -> dict[str, str]:
    """The single-valued header fields of a METADATA text (the first of each name)."""
    fields: dict[str, str] = {}
    for line in metadata.partition("\n\n")[0].splitlines():
        name, colon, value = line.partition(":")
        if colon and not line[:1].isspace():
            fields.setdefault(name.strip(), value.strip())
    return fields


def requires_dist(metadata: str) -> list[str]:
    """The Requires-Dist values of a METADATA text, in order (the lines pin_metadata edits)."""
    return [
        line.split(":", 1)[1].strip()
        for line in metadata.partition("\n\n")[0].splitlines()
        if line.startswith("Requires-Dist:")
    ]


def requirement_names(metadata: str) -> frozenset[str]:
    """Canonical names of every distribution a METADATA text's Requires-Dist lines name."""
    names = set()
    for text in requires_dist(metadata):
        try:
            names.add(canonicalize_name(Requirement(text).name))
        except InvalidRequirement:
            continue
    return frozenset(names)


def pin_metadata(
    text: str,
    built_against: Version,
    *,
    abi: AbiRange | None = None,
    extra_requirements: tuple[str, ...] = (),
    ranges: Mapping[str, str] | None = None,
    quiet: bool = False,
) -> str:
    """METADATA with its apache-tvm-ffi Requires-Dist pinned (merged, or added after the rest),
    and each of ``extra_requirements`` added unless the project already requires that name.

    ``abi`` narrows the range to the releases that export what the binaries import.
    ``ranges`` (canonical name -> specifier) bounds a requirement that the project left
    without versions, such as a bare nvidia-cuda-runtime for a binary that needs libcudart.so.13.
    """
    present = requirement_names(text)
    head, separator, body = text.partition("\n\n")
    lines = head.split("\n")
    found = False
    for index, line in enumerate(lines):
        if not line.startswith("Requires-Dist:"):
            continue
        requirement = as_tvm_ffi_requirement(line.split(":", 1)[1].strip())
        if requirement is None:
            lines[index] = _bounded(line, ranges or {}, quiet)
            continue
        found = True
        merged, notes, warnings = merge(requirement, built_against, abi)
        lines[index] = f"Requires-Dist: {merged}"
        if not quiet:
            for note in notes:
                info(note)
            for warning in warnings:
                warn(warning)
    added = [] if found else [str(merge(None, built_against, abi)[0])]
    added += [r for r in extra_requirements if canonicalize_name(Requirement(r).name) not in present]
    requires = [i for i, line in enumerate(lines) if line.startswith("Requires-Dist:")]
    position = requires[-1] + 1 if requires else len(lines)
    lines[position:position] = [f"Requires-Dist: {r}" for r in added]
    return "\n".join(lines) + separator + body


def _bounded(line: str, ranges: Mapping[str, str], quiet: bool) -> str:
    """A Requires-Dist line, with versions from ``ranges`` where the project gave none."""
    try:
        requirement = Requirement(line.split(":", 1)[1].strip())
    except InvalidRequirement:
        return line
    wanted = ranges.get(canonicalize_name(requirement.name))
    if wanted is None or requirement.specifier:
        return line
    bare = str(requirement)
    requirement.specifier = SpecifierSet(wanted)
    if not quiet:
        warn(f"{bare} gives no versions; requiring {requirement.name}{requirement.specifier}, the CUDA major "
             "the binaries link")
    return f"Requires-Dist: {requirement}"


def tvm_ffi_requirement(metadata: str) -> Requirement | None:
    """The apache-tvm-ffi Requires-Dist of a METADATA text, if it has one."""
    found = (as_tvm_ffi_requirement(text) for text in requires_dist(metadata))
    return next((r for r in found if r is not None), None)


def pinned_version(metadata: str) -> Version | None:
    """The version a wheel says it was built against: an exact pin's, else the `>=` bound.

    A wheel repaired before (by the backend or `tvmffi-wheel repair`) carries
    `>=built,<next`; re-pinning it with that version keeps it byte-identical.
    """
    requirement = tvm_ffi_requirement(metadata)
    if requirement is None:
        return None
    exact = [s for s in requirement.specifier if _exact(s)]
    lower = [s for s in requirement.specifier if s.operator == ">="]
    chosen = exact or lower
    if len(chosen) != 1:
        return None
    return Version(chosen[0].version)
