"""The pipeline after compilation, for one wheel: inspect -> decide -> patch -> verify -> write.

The PEP 517 backend runs it on the wheel scikit-build-core just wrote; it takes any
wheel, so the `repair` command drives the same decisions. The new wheel is written under
a temporary name while the stages run, and renamed only once it is verified, complete and
within the size limit.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from packaging.version import Version

from tvmffi_wheel import __version__
from tvmffi_wheel.common._auditwheel import PlatformPolicy
from tvmffi_wheel.common.cuda import Architecture, CudaFacts
from tvmffi_wheel.common.modes import RepairMode
from tvmffi_wheel.common.tvm_ffi_releases import load_table
from tvmffi_wheel.deciding.abi import (
    AbiRange,
    TvmFfiImport,
    check_against_built,
    decide_abi_range,
    tvm_ffi_imports,
)
from tvmffi_wheel.deciding.classify import Classifier, libs_folder
from tvmffi_wheel.deciding.companions import left_out_of_build
from tvmffi_wheel.deciding.device_inventory import architectures_found, check_size, compare_inventory
from tvmffi_wheel.deciding.nvidia import cuda_build_requirements, wheel_ranges
from tvmffi_wheel.deciding.plan import plan_repair
from tvmffi_wheel.deciding.platforms import binaries_platform, check_architecture, check_built_for, wheel_architecture
from tvmffi_wheel.deciding.platforms.base import Platform
from tvmffi_wheel.deciding.private_runtime import check_private_runtime
from tvmffi_wheel.deciding.python_tag import choose_python_tag, python_c_api_users
from tvmffi_wheel.deciding.requirements import pin_metadata, requirement_names
from tvmffi_wheel.deciding.verify import verify_wheel
from tvmffi_wheel.errors import TvmFfiWheelError, info, warn, warnings_so_far
from tvmffi_wheel.inspecting.binary import is_binary, read_binary_facts
from tvmffi_wheel.inspecting.device_code import (
    DeviceImage,
    bytes_by_arch,
    describe,
    format_size,
    savings,
)
from tvmffi_wheel.inspecting.library_finder import LibraryFinder
from tvmffi_wheel.inspecting.wheel import (
    DeviceFile,
    Inspection,
    WheelBinary,
    all_device_code,
    device_code_groups,
    inspect_wheel,
)
from tvmffi_wheel.inspecting.wheel_reader import BUILD_FACTS_FILE, WheelArchive, WheelName
from tvmffi_wheel.writing.dll_folders import add_dll_folders
from tvmffi_wheel.writing.loader import check_loader_place, loader_facts, render_loader
from tvmffi_wheel.writing.patch import apply_plan
from tvmffi_wheel.writing.variant import Variant, announce, file_name_part, metadata_field, with_fields
from tvmffi_wheel.writing.wheel_writer import WheelChanges, WheelWriter, rewrite_wheel_file


@dataclasses.dataclass(frozen=True)
class BuildRecord:
    """What only the build knows about a wheel, recorded in its tvmffi_wheel.json."""

    cuda: CudaFacts | None  # None: no CUDA declared in the build
    # nvcc was found but nothing declared: recorded, with the architectures found, if the
    # binaries hold device code.
    undeclared_cuda: CudaFacts | None = None
    link: Mapping[str, str] | None = None  # how the binaries were linked (toolchain.py)


@dataclasses.dataclass(frozen=True)
class RepairOptions:
    mode: RepairMode
    excludes: tuple[str, ...]
    plat: str
    tvm_ffi_version: Version
    # The declared CUDA architectures every binary's device code must cover (None: unchecked).
    cuda_architectures: tuple[Architecture, ...] | None = None
    max_wheel_size_mb: int = 0  # 0: no limit
    variant: Variant | None = None  # a CUDA variant's name or version
    strict_architectures: bool = False  # device code nothing declared is an error, not a warning
    build: BuildRecord | None = None  # None: built elsewhere; keep what the wheel recorded
    # The libtvm_ffi.so the wheel was built against (None: take its exports from the table).
    tvm_ffi_library: Path | None = None
    loader: str = ""  # the module to generate, e.g. "my_pkg/_native.py" ("": none)
    packages: tuple[str, ...] = ()  # the wheel's package folders, as scikit-build-core found them
    install_dir: str = ""  # the project's wheel.install-dir ("": unset, or built elsewhere)
    # The architecture the build targeted ("": the input wheel's tag says it); a cross build's
    # input wheel carries the host's tag, which the binaries' architecture replaces.
    arch: str = ""
    # The C++ runtime zig linked into the binaries ("": the system's, shared); see private_runtime.py.
    private_cxx_runtime: str = ""
    # False for an in-place editable install, whose libraries stay in the source tree.
    library_expected: bool = True
    # Folders to look for libraries to vendor in, before the system's own list (--lib-path).
    lib_path: tuple[Path, ...] = ()


def _check_device_code(binaries: list[WheelBinary], files: list[DeviceFile], options: RepairOptions) -> None:
    """Log the device code inventory and its size per architecture; check it against the
    declared architectures."""
    for binary in binaries:
        if binary.facts.device_code:
            info(f"device code of {binary.path}: {describe(binary.facts.device_code)}")
    for file in files:
        info(f"device code in {file.path}: {describe(file.images) or 'none that tvmffi-wheel can read'}")
    everything = all_device_code(binaries, files)
    if everything:
        total = sum(image.size for image in everything)
        by_arch = "; ".join(savings(bytes_by_arch(everything)))
        info(f"device code in all: {format_size(total)}; by architecture: {by_arch}")
    cuda = _build_cuda(options)
    if cuda is not None and not cuda.architectures and everything:
        warn(f"the CUDA architectures are not declared, so nvcc chose them: the device code is for "
             f"{architectures_found(everything)}; declare the ones to ship, e.g. cuda.architectures = "
             '"75-real;80-real;90-real;120-virtual"')
    declared = options.cuda_architectures
    if declared is None:
        return
    declared_text = ";".join(str(a) for a in declared)
    for mismatch in compare_inventory(declared, device_code_groups(binaries, files)):
        if mismatch.missing:
            raise TvmFfiWheelError(
                f"{mismatch.where} lacks device code for {', '.join(mismatch.missing)}, which "
                f"cuda.architectures ({declared_text}) declares",
                "compile every CUDA target with CMAKE_CUDA_ARCHITECTURES (do not override "
                "CUDA_ARCHITECTURES or pass -gencode flags per target), or declare what it has",
            )
        message = (f"{mismatch.where} has device code for {', '.join(mismatch.stray)}, which "
                   f"cuda.architectures ({declared_text}) does not declare")
        fix = ("give every CUDA target and nvcc call the declared architectures (without -arch, nvcc "
               "compiles for sm_52 on CUDA 12 and sm_75 on CUDA 13), or declare these")
        if options.strict_architectures:
            raise TvmFfiWheelError(message, fix)
        warn(f"{message}; {fix} (cuda.strict-architectures = true makes this an error)")


def build_facts_json(
    options: RepairOptions,
    binaries: list[WheelBinary],
    device_code: Sequence[DeviceImage],
    platform: str,
    previous: Mapping[str, Any],
) -> str:
    """The dist-info file recording how the wheel was built, for whoever debugs it later."""
    facts = {
        **previous,  # what an earlier build recorded and this run cannot know (the toolkit)
        # Shown by `check`: pip hides the build's output unless asked (-v).
        "warnings": list(dict.fromkeys([*previous.get("warnings", ()), *warnings_so_far()])),
        "generator": f"tvmffi-wheel {__version__}",
        "tvm_ffi_version": str(options.tvm_ffi_version),
        "platform": platform,
        "compilers": sorted({c for b in binaries for c in b.facts.compilers}),
        "device_code": sorted({image.name for image in device_code}),
        "device_code_by_arch": bytes_by_arch(device_code),
    }
    if options.install_dir:
        facts["install_dir"] = options.install_dir  # where check finds the project's own folder
    if options.build is not None:
        cuda = _recorded_cuda(options.build, device_code)
        facts["cuda"] = cuda.to_json() if cuda is not None else None
        facts["link"] = dict(options.build.link or {})
    return json.dumps(facts, indent=2, sort_keys=True) + "\n"


def _build_cuda(options: RepairOptions) -> CudaFacts | None:
    """The CUDA toolkit the build found, declared or not (None: none, or built elsewhere)."""
    return (options.build.cuda or options.build.undeclared_cuda) if options.build is not None else None


def _recorded_cuda(build: BuildRecord, device_code: Sequence[DeviceImage]) -> CudaFacts | None:
    """The CUDA facts of the build: the architectures as declared, or, when none were, read
    from the device code the build made."""
    cuda = build.cuda or build.undeclared_cuda
    if cuda is None or cuda.architectures or not device_code:
        return build.cuda  # as declared; an undeclared toolkit that made no device code: none
    return dataclasses.replace(cuda, architectures=architectures_found(device_code))


def _built_against_exports(options: RepairOptions, system: Platform, arch: str) -> frozenset[str] | None:
    """What the libtvm_ffi the wheel was built against exports: the file itself when we have
    it (for this system and architecture), else the table's entry for its version."""
    library = options.tvm_ffi_library
    if library is not None and library.is_file():
        facts = read_binary_facts(library, str(library))
        if (facts.format, facts.architecture) == (system.format, arch):
            return facts.exports
    release = load_table().release(system.abi_table_key(arch), options.tvm_ffi_version)
    return release.exports if release is not None else None


