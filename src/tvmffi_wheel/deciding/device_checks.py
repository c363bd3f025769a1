"""Device code against what the build declared: the inventory the log shows, and what the
build and `check` report, in the same words (the comparison itself is device_inventory.py's)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from tvmffi_wheel.common.cuda import Architecture, CudaFacts
from tvmffi_wheel.common.grouping import alike_count, groups, said_once
from tvmffi_wheel.deciding.device_inventory import architectures_found, compare_inventory
from tvmffi_wheel.errors import TvmFfiWheelError, info, warn
from tvmffi_wheel.inspecting.device_code import (
    DeviceImage,
    bytes_by_arch,
    describe,
    format_size,
    savings,
    totals_by_place,
)
from tvmffi_wheel.inspecting.wheel import DeviceFile, WheelBinary, all_device_code, device_code_groups

MISSING_FIX = ("compile every CUDA target with CMAKE_CUDA_ARCHITECTURES (do not override "
               "CUDA_ARCHITECTURES or pass -gencode flags per target), or declare what it has")
STRAY_FIX = ("give every CUDA target and nvcc call the declared architectures (without -arch, nvcc "
             "compiles for sm_52 on CUDA 12 and sm_75 on CUDA 13), or declare these")


@dataclasses.dataclass(frozen=True)
class DeviceCodeFindings:
    missing: tuple[str, ...]  # a declared architecture a piece of device code lacks: a problem
    stray: tuple[str, ...]  # device code nothing declared: a warning, or a problem when strict


def device_code_findings(
    declared: Sequence[Architecture], binaries: Sequence[WheelBinary], files: Sequence[DeviceFile]
) -> DeviceCodeFindings:
    """Declared against found, for each binary and for the device code files together."""
    shown = ";".join(str(a) for a in declared)
    missing, stray = [], []
    for mismatch in compare_inventory(declared, device_code_groups(binaries, files)):
        if mismatch.missing:
            missing.append(f"{mismatch.where} lacks device code for {', '.join(mismatch.missing)}, which "
                           f"cuda.architectures ({shown}) declares")
        if mismatch.stray:
            stray.append(f"{mismatch.where} has device code for {', '.join(mismatch.stray)}, which "
                         f"cuda.architectures ({shown}) does not declare")
    return DeviceCodeFindings(tuple(missing), tuple(stray))


def undeclared_warning(cuda: CudaFacts | None, device_code: Sequence[DeviceImage]) -> str | None:
    """A build that found nvcc but declared no architectures, whose binaries hold device code."""
    if cuda is None or cuda.architectures or not device_code:
        return None
    return (f"the CUDA architectures are not declared, so nvcc chose them: the device code is for "
            f"{architectures_found(device_code)}; declare the ones to ship, e.g. cuda.architectures = "
            '"75-real;80-real;90-real;120-virtual"')


def recorded_cuda(cuda: CudaFacts | None, device_code: Sequence[DeviceImage]) -> CudaFacts | None:
    """The CUDA facts a build records: the architectures as declared, or, where none were, the
    ones its device code has; an undeclared toolkit that made no device code records none."""
    if cuda is None or cuda.architectures or not device_code:
        return cuda if cuda is not None and cuda.declared else None
    return dataclasses.replace(cuda, architectures=architectures_found(device_code))


def check_built_device_code(
    binaries: Sequence[WheelBinary], files: Sequence[DeviceFile], cuda: CudaFacts | None,
    declared: Sequence[Architecture] | None, *, strict: bool,
) -> None:
    """At build time: log the inventory and its size per architecture, then check it against
    ``declared`` (None: nothing to check against)."""
    for line in device_code_lines(binaries):
        info(line)
    for file in files:
        info(f"device code in {file.path}: {describe(file.images) or 'none that tvmffi-wheel can read'}")
    everything = all_device_code(binaries, files)
    if everything:
        total = sum(image.size for image in everything)
        by_arch = "; ".join(savings(bytes_by_arch(everything)))
        info(f"device code in all: {format_size(total)}; by architecture: {by_arch}")
    warning = undeclared_warning(cuda, everything)
    if warning is not None:
        warn(warning)
    if declared is None:
        return
    findings = device_code_findings(declared, binaries, files)
    if findings.missing:
        raise TvmFfiWheelError(findings.missing[0], MISSING_FIX)
    if strict and findings.stray:
        raise TvmFfiWheelError(findings.stray[0], STRAY_FIX)
    for stray in said_once(findings.stray, [b.path for b in binaries]):
        warn(f"{stray}; {STRAY_FIX} (cuda.strict-architectures = true makes this an error)")


def device_code_lines(binaries: Sequence[WheelBinary]) -> list[str]:
    """The log's inventory: one line for each group of binaries whose device code is of the
    same kinds, with the bytes of the group summed."""
    def kinds(binary: WheelBinary) -> tuple[tuple[str, str], ...]:
        return tuple((name, section) for name, _, section in totals_by_place(binary.facts.device_code))

    lines = []
    for group in groups([b for b in binaries if b.facts.device_code], key=kinds):
        described = describe([image for b in group for image in b.facts.device_code])
        lines.append(f"device code of {alike_count(len(group), group[0].path)}: {described}"
                     + (" in all" if len(group) > 1 else ""))
    return lines
