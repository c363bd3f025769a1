"""`check`'s judgement of a wheel's contents, on synthetic facts."""

import dataclasses
import json

from synthetic import GLIBC_OLD, GLIBCXX_26, binary

from tvmffi_wheel.commands.check import WheelContents, floors, judge_wheel, render_text
from tvmffi_wheel.common.build_facts import BuildFacts, build_facts_from_json
from tvmffi_wheel.inspecting.device_code import DeviceImage
from tvmffi_wheel.inspecting.wheel import DeviceFile
from tvmffi_wheel.inspecting.wheel_reader import WheelName

PIN = "Requires-Dist: apache-tvm-ffi<0.2,>=0.1.15"
TO_TVM_FFI = "$ORIGIN/../tvm_ffi/lib"


def contents(binaries, *, tag="py3-none-manylinux_2_31_x86_64", requires=PIN, members=None, record_problems=()):
    file_name = f"pkg-1.0-{tag}.whl"
    metadata = f"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\n{requires}\n\n"
    return WheelContents(
        file_name=file_name,
        name=WheelName.parse(file_name),
        binaries=list(binaries),
        members=["pkg/__init__.py", *(b.path for b in binaries)] if members is None else members,
        metadata=metadata,
        record_problems=list(record_problems),
    )


def kernel(**overrides):
    arguments = {
        "needed": ["libtvm_ffi.so", "libstdc++.so.6", "libc.so.6"],
        "versions": [GLIBC_OLD, GLIBCXX_26],
        "run_paths": [TO_TVM_FFI],
        **overrides,
    }
    return binary("pkg/libk.so", **arguments)


def recorded(document: dict) -> BuildFacts:
    """A wheel's tvmffi_wheel.json as the wheel reader reads it."""
    facts = build_facts_from_json(json.dumps(document))
    assert facts is not None
    return facts


def judge(wheel_contents, excludes=(), libc_exports=frozenset()):
    return judge_wheel(wheel_contents, excludes, libc_exports)


def test_a_sound_wheel():
    report = judge(contents([kernel()]))
    assert report.sound and report.problems == () and report.warnings == ()
    assert report.deserved_platform == "manylinux_2_31_x86_64"
    assert report.tvm_ffi_requirement == "apache-tvm-ffi<0.2,>=0.1.15"
    (binary_report,) = report.binaries
    assert binary_report.needed == (("libtvm_ffi.so", "tvm-ffi"), ("libstdc++.so.6", "system"), ("libc.so.6", "system"))
    assert [f.family for f in binary_report.floors] == ["GLIBC", "GLIBCXX"]


def test_a_linux_tag_is_a_problem_and_the_deserved_platform_judges_the_libraries():
    report = judge(contents([kernel()], tag="py3-none-linux_x86_64"))
    assert not report.sound
    assert any(p.startswith("tagged linux_x86_64, which promises nothing") for p in report.problems)
    assert report.deserved_platform == "manylinux_2_31_x86_64"
    assert report.binaries[0].needed[1] == ("libstdc++.so.6", "system")


def test_a_library_nothing_provides_reads_not_provided_and_the_wheel_deserves_linux():
    report = judge(contents([kernel(needed=["libtvm_ffi.so", "libgomp.so.1"])], tag="py3-none-linux_x86_64"))
    assert report.binaries[0].needed[1] == ("libgomp.so.1", "not-provided")
    assert report.deserved_platform == "linux_x86_64"


def test_vendored_and_in_wheel_libraries_are_told_apart():
    main = kernel(needed=["libtvm_ffi.so", "libhelper.so", "libgomp-1a2b3c4d.so.1"],
                  run_paths=[TO_TVM_FFI, "$ORIGIN", "$ORIGIN/../pkg.libs"])
    helper = binary("pkg/libhelper.so", install_name="libhelper.so")
    vendored = binary("pkg.libs/libgomp-1a2b3c4d.so.1", install_name="libgomp-1a2b3c4d.so.1")
    report = judge(contents([main, helper, vendored]))
    assert report.sound, report.problems
    assert report.binaries[0].needed[1:] == (("libhelper.so", "in-wheel"), ("libgomp-1a2b3c4d.so.1", "vendored"))


def test_record_problems_and_architecture_mismatch_are_problems():
    report = judge(contents([kernel(architecture="aarch64")], record_problems=["pkg/x.py is not listed in RECORD"]))
    assert report.problems[0] == "RECORD: pkg/x.py is not listed in RECORD"
    assert any("binaries are built for aarch64" in p for p in report.problems)


def test_tvm_ffi_requirement_shapes():
    assert judge(contents([kernel()], requires="")).problems == (
        "no Requires-Dist on apache-tvm-ffi, although a binary needs libtvm_ffi",
    )

    def first_problem(specifier):
        return judge(contents([kernel()], requires=f"Requires-Dist: apache-tvm-ffi{specifier}")).problems[0]

    exact = judge(contents([kernel()], requires="Requires-Dist: apache-tvm-ffi==0.1.15.post2"))
    assert exact.sound and any("pins one version" in w for w in exact.warnings)  # the project's choice
    assert "no upper bound" in first_problem(">=0.1.15")
    assert "no lower bound" in first_problem("<0.2")