def _abi_range(binaries: list[WheelBinary], imports: list[TvmFfiImport], options: RepairOptions) -> AbiRange | None:
    """The releases the binaries' tvm-ffi ``imports`` allow; logs why any is left out."""
    if not imports:
        return None
    cpp = [i for i in imports if i.abi == "c++"]
    arch, system = wheel_architecture(binaries), binaries_platform(binaries)
    version = options.tvm_ffi_version
    exports = _built_against_exports(options, system, arch)
    if exports is None:
        warn(f"apache-tvm-ffi {version} is neither installed here nor in tvmffi-wheel's table, "
             "so the symbols the binaries import from it are not checked")
    else:
        check_against_built(imports, exports, version)
    if cpp:
        users = sorted({path for i in cpp for path in i.binaries})
        symbols = ", ".join(i.symbol for i in cpp[:3]) + (" ..." if len(cpp) > 3 else "")
        warn(f"C++ symbols imported from libtvm_ffi by {', '.join(users)}, outside tvm-ffi's "
             f"stable C ABI: {symbols}; the wheel works only with releases that keep these exact C++ "
             "signatures, so the requirement admits only the known releases that do")
    releases = load_table().for_arch(system.abi_table_key(arch))
    if not releases:
        warn(f"tvmffi-wheel's table knows no apache-tvm-ffi release for {system.name} {arch}, so the "
             "requirement's upper bound is only the next ABI")
    abi = decide_abi_range((i.symbol for i in imports), version, releases)
    for line in abi.reasons():
        info(line)
    return abi


