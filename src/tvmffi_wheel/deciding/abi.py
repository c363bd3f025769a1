"""The tvm-ffi ABI a wheel's binaries use, and which releases of apache-tvm-ffi provide it.

A binary's imports from libtvm_ffi are its undefined C (`TVMFFI*`) and C++ (`tvm::ffi`)
symbols; a weak import may stay unresolved and is not required. Against the table of what
each release exports (common/tvm_ffi_releases.py), the range a wheel may require is narrowed: a symbol
gone from some release onwards makes that release the upper bound, and a release that
lacks one only in between is excluded with `!=`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from packaging.version import Version

from tvmffi_wheel.common.tvm_ffi_releases import Release, SymbolAbi, tvm_ffi_symbol_abi
from tvmffi_wheel.errors import TvmFfiWheelError, info, warn
from tvmffi_wheel.inspecting.wheel import WheelBinary


@dataclasses.dataclass(frozen=True)
class TvmFfiImport:
    symbol: str
    abi: SymbolAbi
    binaries: tuple[str, ...]  # the members that import it


def tvm_ffi_imports(binaries: Iterable[WheelBinary]) -> list[TvmFfiImport]:
    """What the binaries need from libtvm_ffi, sorted by symbol."""
    found: dict[str, tuple[SymbolAbi, list[str]]] = {}
    for binary in binaries:
        for symbol in binary.facts.imports - binary.facts.weak_imports:
            abi = tvm_ffi_symbol_abi(symbol)
            if abi is not None:
                found.setdefault(symbol, (abi, []))[1].append(binary.path)
    return [TvmFfiImport(symbol, abi, tuple(sorted(paths))) for symbol, (abi, paths) in sorted(found.items())]


def next_abi(version: Version) -> Version:
    """The first release of the next ABI: 0.(X+1) for 0.X releases, (X+1) from 1.0 on."""
    major, minor = (*version.release, 0, 0)[:2]
    return Version(f"0.{minor + 1}") if major == 0 else Version(f"{major + 1}")


@dataclasses.dataclass(frozen=True)
class ReleaseCheck:
    """One known release: the needed symbols it does not export."""

    version: Version
    missing: tuple[str, ...]

    @property
    def exports_all(self) -> bool:
        return not self.missing


@dataclasses.dataclass(frozen=True)
class AbiRange:
    """Which releases within [built against, next ABI) export everything needed."""

    upper: Version | None  # from this release on, a needed symbol is gone (None: none is)
    excluded: tuple[Version, ...]  # releases below `upper` that lack one: `!=`
    checks: tuple[ReleaseCheck, ...]  # every known release in the range, yanked and pre-releases too

    def reasons(self) -> list[str]:
        """One line per release the range leaves out, naming what it lacks."""
        lines = []
        for check in self.checks:
            if check.missing and (check.version in self.excluded or check.version == self.upper):
                shown = ", ".join(check.missing[:3]) + (" ..." if len(check.missing) > 3 else "")
                how = f"upper bound <{check.version}" if check.version == self.upper else f"!={check.version}"
                lines.append(f"apache-tvm-ffi {check.version} lacks {shown}: {how}")
        return lines


def decide_abi_range(
    needed: Iterable[str], built_against: Version, releases: Sequence[Release]
) -> AbiRange:
    """The range the binaries' imports allow among the known releases.

    Yanked releases and pre-releases count too: a resolver skips them unless asked, but
    one asked for must still not be admitted when it lacks a symbol. So a symbol gone from
    0.1.13 (yanked) onwards gives `<0.1.13`, not `<0.1.13.post2`.
    """
    wanted = frozenset(needed)
    ceiling = next_abi(built_against)
    checks = tuple(
        ReleaseCheck(r.version, tuple(sorted(wanted - r.exports)))
        for r in sorted(releases, key=lambda r: r.version)
        if built_against <= r.version < ceiling
    )
    upper = None
    for symbol in wanted:
        gone_from = None  # the first release of the run of releases, up to the last, lacking it
        for check in checks:
            gone_from = (gone_from or check.version) if symbol in check.missing else None
        if gone_from is not None and gone_from != built_against and (upper is None or gone_from < upper):
            upper = gone_from
    excluded = tuple(
        c.version for c in checks
        if c.missing and c.version != built_against and (upper is None or c.version < upper)
    )
    return AbiRange(upper, excluded, checks)


def check_against_built(imports: Sequence[TvmFfiImport], exports: frozenset[str], built_against: Version) -> None:
    """Every needed symbol is exported by the libtvm_ffi the wheel was built against."""
    missing = [i for i in imports if i.symbol not in exports]
    if missing:
        listed = "\n    ".join(f"{i.symbol} (imported by {', '.join(i.binaries)})" for i in missing)
        raise TvmFfiWheelError(
            f"the libtvm_ffi of apache-tvm-ffi {built_against}, which the wheel is built against, does "
            f"not export:\n    {listed}",
            "build against the apache-tvm-ffi whose headers the kernels were compiled with (pin it in "
            "[build-system] requires), or stop using these symbols",
        )


def tvm_ffi_range(
    imports: Sequence[TvmFfiImport], built_exports: frozenset[str] | None, version: Version,
    releases: Sequence[Release], where: str,
) -> AbiRange | None:
    """The releases the binaries' tvm-ffi ``imports`` allow, logging why any is left out;
    ``built_exports``: what the release built against exports (None: unknown here), ``where``
    the platform and architecture in words (for a table that knows no release of it)."""
    if not imports:
        return None
    if built_exports is None:
        warn(f"apache-tvm-ffi {version} is neither installed here nor in tvmffi-wheel's table, "
             "so the symbols the binaries import from it are not checked")
    else:
        check_against_built(imports, built_exports, version)
    cpp = [i for i in imports if i.abi == "c++"]
    if cpp:
        users = sorted({path for i in cpp for path in i.binaries})
        symbols = ", ".join(i.symbol for i in cpp[:3]) + (" ..." if len(cpp) > 3 else "")
        warn(f"C++ symbols imported from libtvm_ffi by {', '.join(users)}, outside tvm-ffi's "
             f"stable C ABI: {symbols}; the wheel works only with releases that keep these exact C++ "
             "signatures, so the requirement admits only the known releases that do")
    if not releases:
        warn(f"tvmffi-wheel's table knows no apache-tvm-ffi release for {where}, so the "
             "requirement's upper bound is only the next ABI")
    abi = decide_abi_range((i.symbol for i in imports), version, releases)
    for line in abi.reasons():
        info(line)
    return abi
