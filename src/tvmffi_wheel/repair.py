"""The pipeline after compilation, for one wheel: inspect -> decide -> patch -> inspect the
patched binaries -> verify -> write.

The PEP 517 backend runs it on the wheel scikit-build-core just wrote; it takes any wheel, so
the `repair` command drives the same decisions. Each step is a call into its stage; nothing is
decided here. The new wheel is written under a temporary name while the stages run, and
renamed only once it is verified, complete and within the size limit.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from packaging.version import Version

from tvmffi_wheel import __version__
from tvmffi_wheel.common.build_facts import BUILD_FACTS_FILE, BuildFacts, BuildRecord
from tvmffi_wheel.common.cuda import Architecture
from tvmffi_wheel.common.grouping import alike_count, groups, said_once
from tvmffi_wheel.common.modes import RepairMode
from tvmffi_wheel.common.sbom import SBOM_FILE, sbom_json, timestamp_from
from tvmffi_wheel.common.tvm_ffi_releases import load_table
from tvmffi_wheel.deciding.abi import AbiRange, TvmFfiImport, tvm_ffi_imports, tvm_ffi_range
from tvmffi_wheel.deciding.classify import Classifier, libs_folder
from tvmffi_wheel.deciding.companions import left_out_of_build
from tvmffi_wheel.deciding.device_checks import check_built_device_code, recorded_cuda
from tvmffi_wheel.deciding.device_inventory import check_size
from tvmffi_wheel.deciding.nvidia import cuda_build_requirements, wheel_ranges
from tvmffi_wheel.deciding.plan import RepairPlan, plan_repair
from tvmffi_wheel.deciding.platforms import binaries_platform, check_architecture, check_built_for, wheel_architecture
from tvmffi_wheel.deciding.private_runtime import check_private_runtime
from tvmffi_wheel.deciding.python_tag import choose_python_tag, python_c_api_users
from tvmffi_wheel.deciding.requirements import metadata_fields, pin_metadata, requirement_names, requires_dist
from tvmffi_wheel.deciding.sbom import SbomInputs, plan_sbom
from tvmffi_wheel.deciding.verify import verify_wheel
from tvmffi_wheel.errors import TvmFfiWheelError, info, warnings_so_far
from tvmffi_wheel.inspecting.binary import exports_if
from tvmffi_wheel.inspecting.device_code import DeviceImage, bytes_by_arch, format_size
from tvmffi_wheel.inspecting.library_finder import LibraryFinder
from tvmffi_wheel.inspecting.sbom_files import WheelFiles, wheel_files
from tvmffi_wheel.inspecting.wheel import Inspection, WheelBinary, all_device_code, inspect_patched, inspect_wheel
from tvmffi_wheel.inspecting.wheel_reader import WheelArchive, WheelName
from tvmffi_wheel.writing.dll_folders import add_dll_folders
from tvmffi_wheel.writing.loader import check_loader_place, loader_facts, render_loader
from tvmffi_wheel.writing.patch import apply_plan
from tvmffi_wheel.writing.variant import Identity, Variant, identity_for, with_fields
from tvmffi_wheel.writing.wheel_writer import WheelChanges, WheelWriter, rewrite_wheel_file


@dataclasses.dataclass(frozen=True)
class RepairOptions:
    """What a repair needs, for the command and the backend alike."""

    mode: RepairMode
    excludes: tuple[str, ...]
    plat: str
    tvm_ffi_version: Version  # the apache-tvm-ffi the wheel was built against
    max_wheel_size_mb: int = 0  # 0: no limit
    lib_path: tuple[Path, ...] = ()  # folders to find libraries to vendor in, before the system's (--lib-path)


@dataclasses.dataclass(frozen=True)
class BuildExtras:
    """What only the backend's build knows, for the repair of the wheel it compiled."""

    record: BuildRecord  # the toolkit and the link, for the wheel's tvmffi_wheel.json
    declared_architectures: tuple[Architecture, ...] | None = None  # every binary's device code covers them
    strict_architectures: bool = False  # device code nothing declared is an error, not a warning
    variant: Variant | None = None  # a CUDA variant's name or version
    tvm_ffi_library: Path | None = None  # the libtvm_ffi built against (None: its exports from the table)
    loader: str = ""  # the module to generate, e.g. "my_pkg/_native.py" ("": none)
    packages: tuple[str, ...] = ()  # the wheel's package folders, as scikit-build-core found them
    install_dir: str = ""  # the project's wheel.install-dir
    # The architecture a cross build targeted ("": the input wheel's tag says it); scikit-build-core
    # tagged the wheel for the host, which the binaries' architecture replaces.
    arch: str = ""
    private_cxx_runtime: str = ""  # the C++ runtime zig linked in ("": the system's); private_runtime.py
    library_expected: bool = True  # False for an in-place editable install, whose libraries stay in the sources