@dataclasses.dataclass(frozen=True)
class _Identity:
    """Who the new wheel is: the input's name and version, or its CUDA variant's."""

    name: WheelName  # the tags are still the input's
    renames: dict[str, str]  # member-name prefixes to rename (.dist-info, .data)
    fields: tuple[str, str] | None  # (Name, Version) for METADATA when they change

    @property
    def dist_info(self) -> str:
        return f"{self.name.distribution}-{self.name.version}.dist-info"


def _identity(archive: WheelArchive, variant: Variant | None) -> _Identity:
    if variant is None:
        return _Identity(archive.name, {}, None)
    metadata = archive.dist_info_text("METADATA")
    name = variant.distribution(metadata_field(metadata, "Name"))
    version = variant.version(metadata_field(metadata, "Version"))
    renamed = dataclasses.replace(archive.name, distribution=file_name_part(name), version=version)
    old_data = archive.dist_info[: -len(".dist-info")] + ".data/"
    new_data = f"{renamed.distribution}-{version}.data/"
    renames = {f"{archive.dist_info}/": f"{renamed.distribution}-{version}.dist-info/", old_data: new_data}
    announce(variant, name, version)
    return _Identity(renamed, renames, (name, version))


def repair_wheel(
    wheel: Path,
    out_dir: Path,
    options: RepairOptions,
    *,
    prepared_metadata: str | None = None,
) -> Path:
    """Write the repaired, tagged, pinned and verified version of ``wheel`` into ``out_dir``."""
    with WheelArchive(wheel) as archive, tempfile.TemporaryDirectory(prefix="tvmffi-wheel-") as tmp:
        identity = _identity(archive, options.variant)
        writer = WheelWriter(archive, out_dir, identity.renames)
        try:
            writer.create()
            writer.copy_ahead()  # most members do not change: copy them while we inspect
            final_name, changes, device_code = _repair(archive, identity, options, prepared_metadata, Path(tmp))
            check_size(writer.finish(changes), options.max_wheel_size_mb, device_code)
            out_path = out_dir / final_name.file_name
            writer.publish(out_path)
            return out_path
        except BaseException:
            writer.abort()
            raise


