"""Decide what the wheel's SBOM lists (common/sbom.py writes it).

- the wheel, as the subject;
- each vendored library: its path in the wheel, its SHA-256, and the package or wheel it
  came from where this machine knows (inspecting/package_origin.py asked);
- each runtime linked statically into a binary, as a component that binary contains. Known
  from the build's record, never guessed from a binary's strings: the CUDA runtime from
  `cuda.runtime = "static"` (in the binaries with device code that do not load libcudart),
  the C++ runtime, libunwind and the glibc shim from zig's link. A wheel built elsewhere
  and repaired by the command has no record, so none are listed;
- what it needs installed beside it: apache-tvm-ffi and NVIDIA's wheels, as Requires-Dist
  says;
- the tools that built it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from tvmffi_wheel.common.build_facts import BuildRecord
from tvmffi_wheel.common.sbom import SBOM_FILE, SPEC_VERSION, Component, Sbom, VendoredFile, carried, parse_sbom
from tvmffi_wheel.common.tvm_ffi import TVM_FFI_DISTRIBUTION
from tvmffi_wheel.inspecting.facts import BinaryFacts


@dataclasses.dataclass(frozen=True)
class SbomInputs:
    name: str  # the distribution, as METADATA spells it
    version: str
    vendored: tuple[VendoredFile, ...]
    binaries: tuple[tuple[str, BinaryFacts, str], ...]  # (path, facts, sha256) of each binary as written
    record: BuildRecord | None  # None: built elsewhere
    requires_dist: tuple[str, ...]
    generator: str  # "tvmffi-wheel 0.1.0"
    timestamp: str


def _ref(*parts: str) -> str:
    return ":".join(re.sub(r"[^A-Za-z0-9._+/-]", "-", part) for part in parts)


def _vendored(item: VendoredFile) -> Component:
    origin = item.origin
    # libgomp.so.1 -> libgomp; a copy an earlier repair renamed (libgomp-f9a9ad78.so.1) alike
    name = re.sub(r"-[0-9a-f]{8}$", "", re.split(r"\.(?:so|dylib|dll)\b", item.soname.rpartition("/")[2])[0])
    return Component(
        ref=_ref("vendored", item.path), kind="library", name=name, version=origin.version if origin else "",
        purl=origin.purl if origin else "", sha256=item.sha256, location=item.path,
        description="a library copied into the wheel", known_from=origin.known_from if origin else "",
    )


def _static_runtimes(path: str, facts: BinaryFacts, record: BuildRecord, generator: str) -> list[Component]:
    found = []
    tools = record.tools
    cuda = record.cuda
    if (cuda is not None and cuda.runtime == "static" and facts.device_code
            and not any(name.startswith("libcudart") for name in facts.needed)):
        purl = f"pkg:pypi/nvidia-cuda-runtime@{tools['nvidia-cuda-runtime']}" if "nvidia-cuda-runtime" in tools else ""
        found.append(Component(_ref(path, "cudart"), "library", "CUDA runtime", cuda.toolkit, purl=purl,
                               description="NVIDIA's libcudart_static.a, linked in",
                               known_from='cuda.runtime = "static"'))
    link = record.link
    if link.get("linker") == "zig":
        zig = tools.get("zig", "")
        # toolchain.py's RUNTIME_DESCRIPTION names the runtime zig's link put in.
        runtime = link.get("cxx_runtime", "")
        if "libstdc++" in runtime:
            found.append(Component(_ref(path, "libstdc++"), "library", "libstdc++", tools.get("gcc", ""),
                                   description="GCC's libstdc++.a, linked in by zig", known_from="zig's link"))
            found.append(Component(_ref(path, "glibc-shim"), "library", "tvmffi-wheel glibc shim",
                                   generator.rpartition(" ")[2],
                                   description="stand-ins for glibc symbols newer than the target's",
                                   known_from="zig's link"))
        elif "libc++" in runtime:
            found.append(Component(_ref(path, "libc++"), "library", "libc++", zig,
                                   description="LLVM's libc++ and libc++abi as zig builds them, linked in",
                                   known_from="zig's link"))
        if link.get("unwinder"):  # the link says whether zig's libunwind went in
            found.append(Component(_ref(path, "libunwind"), "library", "libunwind", zig,
                                   description="LLVM's libunwind as zig builds it, linked in",
                                   known_from="zig's link"))
    return found


def _dependencies(requires_dist: Sequence[str]) -> list[Component]:
    found = []
    for line in requires_dist:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        name = canonicalize_name(requirement.name)
        if name == TVM_FFI_DISTRIBUTION or name.startswith("nvidia-"):
            found.append(Component(_ref("requires", name), "library", name, purl=f"pkg:pypi/{name}",
                                   description=f"Requires-Dist: {requirement}", scope="required"))
    return found


# `GCC: (Debian 12.2.0-14) 12.2.0`, `GCC: (GNU) 4.8.5 20150623 (Red Hat 4.8.5-44)`, `clang version 20.1.2 (...)`
_COMPILER = re.compile(r"^(?P<name>GCC|clang|Clang)\b.*?(?P<version>\d+\.\d+(?:\.\d+)?)(?=[\s)]|$)")


def _tools(inputs: SbomInputs) -> list[Component]:
    name, _, version = inputs.generator.rpartition(" ")
    tools = {name: version}
    if inputs.record is not None:
        for tool, tool_version in inputs.record.tools.items():
            if tool not in ("gcc", "nvidia-cuda-runtime"):  # the runtimes' versions, not tools
                tools[tool] = tool_version
        if inputs.record.cuda is not None:
            tools["nvcc"] = inputs.record.cuda.toolkit
    for comment in sorted({c for _, facts, _ in inputs.binaries for c in facts.compilers}):
        match = _COMPILER.search(comment.replace("GCC: ", "GCC "))
        if match is not None:
            tools.setdefault(match["name"].lower(), match["version"])
    return [Component(_ref("tool", tool), "application", tool, tool_version) for tool, tool_version in
            sorted(tools.items()) if tool]


def plan_sbom(inputs: SbomInputs) -> Sbom:
    subject = Component(_ref("wheel", inputs.name), "library", inputs.name, inputs.version,
                        purl=f"pkg:pypi/{canonicalize_name(inputs.name)}@{inputs.version}")
    components = [_vendored(item) for item in sorted(inputs.vendored, key=lambda v: v.path)]
    if inputs.record is not None:
        for path, facts, sha256 in sorted(inputs.binaries, key=lambda b: b[0]):
            inside = _static_runtimes(path, facts, inputs.record, inputs.generator)
            if inside:
                components.append(Component(_ref("binary", path), "file", path.rpartition("/")[2], sha256=sha256,
                                            location=path, contains=tuple(inside)))
    dependencies = _dependencies(inputs.requires_dist)
    components += dependencies
    depends_on = [c.ref for c in dependencies] + [c.ref for c in components if c.ref.startswith("vendored:")]
    return Sbom(subject, tuple(components), tuple(depends_on), tuple(_tools(inputs)), inputs.timestamp)



@dataclasses.dataclass(frozen=True)
class SbomText:
    """Our SBOM as a wheel holds it, with the schema's verdict where it could be asked."""

    text: str
    schema_problem: str | None  # why it breaks the CycloneDX schema
    schema_checked: bool  # False: the optional validator (inspecting/_cyclonedx.py) is not installed


