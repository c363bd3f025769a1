"""What each released apache-tvm-ffi exports: the data behind the requirement's range.

`data/tvm_ffi_abi.json` lists, for every apache-tvm-ffi release on PyPI and each platform
it publishes wheels for (Linux x86_64 and aarch64, macOS arm64, Windows amd64), what its
libtvm_ffi exports (`libtvm_ffi.so`, `libtvm_ffi.dylib`, `tvm_ffi.dll`), each release as the
symbols added and removed since the release before it. Each platform is compared only with
itself: C names agree across them, C++ manglings do not (MSVC's differs from Itanium's).
The entries are named by each platform's `abi_table_key` (deciding/platforms): the
architecture alone for Linux. Nothing is downloaded while building;
`tools/regenerate-abi-table` regenerates the file with pip.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from importlib import resources
from typing import Any, Literal

from packaging.version import Version

DATA_FILE = "tvm_ffi_abi.json"

SymbolAbi = Literal["c", "c++"]
# tvm-ffi's C ABI, and entities of namespace tvm::ffi (functions, const members, and
# their vtables, type infos and type names) in the Itanium C++ mangling.
# On Windows, MSVC's mangling: a name qualified by tvm::ffi ends its scope list in
# "@ffi@tvm@@" (`?Stringify@json@ffi@tvm@@YA...`, `??0Error@ffi@tvm@@QEAA...`).
_C_SYMBOL = re.compile(r"^TVMFFI")
_CPP_SYMBOL = re.compile(r"^_Z(?:T[VIS])?NK?3tvm3ffi")
_MSVC_CPP_SYMBOL = re.compile(r"^\?[^@]*@(?:[^@]*@)*ffi@tvm@@")


def tvm_ffi_symbol_abi(name: str) -> SymbolAbi | None:
    """"c" for tvm-ffi's C API, "c++" for a tvm::ffi C++ entity (Itanium or MSVC mangling),
    None for anything else."""
    if _C_SYMBOL.match(name):
        return "c"
    if _CPP_SYMBOL.match(name) or _MSVC_CPP_SYMBOL.match(name):
        return "c++"
    return None


@dataclasses.dataclass(frozen=True)
class Release:
    version: Version
    yanked: bool
    exports: frozenset[str]

    @property
    def installable(self) -> bool:
        """What a resolver picks on its own: not yanked, not a pre-release."""
        return not self.yanked and not self.version.is_prerelease


@dataclasses.dataclass(frozen=True)
class AbiTable:
    releases: dict[str, tuple[Release, ...]]  # architecture -> releases, oldest first

    def for_arch(self, arch: str) -> tuple[Release, ...]:
        return self.releases.get(arch, ())

    def release(self, arch: str, version: Version) -> Release | None:
        return next((r for r in self.for_arch(arch) if r.version == version), None)


def table_from_json(document: dict[str, Any]) -> AbiTable:
    releases: dict[str, tuple[Release, ...]] = {}
    for arch, rows in document["architectures"].items():
        current: set[str] = set()
        built = []
        for row in rows:
            current = (current - set(row.get("removed", ()))) | set(row.get("added", ()))
            built.append(Release(Version(row["version"]), bool(row.get("yanked")), frozenset(current)))
        releases[arch] = tuple(built)
    return AbiTable(releases)


def table_to_json(table: AbiTable, source: str) -> dict[str, Any]:
    architectures: dict[str, list[dict[str, Any]]] = {}
    for arch, releases in table.releases.items():
        rows: list[dict[str, Any]] = []
        previous: frozenset[str] = frozenset()
        for release in releases:
            row: dict[str, Any] = {"version": str(release.version)}
            if release.yanked:
                row["yanked"] = True
            row["added"] = sorted(release.exports - previous)
            row["removed"] = sorted(previous - release.exports)
            rows.append(row)
            previous = release.exports
        architectures[arch] = rows
    return {"schema": 1, "source": source, "architectures": architectures}


@functools.cache
def load_table() -> AbiTable:
    """The table shipped with tvmffi-wheel."""
    text = (resources.files("tvmffi_wheel.common") / "data" / DATA_FILE).read_text("utf-8")
    return table_from_json(json.loads(text))
