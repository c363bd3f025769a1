"""The device code found against the architectures declared: what is missing, what strays.

One comparison that the build (repair.py) and `check` both report, each in its own words;
and the wheel's size against its limit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from tvmffi_wheel.common.cuda import Architecture
from tvmffi_wheel.errors import TvmFfiWheelError, warn
from tvmffi_wheel.inspecting.device_code import DeviceImage, size_findings


def _matches(image: DeviceImage, kind: str, entry: Architecture) -> bool:
    # A bare cubin's ELF header does not tell `a`/`f` apart: it stands for any variant.
    variant_fits = image.variant == entry.variant or not image.variant_known
    return image.kind == kind and image.arch == entry.number and variant_fits


def missing_device_code(
    declared: Sequence[Architecture], inventory: Sequence[DeviceImage]
) -> list[str]:
    """Declared architectures the device code lacks, e.g. ['SASS sm_90', 'PTX compute_120']."""
    missing = []
    for entry in declared:
        if entry.sass and not any(_matches(image, "sass", entry) for image in inventory):
            missing.append(f"SASS sm_{entry.number}{entry.variant}")
        if entry.ptx and not any(_matches(image, "ptx", entry) for image in inventory):
            missing.append(f"PTX compute_{entry.number}{entry.variant}")
    return missing


def stray_device_code(declared: Sequence[Architecture], inventory: Sequence[DeviceImage]) -> list[str]:
    """Device code for an architecture nothing declared, e.g. the sm_52 of a device link."""
    stray = {
        image.name
        for image in inventory
        if not any(
            _matches(image, image.kind, entry) and (entry.sass if image.kind == "sass" else entry.ptx)
            for entry in declared
        )
    }
    return sorted(stray)


@dataclasses.dataclass(frozen=True)
class InventoryMismatch:
    """Where device code and the declared architectures disagree."""

    where: str  # a binary, or the device code files
    missing: list[str]  # declared, not found: an error
    stray: list[str]  # found, not declared: a warning (an error when strict)


def architectures_found(images: Sequence[DeviceImage]) -> str:
    """The device code as a CMake architecture list, e.g. `75-real;90a-real;120-virtual`."""
    found: dict[tuple[int, str], set[str]] = {}
    for image in images:
        if image.kind in ("sass", "ptx"):
            found.setdefault((image.arch, image.variant), set()).add(image.kind)
    return ";".join(
        str(Architecture(number, variant, "sass" in kinds, "ptx" in kinds))
        for (number, variant), kinds in sorted(found.items())
    )


def compare_inventory(
    declared: Sequence[Architecture], groups: Sequence[tuple[str, Sequence[DeviceImage]]]
) -> list[InventoryMismatch]:
    """Declared against found for each group of device code (see inspecting.wheel.device_code_groups)."""
    mismatches = []
    for where, images in groups:
        missing, stray = missing_device_code(declared, images), stray_device_code(declared, images)
        if missing or stray:
            mismatches.append(InventoryMismatch(where, missing, stray))
    return mismatches


def check_size(size: int, limit_mb: int, device_code: Sequence[DeviceImage] = ()) -> None:
    problem, warning = size_findings(size, limit_mb, device_code)
    if problem is not None:
        cuda = "ship fewer CUDA architectures, compress device code (cuda.compress), " if device_code else ""
        raise TvmFfiWheelError(
            problem, f"{cuda}leave debug information out (a Release build), or raise max-wheel-size-mb"
        )
    if warning is not None:
        warn(warning)
