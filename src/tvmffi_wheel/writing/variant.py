"""CUDA major variants: one project built for CUDA 12 and 13 as distinguishable wheels.

`name` makes the distribution `<name>-cu<major>` (as jax-cuda13-plugin and cupy-cuda13x
are named); `local` gives the version a `+cu<major><minor>` local part (as projects that
serve their own index do; PyPI refuses local versions).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Literal

from packaging.version import Version

from tvmffi_wheel.common.cuda import CudaFacts
from tvmffi_wheel.common.modes import CudaVariant
from tvmffi_wheel.errors import TvmFfiWheelError, info, warn
from tvmffi_wheel.inspecting.wheel_reader import WheelArchive, WheelName


@dataclasses.dataclass(frozen=True)
class Variant:
    mode: Literal["name", "local"]
    cuda_major: int
    cuda_minor: int

    def distribution(self, name: str) -> str:
        return f"{name}-cu{self.cuda_major}" if self.mode == "name" else name

    def version(self, version: str) -> str:
        if self.mode != "local":
            return version
        label = f"cu{self.cuda_major}{self.cuda_minor}"
        return f"{version}.{label}" if "+" in version else f"{version}+{label}"


def variant_for(kind: CudaVariant, cuda: CudaFacts | None) -> Variant | None:
    """The variant `cuda.variant` asks for, from the toolkit of a build that declared CUDA."""
    if kind == "none":
        return None
    if cuda is None:
        raise TvmFfiWheelError(
            f'cuda.variant = "{kind}" names the wheel after its CUDA major, but this '
            "build uses no CUDA (no CUDA architectures or runtime are set)",
            "remove cuda.variant, or set cuda.architectures",
        )
    release = Version(cuda.toolkit)
    return Variant(kind, release.major, release.minor)


def file_name_part(name: str) -> str:
    """A distribution name as wheel file names and .dist-info folders spell it."""
    return re.sub(r"[-_.]+", "_", name)


def metadata_field(metadata: str, field: str) -> str:
    for line in metadata.partition("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == field.lower():
            return value.strip()
    raise TvmFfiWheelError(f"the wheel's METADATA has no {field} field", "rebuild the wheel")


def with_fields(metadata: str, name: str, version: str) -> str:
    """METADATA with its Name and Version fields replaced."""
    head, separator, body = metadata.partition("\n\n")
    lines = []
    for line in head.split("\n"):
        key = line.partition(":")[0].strip().lower()
        if key == "name":
            line = f"Name: {name}"
        elif key == "version":
            line = f"Version: {version}"
        lines.append(line)
    return "\n".join(lines) + separator + body


def announce(variant: Variant, name: str, version: str) -> None:
    info(f"cuda.variant = {variant.mode}: {name} {version}")
    if variant.mode == "local":
        warn(f"PyPI refuses local versions such as {version}; publish this wheel to your own "
             "index (or use cuda.variant = \"name\")")


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who the new wheel is: the input's name and version, or its CUDA variant's."""

    name: WheelName  # the tags are still the input's
    renames: dict[str, str]  # member-name prefixes to rename (.dist-info, .data)
    fields: tuple[str, str] | None  # (Name, Version) for METADATA when they change


def identity_for(archive: WheelArchive, variant: Variant | None) -> Identity:
    if variant is None:
        return Identity(archive.name, {}, None)
    metadata = archive.dist_info_text("METADATA")
    name = variant.distribution(metadata_field(metadata, "Name"))
    version = variant.version(metadata_field(metadata, "Version"))
    renamed = dataclasses.replace(archive.name, distribution=file_name_part(name), version=version)
    old_data = archive.dist_info[: -len(".dist-info")] + ".data/"
    new_data = f"{renamed.distribution}-{version}.data/"
    renames = {f"{archive.dist_info}/": f"{renamed.distribution}-{version}.dist-info/", old_data: new_data}
    announce(variant, name, version)
    return Identity(renamed, renames, (name, version))
