"""CUDA words every stage uses: an architecture list entry, and how a CUDA build was made."""

from __future__ import annotations

import dataclasses
import re
from typing import Literal

from tvmffi_wheel.common.modes import CudaVariant
from tvmffi_wheel.errors import TvmFfiWheelError

CudaRuntime = Literal["static", "shared", "none"]
ToolkitSource = Literal["system", "pip"]


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One CMake CUDA_ARCHITECTURES entry: `80` (SASS and PTX), `80-real`, `90a-virtual`."""

    number: int
    variant: str  # "", "a" (arch-specific) or "f" (family)
    sass: bool
    ptx: bool

    def __str__(self) -> str:
        suffix = "" if self.sass and self.ptx else ("-real" if self.sass else "-virtual")
        return f"{self.number}{self.variant}{suffix}"


_ENTRY = re.compile(r"^(\d+)([af]?)(-real|-virtual)?$")
_SPECIAL = ("native", "all", "all-major")


def parse_architectures(text: str) -> list[Architecture] | str:
    """The entries of a CMake architecture list, or one of `native`, `all`, `all-major`."""
    entries = [e.strip() for e in text.replace(",", ";").split(";") if e.strip()]
    if len(entries) == 1 and entries[0] in _SPECIAL:
        return entries[0]
    result = []
    for entry in entries:
        match = _ENTRY.match(entry)
        if match is None:
            raise TvmFfiWheelError(
                f"`{entry}` in the CUDA architectures {text!r} is not an architecture",
                "write entries as CMake does: 80 (SASS and PTX), 80-real (SASS), "
                "120-virtual (PTX), 90a-real, 100f-real, separated by `;`",
            )
        number, variant, kind = int(match.group(1)), match.group(2), match.group(3)
        result.append(Architecture(number, variant, kind != "-virtual", kind != "-real"))
    if not result:
        raise TvmFfiWheelError(f"the CUDA architecture list {text!r} is empty")
    return result


@dataclasses.dataclass(frozen=True)
class CudaFacts:
    """How a CUDA build was made, as recorded in the wheel's tvmffi_wheel.json."""

    toolkit: str  # the CUDA release, e.g. "13.0"
    toolkit_source: ToolkitSource
    architectures: str  # as declared, in CMake syntax
    runtime: CudaRuntime
    variant: CudaVariant = "none"
    # The build asked for CUDA (architectures or a runtime); False: nvcc was found, nothing more,
    # and the facts are recorded only if the binaries turn out to hold device code.
    declared: bool = True

    def to_json(self) -> dict[str, str]:
        return {name: value for name, value in dataclasses.asdict(self).items() if name != "declared"}
