"""`tvmffi-wheel check`: what a wheel's binaries need and whether the wheel is sound.

It reads the wheel with the same inspect stage, classifies with the same `Classifier`
and judges with the same platform and verify functions as the backend; nothing here
decides anything of its own.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement

from tvmffi_wheel.common._auditwheel import PlatformPolicy
from tvmffi_wheel.common.build_facts import BuildFacts
from tvmffi_wheel.common.cuda import Architecture, parse_architectures
from tvmffi_wheel.common.dll_folders import has_dll_folders
from tvmffi_wheel.common.grouping import alike_count, groups, said_once
from tvmffi_wheel.common.sbom import SBOM_FILE, SPEC_VERSION
from tvmffi_wheel.common.tvm_ffi import TVM_FFI_DISTRIBUTION
from tvmffi_wheel.common.tvm_ffi_releases import load_table
from tvmffi_wheel.deciding.abi import ReleaseCheck, tvm_ffi_imports
from tvmffi_wheel.deciding.classify import Classifier, Kind, libs_folder
from tvmffi_wheel.deciding.device_checks import device_code_findings
from tvmffi_wheel.deciding.platforms import binaries_platform, check_architecture, wheel_architecture
from tvmffi_wheel.deciding.requirements import tvm_ffi_requirement
from tvmffi_wheel.deciding.sbom import SbomReport, SbomText, judge_sbom
from tvmffi_wheel.deciding.verify import leaked_exports, verify_wheel
from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting._cyclonedx import schema_problem
from tvmffi_wheel.inspecting.device_code import (
    bytes_by_arch,
    describe_totals,
    format_size,
    savings,
    size_findings,
    totals_by_place,
)
from tvmffi_wheel.inspecting.facts import BinaryFacts
from tvmffi_wheel.inspecting.library_finder import system_library_exports
from tvmffi_wheel.inspecting.wheel import (
    DebugFile,
    DeviceFile,
    WheelBinary,
    all_device_code,
    inspect_wheel,
)
from tvmffi_wheel.inspecting.wheel_reader import WheelArchive, WheelName, record_hash_hex

JSON_SCHEMA_VERSION = 2
_FLOOR_FAMILIES = ("GLIBC", "GLIBCXX", "CXXABI", "GCC")


@dataclasses.dataclass(frozen=True)
class Floor:
    family: str  # GLIBC, GLIBCXX, CXXABI or GCC
    version: str  # e.g. "2.14"
    symbols: tuple[str, ...]  # e.g. ("memcpy@GLIBC_2.14",)


@dataclasses.dataclass(frozen=True)
class BinaryReport:
    path: str
    needed: tuple[tuple[str, str], ...]  # (soname, what satisfies it: a Kind's value)
    run_paths: tuple[str, ...]
    floors: tuple[Floor, ...]
    python_c_api: tuple[str, ...]
    leaked_exports: tuple[str, ...]
    device_code: tuple[tuple[str, int, str], ...]  # ("SASS sm_90", bytes, section), summed
    tvm_ffi_imports: tuple[tuple[str, str], ...] = ()  # (symbol, "c" or "c++")
    format: str = "elf"  # "elf", "macho" or "pe"
    minimum_os: str = ""  # macOS: the oldest release it runs on
    code_signature: str = ""  # macOS: "ad hoc", "identity", "broken: <why>", or "" when unsigned


@dataclasses.dataclass(frozen=True)
class WheelReport:
    wheel: str
    tag: str  # the tag it carries
    deserved_platform: str  # the best platform its binaries fit as they are
    tvm_ffi_requirement: str | None
    binaries: tuple[BinaryReport, ...]
    problems: tuple[str, ...]
    warnings: tuple[str, ...]
    tvm_ffi_releases: tuple[ReleaseCheck, ...] = ()  # the known releases the requirement admits
    device_files: tuple[tuple[str, tuple[tuple[str, int, str], ...]], ...] = ()  # (path, totals_by_place)
    device_code_by_arch: dict[str, int] = dataclasses.field(default_factory=dict)
    wheel_bytes: int = 0
    link: dict[str, str] = dataclasses.field(default_factory=dict)  # how the build linked it (build facts)
    debug_files: tuple[tuple[str, int], ...] = ()  # (path, bytes): debug symbols beside the binaries
    sbom: SbomReport | None = None  # our SBOM; None: the wheel carries none

    @property
    def sound(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["sound"] = self.sound
        for binary in data["binaries"]:
            binary["needed"] = [{"soname": s, "satisfied_by": k} for s, k in binary["needed"]]
            binary["device_code"] = [{"image": n, "bytes": b, "section": s} for n, b, s in binary["device_code"]]
            binary["tvm_ffi_imports"] = [{"symbol": s, "abi": a} for s, a in binary["tvm_ffi_imports"]]
        data["device_files"] = [
            {"path": path, "device_code": [{"image": n, "bytes": b} for n, b, _ in images]}
            for path, images in self.device_files
        ]
        data["debug_files"] = [{"path": path, "bytes": size} for path, size in self.debug_files]
        data["tvm_ffi_releases"] = [
            {"version": str(r.version), "exports_all": r.exports_all, "missing": list(r.missing)}
            for r in self.tvm_ffi_releases
        ]
        return data


@dataclasses.dataclass(frozen=True)
class WheelContents:
    """What `check` reads from a wheel: everything its judgement depends on."""

    file_name: str
    name: WheelName
    binaries: list[WheelBinary]
    members: list[str]
    metadata: str
    record_problems: list[str]
    device_files: list[DeviceFile] = dataclasses.field(default_factory=list)
    wheel_bytes: int = 0
    build_facts: BuildFacts | None = None  # its tvmffi_wheel.json
    unreadable: list[str] = dataclasses.field(default_factory=list)  # files claiming to be binaries
    debug_files: list[DebugFile] = dataclasses.field(default_factory=list)
    dll_folder_packages: tuple[str, ...] = ()  # packages whose __init__.py adds the DLL folders
    sbom: SbomText | None = None  # our SBOM (dist-info/sboms/tvmffi-wheel.cdx.json); None: the wheel has none
    digests: dict[str, str] = dataclasses.field(default_factory=dict)  # member -> hex SHA-256 of its content


def _version_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def floors(facts: BinaryFacts) -> tuple[Floor, ...]:
    """The highest version each library family requires, with the symbols that require it."""
    result = []
    for family in _FLOOR_FAMILIES:
        needs = [n for n in facts.import_versions if n.version.split("_", 1)[0] == family
                 and n.version[len(family) + 1 :][:1].isdigit()]
        if not needs:
            continue
        top = max(needs, key=lambda n: _version_key(n.version[len(family) + 1 :]))
        symbols = tuple(f"{s}@{top.version}" for s in top.symbols)
        result.append(Floor(family, top.version[len(family) + 1 :], symbols))
    return tuple(result)


def _requirement_problems(
    requirement: Requirement | None, needs_tvm_ffi: bool, warnings: list[str]
) -> list[str]:
    if requirement is None:
        return [f"no Requires-Dist on {TVM_FFI_DISTRIBUTION}, although a binary needs "
                "libtvm_ffi"] if needs_tvm_ffi else []
    operators = {s.operator for s in requirement.specifier}
    problems = []
    if operators & {"==", "==="}:  # the project's choice: sound, but worth a word
        warnings.append(f"{requirement} pins one version; two kernel packages pinning "
                        "different ones cannot be installed together")
    elif not operators & {"<", "<=", "~="}:
        problems.append(f"{requirement} has no upper bound; a 0.X change breaks the C ABI")
    elif not operators & {">=", ">", "~="}:
        problems.append(f"{requirement} has no lower bound; older tvm-ffi releases lack the ABI "
                        "the wheel was built against")
    return problems


def _declared(facts: BuildFacts) -> list[Architecture] | None:
    """The CUDA architectures the build declared, as it recorded them (None: unknown, or all)."""
    cuda = facts.build.cuda if facts.build is not None else None
    if cuda is None or not cuda.architectures:
        return None
    try:
        parsed = parse_architectures(cuda.architectures)
    except TvmFfiWheelError:
        return None
    return parsed if isinstance(parsed, list) else None


def _dll_folder_packages(archive: WheelArchive) -> tuple[str, ...]:
    inits = [m for m in archive.member_names if m.count("/") == 1 and m.endswith("/__init__.py")]
    return tuple(m.split("/")[0] for m in inits if has_dll_folders(archive.read_text(m)))


def _read_sbom(archive: WheelArchive) -> SbomText | None:
    member = f"{archive.dist_info}/{SBOM_FILE}"
    if member not in archive.member_names:
        return None
    text = archive.read_text(member)
    try:
        return SbomText(text, schema_problem(text, SPEC_VERSION), schema_checked=True)
    except ImportError:  # the optional validator is not installed
        return SbomText(text, None, schema_checked=False)


def read_wheel(path: Path) -> WheelContents:
    with WheelArchive(path) as archive, tempfile.TemporaryDirectory(prefix="tvmffi-check-") as tmp:
        inspection = inspect_wheel(archive, Path(tmp), strict=False)
        return WheelContents(
            file_name=path.name,
            name=archive.name,
            binaries=inspection.binaries,
            members=archive.member_names,
            metadata=archive.dist_info_text("METADATA"),
            record_problems=inspection.record_problems,
            device_files=inspection.device_files,
            wheel_bytes=path.stat().st_size,
            build_facts=archive.build_facts(),
            unreadable=inspection.unreadable,
            debug_files=inspection.debug_files,
            dll_folder_packages=_dll_folder_packages(archive),
            sbom=_read_sbom(archive),
            digests={member: record_hash_hex(digest.hash) for member, digest in inspection.digests.items()},
        )


def check_wheel(path: Path, excludes: tuple[str, ...] = ()) -> WheelReport:
    contents = read_wheel(path)
    try:
        libc = binaries_platform(contents.binaries).libc if contents.binaries else None
    except TvmFfiWheelError:
        libc = None  # binaries of several systems: judge_wheel reports it
    return judge_wheel(contents, excludes, system_library_exports(libc) if libc else frozenset())


def _platform_findings(
    contents: WheelContents, excludes: tuple[str, ...], problems: list[str]
) -> tuple[PlatformPolicy | None, str, Classifier]:
    """The policy the carried tag names, the platform the binaries deserve, and the wheel's
    classifier (judging against the carried platform, else the deserved one)."""
    binaries, name = contents.binaries, contents.name
    classifier = Classifier.for_wheel(
        [(b.path, b.facts) for b in binaries], distribution=name.distribution, excludes=excludes
    )
    if not binaries:
        return None, "any", classifier
    try:
        check_architecture(name.platforms, binaries)
        arch = wheel_architecture(binaries)
    except TvmFfiWheelError as err:
        problems.append(err.problem)
        return None, "(none: see the problems)", classifier
    judgement = classifier.system.judge_tag(name.platforms[0], binaries, classifier, arch)
    problems += judgement.problems
    return judgement.policy, judgement.deserved, judgement.classifier


def _release_reports(
    binaries: list[WheelBinary], requirement: Requirement | None, problems: list[str]
) -> tuple[ReleaseCheck, ...]:
    """The known installable releases the requirement admits, each with what it lacks."""
    imports = tvm_ffi_imports(binaries)
    if requirement is None or not imports:
        return ()
    try:
        arch, system = wheel_architecture(binaries), binaries_platform(binaries)
    except TvmFfiWheelError:
        return ()  # reported by the platform findings already
    needed = frozenset(i.symbol for i in imports)
    reports = []
    for release in load_table().for_arch(system.abi_table_key(arch)):
        if release.installable and requirement.specifier.contains(release.version):
            missing = tuple(sorted(needed - release.exports))
            reports.append(ReleaseCheck(release.version, missing))
            if missing:
                problems.append(f"{requirement} admits apache-tvm-ffi {release.version}, which does not "
                                f"export {', '.join(missing[:3])}; `tvmffi-wheel repair` narrows the range")
    return tuple(reports)


def _binary_report(
    binary: WheelBinary, classifier: Classifier, libc_exports: frozenset[str], warnings: list[str]
) -> BinaryReport:
    leaked = leaked_exports(binary.facts, libc_exports)
    if leaked:
        warnings.append(f"{binary.path} exports {len(leaked)} symbols of the C++ standard "
                        f"library, its runtime or glibc (e.g. {leaked[0]}); link with "
                        "tvmffi_wheel_configure_target() to keep them private")
    return BinaryReport(
        path=binary.path,
        needed=tuple((soname, kind.value) for soname, kind in classifier.needs(binary.facts)),
        run_paths=binary.facts.run_paths,
        floors=floors(binary.facts),
        python_c_api=binary.facts.python_c_api,
        leaked_exports=tuple(leaked),
        device_code=tuple(totals_by_place(binary.facts.device_code)),
        tvm_ffi_imports=tuple((i.symbol, i.abi) for i in tvm_ffi_imports([binary])),
        format=binary.facts.format,
        minimum_os=binary.facts.minimum_os,
        code_signature=_signature_text(binary.facts),
    )


def _signature_text(facts: BinaryFacts) -> str:
    signature = facts.code_signature
    if signature is None:
        return ""
    if signature.problem:
        return f"broken: {signature.problem}"
    return "ad hoc" if signature.ad_hoc else "identity"


def judge_wheel(
    contents: WheelContents, excludes: tuple[str, ...], libc_exports: frozenset[str]
) -> WheelReport:
    """The report on a wheel's contents: a pure function, for the command and for tests."""
    problems = [f"RECORD: {problem}" for problem in contents.record_problems] + contents.unreadable
    facts = contents.build_facts or BuildFacts.unknown()
    warnings: list[str] = []
    policy, deserved, classifier = _platform_findings(contents, excludes, problems)
    problems += verify_wheel(
        contents.binaries,
        contents.members,
        classifier=classifier,
        policy=policy,
        python_tag=contents.name.python_tag,
        repaired=True,
        library_expected=not contents.unreadable,  # a library no reader reads is reported as such
        install_dir=facts.install_dir,
        dll_folder_packages=contents.dll_folder_packages,
    )
    reports = [_binary_report(b, classifier, libc_exports, warnings) for b in contents.binaries]
    needs_tvm_ffi = any(kind == Kind.TVM_FFI.value for r in reports for _, kind in r.needed)
    requirement = tvm_ffi_requirement(contents.metadata)
    problems += _requirement_problems(requirement, needs_tvm_ffi, warnings)
    releases = _release_reports(contents.binaries, requirement, problems)
    declared = _declared(facts)
    if declared is not None:  # as at build time, where strayed device code is a warning unless strict
        findings = device_code_findings(declared, contents.binaries, contents.device_files)
        problems += findings.missing
        warnings += findings.stray
    everything = all_device_code(contents.binaries, contents.device_files)
    _, over_pypi = size_findings(contents.wheel_bytes, 0, everything)
    if over_pypi is not None:
        warnings.append(over_pypi)
    warnings += [f"the build warned: {warning}" for warning in facts.warnings]
    sbom = judge_sbom(contents.sbom, contents.members, contents.digests, [b.path for b in contents.binaries],
                      libs_folder(contents.name.distribution), problems)
    interpreter, abi = contents.name.python_tag
    if abi not in ("none", "abi3") and reports and not any(r.python_c_api for r in reports):
        warnings.append(f"tagged {interpreter}-{abi}, but no binary uses the Python C API: "
                        "one py3-none wheel would serve every Python version")
    return WheelReport(
        wheel=contents.file_name,
        tag=contents.name.tag_text,
        deserved_platform=deserved,
        tvm_ffi_requirement=str(requirement) if requirement is not None else None,
        binaries=tuple(reports),
        problems=tuple(problems),
        warnings=tuple(warnings),
        tvm_ffi_releases=releases,
        device_files=tuple((f.path, tuple(totals_by_place(f.images))) for f in contents.device_files),
        device_code_by_arch=bytes_by_arch(everything),
        wheel_bytes=contents.wheel_bytes,
        link=dict(facts.build.link) if facts.build is not None else {},
        debug_files=tuple((f.path, f.size) for f in contents.debug_files),
        sbom=sbom,
    )