def repair_wheel(
    wheel: Path, out_dir: Path, options: RepairOptions, build: BuildExtras | None = None, *,
    prepared_metadata: str | None = None,
) -> Path:
    """Write the repaired, tagged, pinned and verified version of ``wheel`` into ``out_dir``."""
    with WheelArchive(wheel) as archive, tempfile.TemporaryDirectory(prefix="tvmffi-wheel-") as tmp:
        identity = identity_for(archive, build.variant if build is not None else None)
        writer = WheelWriter(archive, out_dir, identity.renames)
        try:
            writer.create()
            writer.copy_ahead()  # most members do not change: copy them while we inspect
            final_name, changes, device_code = _stages(archive, identity, options, build, prepared_metadata, Path(tmp))
            check_size(writer.finish(changes), options.max_wheel_size_mb, device_code)
            out_path = out_dir / final_name.file_name
            writer.publish(out_path)
            return out_path
        except BaseException:
            writer.abort()
            raise


@dataclasses.dataclass(frozen=True)
class _Patched:
    replaced: dict[str, Path]
    added: dict[str, Path]
    dll_folder_packages: tuple[str, ...] = ()  # Windows: the packages that add the DLL folders


def _stages(
    archive: WheelArchive, identity: Identity, options: RepairOptions, build: BuildExtras | None,
    prepared_metadata: str | None, scratch: Path,
) -> tuple[WheelName, WheelChanges, list[DeviceImage]]:
    if build is not None and build.loader:
        check_loader_place(build.loader, archive.member_names, build.packages)
    previous = archive.build_facts() or BuildFacts.unknown()
    inspection = inspect_wheel(archive, scratch / "wheel")
    left_out = _left_out(archive, inspection) if build is not None else {}
    python_tag, imports = _check_inputs(archive, inspection, build)
    metadata = _pinned_metadata(archive, identity, inspection.binaries, imports, options, build)
    if prepared_metadata is not None and metadata != prepared_metadata:
        raise RuntimeError("the wheel's METADATA differs from the one prepared earlier")
    tags, plan = _decide(archive, identity, inspection.binaries, options, build, metadata)
    patched = _patch(archive, inspection.binaries, plan, identity.name.distribution, build, scratch)
    final = inspect_patched(inspection.binaries, patched.replaced, patched.added)
    members = [m for m in archive.member_names if m not in left_out] + list(patched.added)
    classifier = Classifier.for_wheel([(b.path, b.facts) for b in final], distribution=identity.name.distribution,
                                      excludes=options.excludes,
                                      whitelist=plan.policy.whitelist if plan and plan.policy else frozenset())
    problems = verify_wheel(
        final, members, classifier=classifier, policy=plan.policy if plan is not None else None,
        python_tag=python_tag, repaired=options.mode == "auto",
        library_expected=build.library_expected if build is not None else True,
        packages=build.packages if build is not None else (),
        install_dir=(build.install_dir if build is not None else "") or previous.install_dir,
        dll_folder_packages=patched.dll_folder_packages,
    )
    if problems:
        listed = "\n    ".join(said_once(problems, [b.path for b in final]))
        raise TvmFfiWheelError(f"the wheel failed verification, so it was not written:\n    {listed}")
    final_name = identity.name.with_tags(python_tag, tags)
    contents = wheel_files(archive, final, inspection.digests, patched.replaced, patched.added,
                           [(v.path, v.soname, v.source) for v in (plan.vendored if plan is not None else ())],
                           libs_folder(identity.name.distribution))
    return final_name, _changes(archive, inspection, final_name, metadata, patched, left_out, previous, options,
                                build, contents), all_device_code(inspection.binaries, inspection.device_files)