@dataclasses.dataclass(frozen=True)
class SbomReport:
    components: tuple[str, ...]  # what the wheel carries, as the SBOM lists it
    schema: str  # "valid", "invalid", "not checked (...)", "unreadable"


def judge_sbom(sbom: SbomText | None, members: Sequence[str], digests: Mapping[str, str], binaries: Sequence[str],
               libs_folder: str, problems: list[str]) -> SbomReport | None:
    """What our SBOM lists, and where it disagrees with the wheel (added to ``problems``)."""
    if sbom is None:
        return None
    listing = parse_sbom(sbom.text)
    if listing is None:
        problems.append(f"{SBOM_FILE} is not a CycloneDX document tvmffi-wheel can read; "
                        "`tvmffi-wheel repair` writes it anew")
        return SbomReport((), "unreadable")
    if sbom.schema_problem is not None:
        problems.append(f"{SBOM_FILE} breaks the CycloneDX {SPEC_VERSION} schema: {sbom.schema_problem}")
    schema = ("invalid" if sbom.schema_problem else "valid") if sbom.schema_checked else \
        "not checked (pip install 'tvmffi-wheel[sbom]')"
    disagreements: list[str] = []
    in_wheel = {m: digests.get(m, "") for m in members if m.startswith(libs_folder + "/")}
    listed = {item.location: item for item in listing.vendored}
    for member, digest in sorted(in_wheel.items()):
        if member not in listed:
            disagreements.append(f"{member} is vendored, but {SBOM_FILE} does not list it")
        elif listed[member].sha256 != digest:
            disagreements.append(f"{member}: {SBOM_FILE} lists another SHA-256 ({listed[member].sha256[:12]}...) "
                                 f"than the file has ({digest[:12]}...)")
    disagreements += [f"{SBOM_FILE} lists {member}, which the wheel does not hold"
                      for member in sorted(set(listed) - set(in_wheel))]
    disagreements += [f"{SBOM_FILE} says {item.inside} contains {item.name}, but the wheel holds no such binary"
                      for item in listing.linked if item.inside not in set(binaries)]
    # A tool that changed the wheel after us (auditwheel grafting, say) leaves our SBOM stale;
    # our repair writes it anew from the wheel as it is.
    problems += [f"{line}; `tvmffi-wheel repair` writes it anew" for line in disagreements]
    return SbomReport(tuple(carried(listing)), schema)