def render_text(report: WheelReport) -> str:
    lines = [
        report.wheel,
        f"  tag       {report.tag}",
        f"  deserves  {report.deserved_platform}",
        f"  tvm-ffi   {report.tvm_ffi_requirement or '(no requirement)'}",
    ]
    if report.link.get("linker") == "zig":
        lines.append(f"  linked    by zig for {report.link.get('target')}, {report.link.get('cxx_runtime')}")
    for group in groups(report.binaries, key=lambda b: tuple(_binary_lines(b, _device_kinds(b.device_code)))):
        lines.append(f"  {alike_count(len(group), group[0].path)}" + (":" if len(group) > 1 else ""))
        summed = _summed([row for binary in group for row in binary.device_code])
        lines += _binary_lines(group[0], describe_totals(summed) + (" in all" if len(group) > 1 else ""))
    for path, images in report.device_files:
        lines.append(f"  {path}")
        lines.append(f"    {'device':<10}{describe_totals(images) or 'none readable'}")
    if report.debug_files:
        debug_size = format_size(sum(size for _, size in report.debug_files))
        lines.append(f"  debug     {debug_size} of debug symbols, not loaded: {report.debug_files[0][0]}"
                     + (f" and {len(report.debug_files) - 1} more" if len(report.debug_files) > 1 else ""))
    lines.append(f"  size      {format_size(report.wheel_bytes)}")
    if report.sbom is not None:
        components = report.sbom.components
        listed = f"{len(components)} component{'s' if len(components) != 1 else ''}"
        lines.append(f"  sbom      {listed}" + (f": {', '.join(components)}" if components else "")
                     + f"; schema {report.sbom.schema}")
    if report.device_code_by_arch:
        total = sum(report.device_code_by_arch.values())
        lines.append(f"  device    {format_size(total)} of device code in all")
        lines += [f"            {line}" for line in savings(report.device_code_by_arch)]
    if report.tvm_ffi_releases:
        lacking = [r for r in report.tvm_ffi_releases if not r.exports_all]
        shown = f"admits {len(report.tvm_ffi_releases)} known apache-tvm-ffi release(s); "
        shown += f"{len(lacking)} lack needed symbols" if lacking else "each exports everything needed"
        lines.append(f"  releases  {shown}")
    subjects = [b.path for b in report.binaries] + [path for path, _ in report.device_files]
    lines += [f"  warning: {warning}" for warning in said_once(report.warnings, subjects)]
    lines += [f"  problem: {problem}" for problem in said_once(report.problems, subjects)]
    lines.append("  sound" if report.sound else f"  NOT SOUND: {len(report.problems)} problem(s)")
    return "\n".join(lines)