def _left_out(archive: WheelArchive, inspection: Inspection) -> dict[str, str]:
    """What the backend's own build installed that its wheel does not carry (companions.py)."""
    left_out = left_out_of_build(archive.member_names, inspection.binaries, inspection.debug_files)
    for group in groups(left_out.items(), key=lambda pair: pair[1]):
        size = format_size(sum(archive.info(member).file_size for member, _ in group))
        info(f"left out of the wheel: {alike_count(len(group), group[0][0], 'files')}, {group[0][1]} ({size})")
    return left_out


def _check_inputs(
    archive: WheelArchive, inspection: Inspection, build: BuildExtras | None
) -> tuple[tuple[str, str], list[TvmFfiImport]]:
    """What must hold before anything is decided; the Python tag and the tvm-ffi imports."""
    binaries = inspection.binaries
    if build is not None and build.arch:
        check_built_for(build.arch, binaries)
    else:
        check_architecture(archive.name.platforms, binaries)
    python_tag, note = choose_python_tag(archive.name.python_tag, python_c_api_users(binaries))
    if note:
        info(note)
    check_built_device_code(binaries, inspection.device_files, build.record.cuda if build is not None else None,
                            build.declared_architectures if build is not None else None,
                            strict=build is not None and build.strict_architectures)
    imports = tvm_ffi_imports(binaries)
    if build is not None and build.private_cxx_runtime:
        check_private_runtime(binaries, imports, build.private_cxx_runtime)
    return python_tag, imports


def _abi_range(
    binaries: list[WheelBinary], imports: list[TvmFfiImport], options: RepairOptions, build: BuildExtras | None
) -> AbiRange | None:
    """The releases the binaries' tvm-ffi imports allow, against the libtvm_ffi built against."""
    if not imports:
        return None
    platform, arch = binaries_platform(binaries), wheel_architecture(binaries)
    table = load_table()
    exports = exports_if(build.tvm_ffi_library if build is not None else None, platform.format, arch)
    if exports is None and (release := table.release(platform.abi_table_key(arch), options.tvm_ffi_version)):
        exports = release.exports
    return tvm_ffi_range(imports, exports, options.tvm_ffi_version, table.for_arch(platform.abi_table_key(arch)),
                         f"{platform.name} {arch}")


def _pinned_metadata(
    archive: WheelArchive, identity: Identity, binaries: list[WheelBinary], imports: list[TvmFfiImport],
    options: RepairOptions, build: BuildExtras | None,
) -> str:
    """METADATA with the apache-tvm-ffi range, and NVIDIA's wheels where the binaries need them."""
    cuda = build.record.cuda if build is not None else None
    original = archive.dist_info_text("METADATA")
    return pin_metadata(
        with_fields(original, *identity.fields) if identity.fields else original,
        options.tvm_ffi_version,
        abi=_abi_range(binaries, imports, options, build),
        extra_requirements=cuda_build_requirements(cuda if cuda is not None and cuda.declared else None),
        ranges=wheel_ranges((n for b in binaries for n in b.facts.needed), Version(cuda.toolkit) if cuda else None),
    )


