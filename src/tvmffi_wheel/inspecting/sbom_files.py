"""The files of a new wheel as its SBOM lists them: each binary with the SHA-256 of the
file the wheel will hold, and each vendored library with where it came from."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from tvmffi_wheel.common.sbom import SBOM_FILE, PackageOrigin, VendoredFile, parse_sbom
from tvmffi_wheel.inspecting.facts import BinaryFacts
from tvmffi_wheel.inspecting.package_origin import origin_of
from tvmffi_wheel.inspecting.wheel import WheelBinary
from tvmffi_wheel.inspecting.wheel_reader import Digest, WheelArchive, file_sha256, record_hash_hex


@dataclasses.dataclass(frozen=True)
class WheelFiles:
    vendored: tuple[VendoredFile, ...]
    binaries: tuple[tuple[str, BinaryFacts, str], ...]  # (path, facts, sha256) as written


def wheel_files(
    archive: WheelArchive, final: Sequence[WheelBinary], digests: Mapping[str, Digest],
    replaced: Mapping[str, Path], added: Mapping[str, Path], vendoring: Sequence[tuple[str, str, Path]],
    libs_folder: str,
) -> WheelFiles:
    """``vendoring``: (path in the wheel, soname, source) of each library this repair copies in.
    A library an earlier repair vendored keeps the origin that repair's SBOM gave it."""
    binaries = []
    for binary in final:
        new_file = replaced.get(binary.path) or added.get(binary.path)
        digest = file_sha256(new_file) if new_file is not None else record_hash_hex(digests[binary.path].hash)
        binaries.append((binary.path, binary.facts, digest))
    hashes = {path: digest for path, _, digest in binaries}
    vendored = {path: VendoredFile(path, soname, hashes[path], origin_of(source)) for path, soname, source in vendoring}
    member = f"{archive.dist_info}/{SBOM_FILE}"
    earlier = parse_sbom(archive.read_text(member)) if member in archive.member_names else None
    said = {item.location: item for item in earlier.vendored} if earlier is not None else {}
    for path, facts, digest in binaries:
        if path.startswith(libs_folder + "/") and path not in vendored:
            item = said.get(path)
            origin = PackageOrigin(item.purl, item.name, item.version, item.known_from) if item and item.purl else None
            vendored[path] = VendoredFile(path, facts.install_name or path.rpartition("/")[2], digest, origin)
    return WheelFiles(tuple(vendored.values()), tuple(binaries))