@dataclasses.dataclass(frozen=True)
class _Decision:
    platforms: tuple[str, ...]
    policy: PlatformPolicy | None  # None: the wheel keeps a tag that promises nothing (repair=skip)
    replaced: dict[str, Path]
    added: dict[str, Path]
    dll_folder_packages: tuple[str, ...] = ()  # Windows: the packages that add the DLL folders


def _decide_and_patch(
    archive: WheelArchive, distribution: str, binaries: list[WheelBinary], options: RepairOptions,
    metadata: str, scratch: Path,
) -> _Decision:
    platforms = archive.name.platforms
    if options.arch and binaries:  # scikit-build-core tagged it for the host
        platforms = binaries_platform(binaries).cross_tags(binaries, options.arch)
    if options.mode == "skip":
        info(f"repair skipped (repair=skip): the wheel keeps the tag {platforms[0]}")
        return _Decision(platforms, None, {}, {})
    if not binaries:
        return _Decision(platforms, None, {}, {})
    classifier = Classifier.for_wheel(
        [(b.path, b.facts) for b in binaries],
        distribution=distribution,
        excludes=options.excludes,
    )
    platform = classifier.system
    problems = [p for b in binaries for p in platform.binary_problems(b.path, b.facts)]
    if problems:
        listed = "\n    ".join(problems)
        raise TvmFfiWheelError(f"the wheel's {platform.name} binaries cannot be repaired:\n    {listed}",
                               "rebuild them (a signature breaks when a file is changed after linking)")
    search = platform.search
    plan = plan_repair(
        binaries,
        classifier,
        plat=options.plat,
        finder=LibraryFinder.for_machine(search.variables, search.loader_paths, options.lib_path, os.environ),
        requirements=requirement_names(metadata),
        deployment_target=os.environ.get("MACOSX_DEPLOYMENT_TARGET") or None,
    )
    replaced, added = apply_plan(plan, binaries, scratch, building=options.build is not None)
    packages = platform.packages_to_patch(binaries, libs_folder(distribution)) if plan.dll_folders else ()
    if packages:
        more_replaced, more_added = add_dll_folders(
            archive.member_names, archive.read_text, packages, plan.dll_folders, scratch
        )
        replaced, added = {**replaced, **more_replaced}, {**added, **more_added}
    info(plan.description)
    return _Decision(plan.platform_tags, plan.policy, replaced, added, packages)


