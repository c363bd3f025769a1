"""`tvmffi-wheel compat`: install a wheel with each chosen apache-tvm-ffi and load it for real.

For each version: a fresh virtual environment, apache-tvm-ffi at that version and the
wheel's other requirements installed with pip (so PIP_INDEX_URL and PIP_FIND_LINKS apply),
the wheel itself without dependencies (so a version outside its range can be tested when
named), then a new process that loads every kernel library with tvm_ffi.load_module and
imports the top-level packages. That process runs with LD_BIND_NOW=1: lazy binding would
let a missing function through until its first call, and then kill the process.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import posixpath
import re
import subprocess
import sys
import tempfile
import venv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.tags import sys_tags
from packaging.version import InvalidVersion, Version

from tvmffi_wheel.common.tvm_ffi import TVM_FFI_DISTRIBUTION
from tvmffi_wheel.common.tvm_ffi_releases import load_table
from tvmffi_wheel.deciding.classify import is_tvm_ffi_library
from tvmffi_wheel.deciding.platforms import binaries_platform, wheel_architecture
from tvmffi_wheel.deciding.requirements import as_tvm_ffi_requirement, requires_dist, tvm_ffi_requirement
from tvmffi_wheel.deciding.runpath import install_path
from tvmffi_wheel.errors import TvmFfiWheelError, info
from tvmffi_wheel.inspecting.wheel import inspect_wheel
from tvmffi_wheel.inspecting.wheel_reader import WheelArchive

JSON_SCHEMA_VERSION = 1

# Runs inside each test environment: nothing of tvmffi-wheel is installed there.
_PROBE = """
import importlib, json, sys, sysconfig
from pathlib import Path
libraries, packages = json.loads(sys.argv[1])
root = Path(sysconfig.get_paths()["platlib"])
failures = []
import tvm_ffi
for member in libraries:
    try:
        tvm_ffi.load_module(str(root / member))
    except Exception as err:
        failures.append({"what": member, "error": f"{type(err).__name__}: {err}"})
for name in packages:
    try:
        importlib.import_module(name)
    except Exception as err:
        failures.append({"what": f"import {name}", "error": f"{type(err).__name__}: {err}"})
