"""The SBOM: what it lists (deciding/sbom.py), its bytes (common/sbom.py), check's judgement of it,
and where a library came from (inspecting/package_origin.py). Validated with cyclonedx-python-lib,
which the backend does not use to write it."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from synthetic import GLIBC_OLD, binary, facts
from test_report import contents

from tvmffi_wheel.commands.check import judge_wheel, render_text
from tvmffi_wheel.common.build_facts import BuildRecord
from tvmffi_wheel.common.cuda import CudaFacts
from tvmffi_wheel.common.sbom import PackageOrigin, VendoredFile, carried, parse_sbom, sbom_json, timestamp_from
from tvmffi_wheel.compiling.toolchain import RUNTIME_DESCRIPTION
from tvmffi_wheel.deciding.sbom import SbomInputs, SbomText, plan_sbom
from tvmffi_wheel.inspecting.device_code import DeviceImage
from tvmffi_wheel.inspecting.package_origin import origin_of

SASS_90 = DeviceImage("sass", 90, "", 1000, False)
GOMP = VendoredFile("pkg.libs/libgomp-f9a9ad78.so.1", "libgomp.so.1", "ab" * 32,
                    PackageOrigin("pkg:deb/debian/libgomp1@12.2.0-14?arch=amd64", "libgomp1", "12.2.0-14", "dpkg"))
STATIC_CUDA = CudaFacts("13.0", "system", "90-real", "static")
# toolchain.py's link facts, as a zig build records them
ZIG_LIBSTDCXX = {"linker": "zig", "cxx_runtime": RUNTIME_DESCRIPTION["libstdc++"], "unwinder": "zig's libunwind"}
ZIG_LIBCXX = {"linker": "zig", "cxx_runtime": RUNTIME_DESCRIPTION["libc++"], "unwinder": "zig's libunwind"}
TOOLS = {"scikit-build-core": "1.1.2", "cmake": "3.25.1", "zig": "0.15.2", "gcc": "12.2.0"}
REQUIRES = ("apache-tvm-ffi<0.2,>=0.1.15", "nvidia-cuda-runtime~=13.0", "numpy>=2")


def inputs(record=None, binaries=None, vendored=(GOMP,), timestamp=""):
    kernel = facts(needed=["libtvm_ffi.so", "libgomp-f9a9ad78.so.1", "libc.so.6"], versions=[GLIBC_OLD],
                   device_code=[SASS_90])
    return SbomInputs(
        name="pkg", version="1.0", vendored=tuple(vendored),
        binaries=tuple(binaries if binaries is not None else [("pkg/libk.so", kernel, "cd" * 32)]),
        record=record, requires_dist=REQUIRES, generator="tvmffi-wheel 0.1.0", timestamp=timestamp,
    )


def validate(text):
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert error is None, getattr(error, "data", error)


def test_vendored_libraries_dependencies_and_tools_are_listed_and_the_document_is_valid():
    text = sbom_json(plan_sbom(inputs(BuildRecord(None, {"linker": "the system compiler's"}, TOOLS))))
    validate(text)
    document = json.loads(text)
    assert document["metadata"]["component"]["purl"] == "pkg:pypi/pkg@1.0"
    gomp = next(c for c in document["components"] if c["name"] == "libgomp")
    assert gomp["purl"] == GOMP.origin.purl and gomp["hashes"] == [{"alg": "SHA-256", "content": "ab" * 32}]
    assert gomp["evidence"]["occurrences"] == [{"location": GOMP.path}]
    required = {c["name"] for c in document["components"] if c.get("scope") == "required"}
    assert required == {"apache-tvm-ffi", "nvidia-cuda-runtime"}  # numpy is not ours to vouch for
    ranges = {c["name"]: c["description"] for c in document["components"] if c.get("scope") == "required"}
    assert ranges["apache-tvm-ffi"] == "Requires-Dist: apache-tvm-ffi<0.2,>=0.1.15"
    tools = {t["name"]: t.get("version") for t in document["metadata"]["tools"]["components"]}
    assert tools["tvmffi-wheel"] == "0.1.0" and tools["cmake"] == "3.25.1" and tools["zig"] == "0.15.2"
    assert "gcc" not in tools  # GCC's version there is the runtime's (no compiler comment in these facts)
    assert "timestamp" not in document["metadata"]


def test_the_static_cuda_runtime_is_in_the_binaries_with_device_code_that_do_not_load_libcudart():
    shared = facts(needed=["libcudart.so.13"], device_code=[SASS_90])
    host_only = facts(needed=["libc.so.6"])
    record = BuildRecord(STATIC_CUDA, {"linker": "the system compiler's"}, {})
    listing = parse_sbom(sbom_json(plan_sbom(inputs(record, binaries=[
        ("pkg/libk.so", facts(device_code=[SASS_90]), "00" * 32), ("pkg/libshared.so", shared, "11" * 32),
        ("pkg/libhost.so", host_only, "22" * 32)]))))
    assert [(i.name, i.version, i.inside) for i in listing.linked] == [("CUDA runtime", "13.0", "pkg/libk.so")]
    assert "CUDA runtime 13.0 (static)" in carried(listing)


def test_zig_links_list_the_runtime_they_put_in_with_its_version():
    record = BuildRecord(None, ZIG_LIBSTDCXX, TOOLS)
    listing = parse_sbom(sbom_json(plan_sbom(inputs(record))))
    assert {(i.name, i.version) for i in listing.linked} == {
        ("libstdc++", "12.2.0"), ("libunwind", "0.15.2"), ("tvmffi-wheel glibc shim", "0.1.0")}
    assert {i.known_from for i in listing.linked} == {"zig's link"}
    libcxx = parse_sbom(sbom_json(plan_sbom(inputs(BuildRecord(None, ZIG_LIBCXX, TOOLS)))))
    assert {(i.name, i.version) for i in libcxx.linked} == {("libc++", "0.15.2"), ("libunwind", "0.15.2")}
    macos = parse_sbom(sbom_json(plan_sbom(inputs(BuildRecord(None, {**ZIG_LIBCXX, "unwinder": ""}, TOOLS)))))
    assert {i.name for i in macos.linked} == {"libc++"}  # no libunwind where the link put none in


def test_a_wheel_built_elsewhere_lists_no_runtime_it_cannot_know_of():
    listing = parse_sbom(sbom_json(plan_sbom(inputs(record=None))))
    assert listing.linked == () and [i.name for i in listing.vendored] == ["libgomp"]


def test_the_same_inputs_give_the_same_bytes_and_the_serial_number_follows_the_content():
    first = sbom_json(plan_sbom(inputs(BuildRecord(STATIC_CUDA, ZIG_LIBSTDCXX, TOOLS))))
    assert first == sbom_json(plan_sbom(inputs(BuildRecord(STATIC_CUDA, ZIG_LIBSTDCXX, TOOLS))))
    other = sbom_json(plan_sbom(inputs(BuildRecord(STATIC_CUDA, ZIG_LIBSTDCXX, {**TOOLS, "cmake": "3.31.0"}))))
    assert json.loads(first)["serialNumber"] != json.loads(other)["serialNumber"]
    validate(first)


def test_the_timestamp_is_source_date_epoch_or_none():
    assert timestamp_from({"SOURCE_DATE_EPOCH": "1700000000"}) == "2023-11-14T22:13:20Z"
    assert timestamp_from({}) == "" and timestamp_from({"SOURCE_DATE_EPOCH": "soon"}) == ""
    text = sbom_json(plan_sbom(inputs(timestamp="2023-11-14T22:13:20Z")))
    assert json.loads(text)["metadata"]["timestamp"] == "2023-11-14T22:13:20Z"
    validate(text)


def _with_sbom(sbom_text, vendored_hash="ab" * 32):
    libk = binary("pkg/libk.so", needed=["libtvm_ffi.so", "libgomp-f9a9ad78.so.1", "libc.so.6"],
                  versions=[GLIBC_OLD], run_paths=["$ORIGIN/../tvm_ffi/lib:$ORIGIN/../pkg.libs"])
    gomp = binary(GOMP.path, install_name="libgomp-f9a9ad78.so.1", needed=["libc.so.6"], versions=[GLIBC_OLD])
    return dataclasses.replace(contents([libk, gomp]), sbom=SbomText(sbom_text, None, schema_checked=True),
                               digests={GOMP.path: vendored_hash, "pkg/libk.so": "cd" * 32})


def test_check_says_in_one_line_what_the_sbom_lists():
    record = BuildRecord(STATIC_CUDA, {"linker": "the system compiler's"}, TOOLS)
    report = judge_wheel(_with_sbom(sbom_json(plan_sbom(inputs(record)))), (), frozenset())
    line = next(line for line in render_text(report).splitlines() if line.startswith("  sbom"))
    assert line == ("  sbom      2 components: libgomp (pkg:deb/debian/libgomp1@12.2.0-14?arch=amd64), "
                    "CUDA runtime 13.0 (static); schema valid")
    assert not any("sbom" in problem for problem in report.problems), report.problems


def test_check_reports_an_sbom_that_disagrees_with_the_wheel():
    unlisted = judge_wheel(_with_sbom(sbom_json(plan_sbom(inputs(vendored=())))), (), frozenset())
    assert any("pkg.libs/libgomp-f9a9ad78.so.1 is vendored, but" in p for p in unlisted.problems), unlisted.problems
    changed = judge_wheel(_with_sbom(sbom_json(plan_sbom(inputs())), vendored_hash="ef" * 32), (), frozenset())
    assert any("another SHA-256" in p for p in changed.problems), changed.problems
    extra = dataclasses.replace(GOMP, path="pkg.libs/libgone-0000.so")
    gone = judge_wheel(_with_sbom(sbom_json(plan_sbom(inputs(vendored=(GOMP, extra))))), (), frozenset())
    assert any("lists pkg.libs/libgone-0000.so, which the wheel does not hold" in p for p in gone.problems)
    record = BuildRecord(STATIC_CUDA, {"linker": "the system compiler's"}, {})
    old_binary = ("pkg/libold.so", facts(device_code=[SASS_90]), "00" * 32)
    elsewhere = sbom_json(plan_sbom(inputs(record, binaries=[old_binary])))
    moved = judge_wheel(_with_sbom(elsewhere), (), frozenset())
    assert any("says pkg/libold.so contains CUDA runtime, but the wheel holds no such binary" in p
               for p in moved.problems), moved.problems
    for report in (unlisted, changed, gone, moved):
        sbom_problems = [p for p in report.problems if "tvmffi-wheel.cdx.json" in p]
        assert sbom_problems and all(p.endswith("`tvmffi-wheel repair` writes it anew") for p in sbom_problems)
    damaged = judge_wheel(_with_sbom("{not json"), (), frozenset())
    assert any("not a CycloneDX document" in p for p in damaged.problems)


def test_a_system_library_comes_from_its_debian_package():
    if shutil.which("dpkg-query") is None:
        pytest.skip("needs dpkg")
    libc = next(p for p in (Path("/lib/x86_64-linux-gnu/libc.so.6"), Path("/lib/aarch64-linux-gnu/libc.so.6"))
                if p.exists())
    origin = origin_of(libc)
    assert origin is not None and origin.purl.startswith("pkg:deb/") and "/libc6@" in origin.purl, origin
    assert origin.known_from == "dpkg"


def test_a_file_of_an_installed_wheel_comes_from_that_wheel():
    import packaging

    origin = origin_of(Path(packaging.__file__))
    assert origin is not None and origin.purl == f"pkg:pypi/packaging@{packaging.__version__}", origin


def test_a_file_no_one_owns_has_no_origin(tmp_path):
    stray = tmp_path / "libstray.so"
    stray.write_bytes(b"")
    assert origin_of(stray) is None


@pytest.mark.parametrize(("comment", "tool"), [
    ("GCC: (Debian 12.2.0-14) 12.2.0", ("gcc", "12.2.0")),
    ("GCC: (GNU) 4.8.5 20150623 (Red Hat 4.8.5-44)", ("gcc", "4.8.5")),
    ("clang version 20.1.2 (https://github.com/llvm/llvm-project 58df0ef)", ("clang", "20.1.2")),
])
def test_the_compilers_are_the_ones_the_binaries_name(comment, tool):
    kernel = dataclasses.replace(facts(), compilers=(comment, "Linker: LLD 20.1.2"))
    document = json.loads(sbom_json(plan_sbom(inputs(binaries=[("pkg/libk.so", kernel, "00" * 32)]))))
    tools = {(t["name"], t.get("version")) for t in document["metadata"]["tools"]["components"]}
    assert tools == {tool, ("tvmffi-wheel", "0.1.0")}