def _binary_lines(binary: BinaryReport, device: str) -> list[str]:
    """What the report says of a binary, below its path; ``device``: its device code, described."""
    lines = []
    width = max((len(s) for s, _ in binary.needed), default=0)
    for index, (soname, satisfied_by) in enumerate(binary.needed):
        label = "needs" if index == 0 else ""
        lines.append(f"    {label:<10}{soname:<{width}}  {satisfied_by}")
    lines.append(f"    {'run path':<10}{':'.join(binary.run_paths) or '(none)'}")
    for index, floor in enumerate(binary.floors):
        label = "floor" if index == 0 else ""
        shown = ", ".join(floor.symbols[:2]) or "-"
        lines.append(f"    {label:<10}{floor.family} {floor.version}  ({shown})")
    if binary.minimum_os or binary.code_signature:  # macOS's, shown where the format has them
        signed = f"signed {binary.code_signature}" if binary.code_signature else "unsigned"
        lines.append(f"    {'macOS':<10}{binary.minimum_os or '?'} or later; {signed}")
    lines.append(f"    {'python':<10}{', '.join(binary.python_c_api[:3]) or 'no C API use'}")
    if binary.device_code:
        lines.append(f"    {'device':<10}{device}")
    if binary.tvm_ffi_imports:
        c_api = [s for s, abi in binary.tvm_ffi_imports if abi == "c"]
        cpp = [s for s, abi in binary.tvm_ffi_imports if abi == "c++"]
        shown = f"{len(c_api)} C" + (f", {len(cpp)} C++: {', '.join(cpp[:2])}" if cpp else "")
        lines.append(f"    {'tvm-ffi':<10}imports {shown}")
    if binary.leaked_exports:
        shown = ", ".join(binary.leaked_exports[:3])
        lines.append(f"    {'leaks':<10}{len(binary.leaked_exports)} exported: {shown}")
    return lines


def _device_kinds(rows: tuple[tuple[str, int, str], ...]) -> str:
    """The device code's kinds without their sizes: binaries alike but for those group together."""
    return ", ".join(f"{name} in {section}" for name, _, section in rows)


def _summed(rows: list[tuple[str, int, str]]) -> list[tuple[str, int, str]]:
    totals: dict[tuple[str, str], int] = {}
    for name, size, section in rows:
        totals[(name, section)] = totals.get((name, section), 0) + size
    return [(name, size, section) for (name, section), size in sorted(totals.items())]