def _decide(
    archive: WheelArchive, identity: Identity, binaries: list[WheelBinary], options: RepairOptions,
    build: BuildExtras | None, metadata: str,
) -> tuple[tuple[str, ...], RepairPlan | None]:
    """The wheel's platform tags, and the plan that earns them (None: nothing to repair)."""
    tags = archive.name.platforms
    if build is not None and build.arch and binaries:  # scikit-build-core tagged it for the host
        tags = binaries_platform(binaries).cross_tags(binaries, build.arch)
    if options.mode == "skip":
        info(f"repair skipped (repair=skip): the wheel keeps the tag {tags[0]}")
        return tags, None
    if not binaries:
        return tags, None
    classifier = Classifier.for_wheel([(b.path, b.facts) for b in binaries], distribution=identity.name.distribution,
                                      excludes=options.excludes)
    platform = classifier.system
    problems = [p for b in binaries for p in platform.binary_problems(b.path, b.facts)]
    if problems:
        listed = "\n    ".join(said_once(problems, [b.path for b in binaries]))
        raise TvmFfiWheelError(f"the wheel's {platform.name} binaries cannot be repaired:\n    {listed}",
                               "rebuild them (a signature breaks when a file is changed after linking)")
    search = platform.search
    plan = plan_repair(
        binaries, classifier, plat=options.plat,
        finder=LibraryFinder.for_machine(search.variables, search.loader_paths, options.lib_path, os.environ),
        requirements=requirement_names(metadata),
        deployment_target=os.environ.get("MACOSX_DEPLOYMENT_TARGET") or None,
    )
    return plan.platform_tags, plan


def _patch(
    archive: WheelArchive, binaries: list[WheelBinary], plan: RepairPlan | None, distribution: str,
    build: BuildExtras | None, scratch: Path,
) -> _Patched:
    """The plan carried out on copies of the binaries, and on the packages that must add DLL folders."""
    if plan is None:
        return _Patched({}, {})
    replaced, added = apply_plan(plan, binaries, scratch, building=build is not None)
    packages = plan.system.packages_to_patch(binaries, libs_folder(distribution)) if plan.dll_folders else ()
    if packages:
        more_replaced, more_added = add_dll_folders(
            archive.member_names, archive.read_text, packages, plan.dll_folders, scratch
        )
        replaced, added = {**replaced, **more_replaced}, {**added, **more_added}
    info(plan.description)
    return _Patched(replaced, added, packages)


def _changes(
    archive: WheelArchive, inspection: Inspection, final_name: WheelName, metadata: str, patched: _Patched,
    left_out: Mapping[str, str], previous: BuildFacts, options: RepairOptions, build: BuildExtras | None,
    contents: WheelFiles,
) -> WheelChanges:
    """What the new wheel holds instead of the old one's members."""
    binaries, dist_info = inspection.binaries, archive.dist_info
    device_code = all_device_code(binaries, inspection.device_files)
    record = None
    if build is not None:
        record = dataclasses.replace(build.record, cuda=recorded_cuda(build.record.cuda, device_code))
    facts = previous.next(
        generator=f"tvmffi-wheel {__version__}", tvm_ffi_version=str(options.tvm_ffi_version),
        platform=final_name.platforms[0], compilers=tuple(sorted({c for b in binaries for c in b.facts.compilers})),
        device_code=tuple(sorted({image.name for image in device_code})),
        device_code_by_arch=bytes_by_arch(device_code), warnings=warnings_so_far(), build=record,
        install_dir=build.install_dir if build is not None else "",
    )
    new_files = {}
    if build is not None and build.loader:
        loader = loader_facts(final_name, binaries, inspection.device_files, metadata, facts, build.loader)
        new_files[build.loader] = render_loader(loader)
        info(f"loader {build.loader} written for {', '.join(sorted(loader['libraries'])) or 'no library'}")
    return WheelChanges(
        digests=inspection.digests,
        removed=frozenset(left_out),
        replaced=patched.replaced,
        added=patched.added,
        new_files=new_files,
        dist_info_files={
            f"{dist_info}/WHEEL": rewrite_wheel_file(archive.dist_info_text("WHEEL"), final_name),
            f"{dist_info}/METADATA": metadata,
            f"{dist_info}/{BUILD_FACTS_FILE}": facts.to_json(),
            f"{dist_info}/{SBOM_FILE}": _sbom(metadata, contents, facts),
        },
    )


def _sbom(metadata: str, contents: WheelFiles, facts: BuildFacts) -> str:
    fields = metadata_fields(metadata)
    return sbom_json(plan_sbom(SbomInputs(
        name=fields.get("Name", ""), version=fields.get("Version", ""), vendored=contents.vendored,
        binaries=contents.binaries, record=facts.build, requires_dist=tuple(requires_dist(metadata)),
        generator=facts.generator, timestamp=timestamp_from(os.environ),
    )))
