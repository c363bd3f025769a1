"""The software bill of materials every wheel carries: `<name>.dist-info/sboms/tvmffi-wheel.cdx.json`.

PEP 770 reserves `.dist-info/sboms/` for such documents. Ours is CycloneDX 1.6 JSON, written
here directly (as auditwheel writes its own): the backend stays free of a serialisation
library and its pins, and the document is small. Written by the repair, read by `check`,
both through this module. The same inputs give the same bytes: no clock unless
SOURCE_DATE_EPOCH gives one, and a serial number derived from the content.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import uuid
from collections.abc import Mapping
from typing import Any

SBOM_FILE = "sboms/tvmffi-wheel.cdx.json"  # inside the .dist-info folder
SPEC_VERSION = "1.6"
KNOWN_FROM = "tvmffi-wheel:known-from"  # a property: how a component is known (the link, a package manager)


@dataclasses.dataclass(frozen=True)
class PackageOrigin:
    """Where a library on this machine came from: a system package or a wheel."""

    purl: str  # pkg:deb/debian/libgomp1@12.2.0-14?arch=amd64, pkg:pypi/nvidia-cuda-runtime@13.0.96
    name: str
    version: str
    known_from: str  # "dpkg", "rpm", "the wheel's RECORD"


@dataclasses.dataclass(frozen=True)
class VendoredFile:
    """A library a repair copied into the wheel."""

    path: str  # in the wheel
    soname: str  # the name binaries asked for
    sha256: str  # of the file as the wheel holds it (patched)
    origin: PackageOrigin | None


@dataclasses.dataclass(frozen=True)
class Component:
    ref: str  # bom-ref, unique in the document
    kind: str  # CycloneDX component type: "library", "file", "application"
    name: str
    version: str = ""
    purl: str = ""
    sha256: str = ""  # hex digest of the file in the wheel
    location: str = ""  # its path in the wheel
    description: str = ""
    known_from: str = ""
    scope: str = ""  # "required" for what the wheel needs installed beside it
    contains: tuple[Component, ...] = ()  # what a binary carries linked in


@dataclasses.dataclass(frozen=True)
class Sbom:
    subject: Component  # the wheel itself
    components: tuple[Component, ...]
    depends_on: tuple[str, ...]  # bom-refs of the subject's dependencies among the components
    tools: tuple[Component, ...]
    timestamp: str = ""  # ISO 8601, from SOURCE_DATE_EPOCH; "" leaves it out


def timestamp_from(environ: Mapping[str, str]) -> str:
    """SOURCE_DATE_EPOCH as CycloneDX's timestamp; "" without it (no clock in the document)."""
    epoch = environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not epoch.isdigit():
        return ""
    moment = datetime.datetime.fromtimestamp(int(epoch), tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _component_json(component: Component) -> dict[str, Any]:
    document: dict[str, Any] = {"type": component.kind, "bom-ref": component.ref, "name": component.name}
    if component.version:
        document["version"] = component.version
    if component.description:
        document["description"] = component.description
    if component.scope:
        document["scope"] = component.scope
    if component.sha256:
        document["hashes"] = [{"alg": "SHA-256", "content": component.sha256}]
    if component.purl:
        document["purl"] = component.purl
    if component.known_from:
        document["properties"] = [{"name": KNOWN_FROM, "value": component.known_from}]
    if component.location:
        document["evidence"] = {"occurrences": [{"location": component.location}]}
    if component.contains:
        document["components"] = [_component_json(inner) for inner in component.contains]
    return document


def sbom_json(sbom: Sbom) -> str:
    """The document's bytes: sorted keys, and a serial number that is a hash of the rest."""
    metadata: dict[str, Any] = {
        "component": _component_json(sbom.subject),
        "tools": {"components": [_component_json(tool) for tool in sbom.tools]},
    }
    if sbom.timestamp:
        metadata["timestamp"] = sbom.timestamp
    document: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "version": 1,
        "metadata": metadata,
        "components": [_component_json(component) for component in sbom.components],
        "dependencies": [{"ref": sbom.subject.ref, "dependsOn": list(sbom.depends_on)}],
    }
    digest = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).digest()
    document["serialNumber"] = uuid.UUID(bytes=digest[:16], version=5).urn
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


@dataclasses.dataclass(frozen=True)
class Listed:
    """One thing a wheel carries, as its SBOM lists it, for `check`."""

    name: str
    version: str
    purl: str
    sha256: str
    location: str  # a vendored file's path in the wheel; "" for a runtime linked in
    inside: str  # the binary that contains it, for a runtime linked in; "" otherwise
    known_from: str


@dataclasses.dataclass(frozen=True)
class SbomListing:
    subject: str  # the wheel's name and version, as the SBOM says
    vendored: tuple[Listed, ...]  # files copied into the wheel
    linked: tuple[Listed, ...]  # runtimes linked into its binaries
    dependencies: tuple[str, ...]  # names of what it needs installed beside it


def _known_from(component: Mapping[str, Any]) -> str:
    for prop in component.get("properties", []) or []:
        if isinstance(prop, dict) and prop.get("name") == KNOWN_FROM:
            return str(prop.get("value", ""))
    return ""


def _listed(component: Mapping[str, Any], inside: str) -> Listed:
    hashes = [h.get("content", "") for h in component.get("hashes", []) or [] if isinstance(h, dict)
              and h.get("alg") == "SHA-256"]
    occurrences = (component.get("evidence") or {}).get("occurrences") or [{}]
    return Listed(str(component.get("name", "")), str(component.get("version", "")), str(component.get("purl", "")),
                  str(hashes[0]) if hashes else "", str(occurrences[0].get("location", "")), inside,
                  _known_from(component))


def parse_sbom(text: str) -> SbomListing | None:
    """What our SBOM lists; None when ``text`` is not one of ours (damaged, or not CycloneDX)."""
    try:
        document = json.loads(text)
        if not isinstance(document, dict) or document.get("bomFormat") != "CycloneDX":
            return None
        subject = document["metadata"]["component"]
        vendored, linked, dependencies = [], [], []
        for component in document.get("components", []):
            if component.get("scope") == "required":
                dependencies.append(str(component.get("name", "")))
            elif component.get("components"):  # a binary, with what it carries linked in
                where = _listed(component, "").location
                linked += [_listed(inner, where) for inner in component["components"]]
            else:
                vendored.append(_listed(component, ""))
        return SbomListing(f"{subject.get('name', '')} {subject.get('version', '')}".strip(), tuple(vendored),
                           tuple(linked), tuple(dependencies))
    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
        return None


def carried(listing: SbomListing) -> list[str]:
    """What the wheel carries, each once: `libgomp (pkg:deb/...)`, `CUDA runtime 13.0 (static)`."""
    said = [f"{item.name} ({item.purl or item.version or 'unknown origin'})" for item in listing.vendored]
    said += [f"{item.name} {item.version} (static)".replace("  ", " ") for item in listing.linked]
    return list(dict.fromkeys(said))