def _verify(
    archive: WheelArchive, distribution: str, binaries: list[WheelBinary], decision: _Decision,
    python_tag: tuple[str, str], options: RepairOptions, left_out: Mapping[str, str],
) -> None:
    final = [
        WheelBinary(b.path, read_binary_facts(decision.replaced[b.path], b.path))
        if b.path in decision.replaced else b
        for b in binaries
    ] + [WheelBinary(member, read_binary_facts(path, member)) for member, path in decision.added.items()
         if is_binary(path)]
    policy = decision.policy
    classifier = Classifier.for_wheel(
        [(b.path, b.facts) for b in final],
        distribution=distribution,
        excludes=options.excludes,
        whitelist=policy.whitelist if policy is not None else frozenset(),
    )
    problems = verify_wheel(
        final,
        [m for m in archive.member_names if m not in left_out] + list(decision.added),
        classifier=classifier,
        policy=policy,
        python_tag=python_tag,
        repaired=options.mode == "auto",
        library_expected=options.library_expected,
        packages=options.packages,
        install_dir=options.install_dir or archive.build_facts().get("install_dir", ""),
        dll_folder_packages=decision.dll_folder_packages,
    )
    if problems:
        listed = "\n    ".join(problems)
        raise TvmFfiWheelError(f"the wheel failed verification, so it was not written:\n    {listed}")


def _left_out(archive: WheelArchive, inspection: Inspection, options: RepairOptions) -> dict[str, str]:
    """What the backend's own build installed that its wheel does not carry (companions.py)."""
    left_out = left_out_of_build(archive.member_names, inspection.binaries, inspection.debug_files)
    for member, why in (left_out.items() if options.build is not None else ()):
        info(f"left out of the wheel: {member}, {why} ({format_size(archive.info(member).file_size)})")
    return left_out if options.build is not None else {}


def _repair(
    archive: WheelArchive, identity: _Identity, options: RepairOptions, prepared_metadata: str | None, scratch: Path
) -> tuple[WheelName, WheelChanges, list[DeviceImage]]:
    if options.loader:
        check_loader_place(options.loader, archive.member_names, options.packages)
    inspection = inspect_wheel(archive, scratch / "wheel")
    binaries = inspection.binaries
    left_out = _left_out(archive, inspection, options)
    if options.arch:
        check_built_for(options.arch, binaries)
    else:
        check_architecture(archive.name.platforms, binaries)
    python_tag, note = choose_python_tag(archive.name.python_tag, python_c_api_users(binaries))
    if note:
        info(note)
    _check_device_code(binaries, inspection.device_files, options)
    imports = tvm_ffi_imports(binaries)
    if options.private_cxx_runtime:
        check_private_runtime(binaries, imports, options.private_cxx_runtime)
    cuda = _build_cuda(options)
    toolkit = Version(cuda.toolkit) if cuda is not None else None
    original = archive.dist_info_text("METADATA")
    metadata = pin_metadata(
        with_fields(original, *identity.fields) if identity.fields else original,
        options.tvm_ffi_version,
        abi=_abi_range(binaries, imports, options),
        extra_requirements=cuda_build_requirements(options.build.cuda if options.build else None),
        ranges=wheel_ranges((n for b in binaries for n in b.facts.needed), toolkit),
    )
    if prepared_metadata is not None and metadata != prepared_metadata:
        raise RuntimeError("the wheel's METADATA differs from the one prepared earlier")

    distribution = identity.name.distribution
    decision = _decide_and_patch(archive, distribution, binaries, options, metadata, scratch)
    _verify(archive, distribution, binaries, decision, python_tag, options, left_out)
    final_name = identity.name.with_tags(python_tag, decision.platforms)
    dist_info = archive.dist_info
    device_code = all_device_code(binaries, inspection.device_files)
    new_files = {}
    if options.loader:
        facts = loader_facts(final_name, binaries, inspection.device_files, metadata, decision.platforms[0],
                             options.loader, str(options.tvm_ffi_version))
        new_files[options.loader] = render_loader(facts)
        info(f"loader {options.loader} written for {', '.join(sorted(facts['libraries'])) or 'no library'}")
    changes = WheelChanges(
        digests=inspection.digests,
        removed=frozenset(left_out),
        replaced=decision.replaced,
        added=decision.added,
        new_files=new_files,
        dist_info_files={
            f"{dist_info}/WHEEL": rewrite_wheel_file(archive.dist_info_text("WHEEL"), final_name),
            f"{dist_info}/METADATA": metadata,
            f"{dist_info}/{BUILD_FACTS_FILE}": build_facts_json(
                options, binaries, device_code, decision.platforms[0], archive.build_facts()
            ),
        },
    )
    return final_name, changes, device_code
