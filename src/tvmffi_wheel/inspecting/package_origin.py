"""Where a library about to be vendored came from, for the SBOM: a wheel, or a system package.

A wheel first (a `--lib-path` into an installed wheel, NVIDIA's wheels): the folder the
library is in, or one above it, holds the wheel's `.dist-info` whose RECORD lists it. Then
the system's package manager, as auditwheel asks it: dpkg, else rpm. Nothing is guessed: a
library no one owns has no origin.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

from packaging.utils import canonicalize_name

from tvmffi_wheel.common.sbom import PackageOrigin


def _run(command: list[str]) -> str:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def _distro() -> str:
    """os-release's ID, the purl's namespace (debian, ubuntu, almalinux, ...)."""
    for candidate in (Path("/etc/os-release"), Path("/usr/lib/os-release")):
        try:
            for line in candidate.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("ID="):
                    return line[3:].strip().strip('"') or "linux"
        except OSError:
            continue
    return "linux"


def _spellings(path: Path) -> list[str]:
    """The path as given and resolved, with and without /usr: merged-/usr systems record either."""
    found = []
    for candidate in (path, path.resolve()):
        text = str(candidate)
        found.append(text)
        found.append(text[4:] if text.startswith("/usr/") else f"/usr{text}")
    return list(dict.fromkeys(found))


def _from_dpkg(path: Path) -> PackageOrigin | None:
    if shutil.which("dpkg-query") is None:
        return None
    for spelling in _spellings(path):
        owner = _run(["dpkg-query", "-S", spelling])
        if owner:
            package = owner.splitlines()[0].split(": ", 1)[0].split(", ")[0]
            fields = _run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${Architecture}", package])
            if fields.count("\t") == 2:
                name, version, arch = fields.split("\t")
                purl = f"pkg:deb/{_distro()}/{name}@{quote(version, safe='')}?arch={arch}"
                return PackageOrigin(purl, name, version, "dpkg")
    return None


def _from_rpm(path: Path) -> PackageOrigin | None:
    if shutil.which("rpm") is None:
        return None
    for spelling in _spellings(path):
        fields = _run(["rpm", "-qf", "--queryformat", "%{NAME}\t%{VERSION}-%{RELEASE}\t%{ARCH}\n", spelling])
        if fields and fields.splitlines()[0].count("\t") == 2:
            name, version, arch = fields.splitlines()[0].split("\t")
            purl = f"pkg:rpm/{_distro()}/{name}@{quote(version, safe='')}?arch={arch}"
            return PackageOrigin(purl, name, version, "rpm")
    return None


def _from_wheel(path: Path) -> PackageOrigin | None:
    resolved = path.resolve()
    for folder in resolved.parents:
        dist_infos = sorted(folder.glob("*.dist-info"))
        for dist_info in dist_infos:
            try:
                record = (dist_info / "RECORD").read_text(encoding="utf-8", errors="replace")
                metadata = (dist_info / "METADATA").read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            listed = {row[0] for row in csv.reader(io.StringIO(record)) if row}
            if resolved.relative_to(folder).as_posix() in listed:
                fields = dict(line.split(": ", 1) for line in metadata.splitlines()[:20] if ": " in line)
                name, version = fields.get("Name", ""), fields.get("Version", "")
                if name and version:
                    purl = f"pkg:pypi/{canonicalize_name(name)}@{quote(version, safe='')}"
                    return PackageOrigin(purl, name, version, "the wheel's RECORD")
        if dist_infos:  # a site-packages folder: no wheel above it owns the file
            return None
    return None


def origin_of(path: Path) -> PackageOrigin | None:
    """The wheel or system package ``path`` came from; None where no one owns it."""
    return _from_wheel(path) or _from_dpkg(path) or _from_rpm(path)
