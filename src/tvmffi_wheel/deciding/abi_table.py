"""What each released apache-tvm-ffi exports: the data behind the requirement's range.

`data/tvm_ffi_abi.json` lists, for every apache-tvm-ffi release on PyPI and each platform
it publishes wheels for (Linux x86_64 and aarch64, macOS arm64, Windows amd64), what its
libtvm_ffi exports (`libtvm_ffi.so`, `libtvm_ffi.dylib`, `tvm_ffi.dll`), each release as the
symbols added and removed since the release before it. Each platform is compared only with
itself: C names agree across them, C++ manglings do not (MSVC's differs from Itanium's).
The entries are named by `table_key`: the architecture alone for Linux. Nothing is
downloaded while building; `python -m tvmffi_wheel.deciding.abi_table` regenerates the file with pip.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import re
import tempfile
import zipfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from packaging.version import InvalidVersion, Version

from tvmffi_wheel.common.tvm_ffi import TVM_FFI_DISTRIBUTION
from tvmffi_wheel.compiling.tvm_ffi import download_release_wheel
from tvmffi_wheel.errors import TvmFfiWheelError, report_user_error
from tvmffi_wheel.inspecting.binary import read_binary_facts

DATA_FILE = "tvm_ffi_abi.json"
# (system, architecture, the library in the wheel, a fragment of the wheels' file names)
PLATFORMS = (
    ("linux", "x86_64", "tvm_ffi/lib/libtvm_ffi.so", "linux"),
    ("linux", "aarch64", "tvm_ffi/lib/libtvm_ffi.so", "linux"),
    ("macos", "arm64", "tvm_ffi/lib/libtvm_ffi.dylib", "macosx"),
    ("windows", "amd64", "tvm_ffi/lib/tvm_ffi.dll", "win_amd64"),
)

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


def table_key(system: str, arch: str) -> str:
    """The table's entry for a system ("linux", "macos", "windows") and architecture: the
    architecture alone on Linux (the table's first entries), else "macos-arm64" and the like."""
    return arch if system == "linux" else f"{system}-{arch}"


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
    text = (resources.files("tvmffi_wheel.deciding") / "data" / DATA_FILE).read_text("utf-8")
    return table_from_json(json.loads(text))


# --------------------------------------------------------------------------- regenerating


def _released_versions(index_json_url: str, fragment: str) -> list[tuple[Version, bool]]:
    """(version, yanked) of every release with wheels whose names hold ``fragment``, from
    PyPI's JSON API."""
    import urllib.request  # only when regenerating: with ssl and http, 20 ms of every start

    with urllib.request.urlopen(index_json_url, timeout=120) as response:
        document = json.load(response)
    found = []
    for text, files in document["releases"].items():
        wheels = [f for f in files if f["filename"].endswith(".whl") and fragment in f["filename"]]
        if not wheels:
            continue
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        found.append((version, any(f.get("yanked") for f in wheels)))
    return sorted(found)


def _exports_of(version: Version, system: str, arch: str, member: str, scratch: Path) -> frozenset[str]:
    """What the libtvm_ffi of the release's wheel for ``system`` and ``arch`` exports."""
    folder = scratch / f"{version}-{system}-{arch}"
    # One Python version for every release, so the table does not depend on who regenerates it.
    wheel = download_release_wheel(version, arch, folder, python_version="3.12", system=system)
    with zipfile.ZipFile(wheel) as archive:
        library = archive.extract(member, folder)
    return read_binary_facts(Path(library), f"{wheel.name}:{member}").exports


def regenerate(output: Path, index_json_url: str) -> AbiTable:
    releases: dict[str, tuple[Release, ...]] = {}
    with tempfile.TemporaryDirectory(prefix="tvmffi-abi-") as scratch:
        for system, arch, member, fragment in PLATFORMS:
            releases[table_key(system, arch)] = tuple(
                Release(version, yanked, _exports_of(version, system, arch, member, Path(scratch)))
                for version, yanked in _released_versions(index_json_url, fragment)
            )
    table = AbiTable(releases)
    source = ("the symbols exported by libtvm_ffi (.so, .dylib; tvm_ffi.dll) of each apache-tvm-ffi "
              "wheel on PyPI, per platform (Linux's by architecture alone, then macos-arm64 and "
              "windows-amd64); `python -m tvmffi_wheel.deciding.abi_table` regenerates it")
    output.write_text(json.dumps(table_to_json(table, source), indent=1) + "\n", "utf-8")
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tvmffi_wheel.deciding.abi_table",
        description="Regenerate the table of what each apache-tvm-ffi release exports, by downloading "
        "every release's Linux, macOS and Windows wheels with pip (it honours PIP_INDEX_URL and friends).",
    )
    default_output = Path(__file__).with_name("data") / DATA_FILE
    parser.add_argument("--output", type=Path, default=default_output, help=f"default: {default_output}")
    parser.add_argument("--index-json", default=f"https://pypi.org/pypi/{TVM_FFI_DISTRIBUTION}/json",
                        help="PyPI's JSON API page listing the releases")
    args = parser.parse_args(argv)
    try:
        table = regenerate(args.output, args.index_json)
    except TvmFfiWheelError as err:
        report_user_error(err)
        return 1
    for arch, releases in table.releases.items():
        print(f"{arch}: {len(releases)} releases, {releases[0].version} to {releases[-1].version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