def test_warnings_for_leaks_and_a_needless_cpython_tag():
    leaky = kernel(exports=["__tvm_ffi_f", "_ZNSt6vectorIlE17_M_realloc_insert", "memcpy"])
    report = judge(contents([leaky], tag="cp311-cp311-manylinux_2_31_x86_64"), libc_exports=frozenset({"memcpy"}))
    assert report.sound
    assert report.binaries[0].leaked_exports == ("_ZNSt6vectorIlE17_M_realloc_insert", "memcpy")
    assert report.warnings[0].startswith("pkg/libk.so exports 2 symbols of the C++ standard library")
    assert report.warnings[1].startswith("tagged cp311-cp311, but no binary uses the Python C API")


def test_device_code_is_summed_per_image_and_place_and_priced_per_architecture():
    images = [DeviceImage("sass", 90, "", 100, True), DeviceImage("sass", 90, "", 50, True),
              DeviceImage("ptx", 120, "", 10, True), DeviceImage("sass", 75, "", 7, False, ".rodata")]
    report = judge(contents([kernel(device_code=images)]))
    assert report.binaries[0].device_code == (
        ("PTX compute_120", 10, ".nv_fatbin"), ("SASS sm_75", 7, ".rodata"), ("SASS sm_90", 150, ".nv_fatbin")
    )
    data = report.to_json()
    assert data["binaries"][0]["device_code"][1] == {"image": "SASS sm_75", "bytes": 7, "section": ".rodata"}
    assert data["device_code_by_arch"] == {"compute_120": 10, "sm_75": 7, "sm_90": 150}
    assert sum(data["device_code_by_arch"].values()) == sum(image.size for image in images)


def test_the_declared_architectures_the_build_recorded_are_checked():
    images = [DeviceImage("sass", 75, "", 100, True), DeviceImage("sass", 52, "", 10, True)]
    wheel = contents([kernel(device_code=images)])
    wheel = dataclasses.replace(wheel, build_facts=recorded({"cuda": {"architectures": "75-real;90-virtual"}}))
    report = judge(wheel)
    assert report.problems == ("pkg/libk.so lacks device code for PTX compute_90, which cuda.architectures "
                               "(75-real;90-virtual) declares",)
    assert report.warnings == ("pkg/libk.so has device code for SASS sm_52, which cuda.architectures "
                               "(75-real;90-virtual) does not declare",)


def test_device_code_files_cover_the_declared_architectures_together_binaries_each_alone():
    # One file per architecture is a complete set; a binary must have every architecture itself.
    files = [DeviceFile("pkg/k_sm75.cubin", (DeviceImage("sass", 75, "", 10, False, "file"),)),
             DeviceFile("pkg/k_sm90.cubin", (DeviceImage("sass", 90, "", 10, False, "file"),))]
    wheel = contents([kernel(device_code=[DeviceImage("sass", 90, "", 10, False)])])
    facts = recorded({"cuda": {"architectures": "75-real;90-real"}})
    wheel = dataclasses.replace(wheel, device_files=files, build_facts=facts)
    report = judge(wheel)
    assert report.problems == ("pkg/libk.so lacks device code for SASS sm_75, which cuda.architectures "
                               "(75-real;90-real) declares",)
    assert report.warnings == ()
    assert report.device_code_by_arch == {"sm_75": 10, "sm_90": 20}
    assert report.to_json()["device_files"][0] == {
        "path": "pkg/k_sm75.cubin", "device_code": [{"image": "SASS sm_75", "bytes": 10}]
    }


def test_a_wheel_without_binaries_is_not_a_sound_kernel_wheel():
    report = judge(contents([], tag="py3-none-any", requires=""))
    assert not report.sound and report.deserved_platform == "any"
    assert [p for p in report.problems if p.startswith("the wheel holds no compiled library")]


def test_floors_name_the_symbols():
    (glibcxx,) = [f for f in floors(kernel().facts) if f.family == "GLIBCXX"]
    assert (glibcxx.version, glibcxx.symbols) == ("3.4.26", ("_ZNSt7__cxx1119basic_ostringstreamC1Ev@GLIBCXX_3.4.26",))


def test_the_link_the_build_recorded_is_shown():
    link = {"linker": "zig", "target": "x86_64-linux-gnu.2.28", "cxx_runtime": "GCC's libstdc++ (libstdc++.a, static)"}
    report = judge(dataclasses.replace(contents([kernel()]), build_facts=recorded({"link": link})))
    assert report.link == link and report.to_json()["link"] == link
    assert "  linked    by zig for x86_64-linux-gnu.2.28, GCC's libstdc++ (libstdc++.a, static)" in render_text(report)
    assert "linked" not in render_text(judge(contents([kernel()])))