print("@@compat " + json.dumps(failures))
"""

_UNDEFINED_SYMBOL = re.compile(r"undefined symbol: ([^\s,)'\"]+)")
_ERROR_LINE = re.compile(r"^(?:[\w.]+(?:Error|Exception)|what\(\)):")
_NETWORK_TROUBLE = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Could not fetch URL|ConnectionError|"
    r"Network is unreachable|Name or service not known|Temporary failure in name resolution|ProxyError|"
    r"Connection refused|Max retries exceeded"
)


@dataclasses.dataclass(frozen=True)
class Failure:
    what: str  # a library member, "import <package>", or "import tvm_ffi"
    error: str

    @property
    def missing_symbol(self) -> str | None:
        found = _UNDEFINED_SYMBOL.search(self.error)
        return found.group(1) if found else None

    @property
    def summary(self) -> str:
        """One line: the missing symbol, else the last error line (a traceback's or C++'s)."""
        if self.missing_symbol is not None:
            return f"missing symbol {self.missing_symbol}"
        lines = [line.strip() for line in self.error.splitlines() if line.strip()]
        errors = [line for line in lines if _ERROR_LINE.match(line)]
        return (errors[-1] if errors else lines[-1] if lines else "failed")[:300]


@dataclasses.dataclass(frozen=True)
class VersionResult:
    version: Version
    in_range: bool  # whether the wheel's requirement admits it
    failures: tuple[Failure, ...]

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclasses.dataclass(frozen=True)
class WheelUnderTest:
    path: Path
    requirement: Requirement | None  # its apache-tvm-ffi requirement
    other_requirements: tuple[str, ...]
    libraries: tuple[str, ...]  # site-packages relative paths of the kernel libraries
    packages: tuple[str, ...]  # top-level import names
    table_key: str  # its platform in tvmffi-wheel's table of releases (Platform.abi_table_key)


def _check_installable_here(archive: WheelArchive) -> None:
    """compat installs and loads the wheel on this machine, which takes a wheel for it."""
    here = set(sys_tags())
    if not any(tag in here for tag in archive.name.tags):
        platform = archive.name.platforms[0]
        raise TvmFfiWheelError(
            f"{archive.path.name} is for {platform}, which this machine cannot install or load: compat installs "
            "the wheel into fresh environments here and loads each kernel library",
            f"run `tvmffi-wheel compat` on a {platform} machine (cibuildwheel's test-command runs there), or "
            "`tvmffi-wheel check` here, which reads the wheel without loading it",
        )


def read_wheel_under_test(path: Path) -> WheelUnderTest:
    with WheelArchive(path) as archive, tempfile.TemporaryDirectory(prefix="tvmffi-compat-") as scratch:
        _check_installable_here(archive)
        binaries = inspect_wheel(archive, Path(scratch), strict=False).binaries
        metadata = archive.dist_info_text("METADATA")
        names = archive.member_names
        dist_info = archive.dist_info
    libraries = tuple(
        location for b in binaries
        if (location := install_path(b.path)) is not None
        and any(is_tvm_ffi_library(posixpath.basename(n.replace("\\", "/"))) for n in b.facts.needed)
    )
    if not libraries:
        raise TvmFfiWheelError(
            f"{path.name} has no kernel library: no binary in it needs libtvm_ffi",
            "pass a wheel of a tvm-ffi kernel package",
        )
    requirement = tvm_ffi_requirement(metadata)
    others = tuple(
        text for text in requires_dist(metadata) if as_tvm_ffi_requirement(text) is None and "extra ==" not in text
    )
    packages = _top_level_imports(names, dist_info)
    key = binaries_platform(binaries).abi_table_key(wheel_architecture(binaries))
    return WheelUnderTest(path, requirement, others, libraries, packages, key)


def _top_level_imports(names: Sequence[str], dist_info: str) -> tuple[str, ...]:
    """What `import` can name in the wheel: packages, modules and extension modules at the top."""
    found = set()
    for name in names:
        top = name.split("/", 1)[0]
        if top == dist_info or top.endswith((".data", ".libs")):
            continue
        if "/" in name:
            if f"{top}/__init__.py" in names:
                found.add(top)
        elif name.endswith((".py", ".so")):
            found.add(name.split(".", 1)[0])
    return tuple(sorted(found))


def _admitted(wheel: WheelUnderTest) -> list[Version]:
    """The known releases the wheel admits, neither yanked nor pre-releases, oldest first."""
    known = [r.version for r in load_table().for_arch(wheel.table_key) if r.installable]
    admitted = [v for v in known if wheel.requirement is None or wheel.requirement.specifier.contains(v)]
    if not admitted:
        raise TvmFfiWheelError(
            f"no apache-tvm-ffi release that tvmffi-wheel knows of is admitted by {wheel.path.name}'s "
            f"requirement ({wheel.requirement})",
            "name the versions to test: --versions 0.1.15.post2,...",
        )
    return admitted


def select_versions(selection: str, wheel: WheelUnderTest) -> list[Version]:
    """The versions `--versions` names, a comma-separated list of `lowest`, `highest` and
    `all` (of the known releases the wheel admits) and versions, in order, once each."""
    versions: list[Version] = []
    for text in filter(None, (item.strip() for item in selection.split(","))):
        if text in ("lowest", "highest", "all"):
            admitted = _admitted(wheel)
            versions += {"lowest": admitted[:1], "highest": admitted[-1:], "all": admitted}[text]
            continue
        try:
            versions.append(Version(text))
        except InvalidVersion:
            raise TvmFfiWheelError(
                f"--versions: {text!r} is neither a version nor lowest, highest or all",
                "give lowest,highest (the default), all, or versions such as 0.1.12,0.1.15.post2",
            ) from None
    if not versions:
        raise TvmFfiWheelError("--versions names no version", "give lowest,highest, all, or 0.1.12,...")
    return list(dict.fromkeys(versions))


def _pip(python: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """pip for the environment of ``python``: ours, driving it (`--python`), when we have pip."""
    if importlib.util.find_spec("pip") is not None:
        command = [sys.executable, "-m", "pip", "--python", str(python)]
    else:
        command = [str(python), "-m", "pip"]
    return subprocess.run(
        [*command, "--disable-pip-version-check", *arguments],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
    )


def _pip_error(result: subprocess.CompletedProcess[str], version: Version) -> TvmFfiWheelError:
    output = result.stdout.strip()
    offered = re.search(r"\(from versions: ([^)]*)\)", output)
    if _NETWORK_TROUBLE.search(output) or (offered is not None and offered.group(1) == "none"):
        return TvmFfiWheelError(
            f"pip found no apache-tvm-ffi release at all while installing {version}: the package index "
            "could not be reached, or it does not carry apache-tvm-ffi",
            "check the network, or point PIP_INDEX_URL / PIP_FIND_LINKS at an index or folder that has "
            "the apache-tvm-ffi wheels",
        )
    if offered is not None:
        releases = offered.group(1).split(", ")
        shown = ", ".join(releases[-6:]) + (f" and {len(releases) - 6} older" if len(releases) > 6 else "")
        return TvmFfiWheelError(
            f"apache-tvm-ffi {version} does not exist on the package index for this machine (it has {shown})",
            "name a released version",
        )
    return TvmFfiWheelError(f"pip failed to install apache-tvm-ffi {version}:\n{output[-2000:]}")


def check_version(wheel: WheelUnderTest, version: Version, scratch: Path) -> VersionResult:
    environment = scratch / f"venv-{version}"
    venv.create(environment, with_pip=importlib.util.find_spec("pip") is None, symlinks=True)
    python = environment / "bin" / "python"
    installed = _pip(python, "install", "--quiet", f"{TVM_FFI_DISTRIBUTION}=={version}", *wheel.other_requirements)
    if installed.returncode != 0:
        raise _pip_error(installed, version)
    installed = _pip(python, "install", "--quiet", "--no-deps", str(wheel.path))
    if installed.returncode != 0:
        raise TvmFfiWheelError(f"pip failed to install {wheel.path.name}:\n{installed.stdout[-2000:]}")
    probe = subprocess.run(
        [str(python), "-c", _PROBE, json.dumps([list(wheel.libraries), list(wheel.packages)])],
        cwd=scratch, env={**os.environ, "LD_BIND_NOW": "1", "PYTHONNOUSERSITE": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
    )
    _, marker, report = probe.stdout.rpartition("@@compat ")
    if marker and probe.returncode == 0:
        failures = tuple(Failure(**item) for item in json.loads(report.splitlines()[0]))
    else:  # died before reporting: import tvm_ffi failed, or the process was killed
        failures = (Failure("the test process", f"exit status {probe.returncode}: {probe.stdout.strip()[-1500:]}"),)
    in_range = wheel.requirement is None or wheel.requirement.specifier.contains(version, prereleases=True)
    return VersionResult(version, in_range, failures)


def run_compat(path: Path, selection: str) -> tuple[WheelUnderTest, list[VersionResult]]:
    wheel = read_wheel_under_test(path)
    versions = select_versions(selection, wheel)
    results = []
    with tempfile.TemporaryDirectory(prefix="tvmffi-compat-") as scratch:
        for version in versions:
            info(f"{path.name}: installing with apache-tvm-ffi {version}")
            results.append(check_version(wheel, version, Path(scratch)))
    return wheel, results


def render_text(wheel: WheelUnderTest, results: Sequence[VersionResult]) -> str:
    lines = [f"{wheel.path.name} (requires {wheel.requirement})"]
    for result in results:
        note = "" if result.in_range else " (outside the wheel's range)"
        if result.ok:
            lines.append(f"  apache-tvm-ffi {result.version}: ok{note}")
            continue
        lines.append(f"  apache-tvm-ffi {result.version}: FAILED{note}")
        for failure in result.failures:
            lines.append(f"    {failure.what}: {failure.summary}")
    return "\n".join(lines)


def to_json(wheel: WheelUnderTest, results: Sequence[VersionResult]) -> dict[str, Any]:
    return {
        "wheel": wheel.path.name,
        "requirement": str(wheel.requirement) if wheel.requirement else None,
        "results": [
            {
                "version": str(r.version),
                "in_range": r.in_range,
                "ok": r.ok,
                "failures": [
                    {"what": f.what, "error": f.error, "missing_symbol": f.missing_symbol} for f in r.failures
                ],
            }
            for r in results
        ],
    }
