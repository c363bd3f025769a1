"""Decisions on synthetic ELF facts: no compiler needed."""

from pathlib import Path

import pytest

from tvmffi_wheel._auditwheel import manylinux_policies
from tvmffi_wheel.elf import ElfFacts, VersionNeed
from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.policy import (
    Kind,
    LibraryFinder,
    WheelBinary,
    choose_python_tag,
    classify,
    install_path,
    origin_entry,
    plan_repair,
    planned_run_path,
    python_c_api_users,
    vendored_name,
)

WHITELIST = frozenset({"libc.so.6", "libstdc++.so.6", "libm.so.6", "libgcc_s.so.1"})


def facts(needed=(), versions=(), runpath=(), rpath=(), c_api=(), soname=None):
    return ElfFacts(
        machine="EM_X86_64",
        elf_class=64,
        soname=soname,
        needed=tuple(needed),
        rpath=tuple(rpath),
        runpath=tuple(runpath),
        version_needs=tuple(VersionNeed(lib, ver, (sym,)) for lib, ver, sym in versions),
        python_c_api=tuple(c_api),
        undefined=frozenset(sym for _, _, sym in versions) | frozenset(c_api),
        exported=frozenset(),
    )


def binary(path, **kwargs):
    return WheelBinary(path, Path("/nonexistent") / path, facts(**kwargs))


class NoLibraries(LibraryFinder):
    def __init__(self):
        super().__init__([])

    def find(self, soname, requester, requester_facts):
        return None


@pytest.mark.parametrize(
    ("soname", "kind"),
    [
        ("libtvm_ffi.so", Kind.TVM_FFI),
        ("libtvm_ffi.so.0", Kind.TVM_FFI),
        ("libtvm_ffi-1a2b3c4d.so", Kind.TVM_FFI),
        ("libcuda.so.1", Kind.CUDA_DRIVER),
        ("libnvidia-ml.so.1", Kind.CUDA_DRIVER),
        ("ld-linux-x86-64.so.2", Kind.LOADER),
        ("libpython3.11.so.1.0", Kind.PYTHON),
        ("libfoo.so.3", Kind.EXCLUDED),
        ("libsibling.so", Kind.IN_WHEEL),
        ("libstdc++.so.6", Kind.SYSTEM),
        ("libgomp.so.1", Kind.VENDORED),
    ],
)
def test_classify(soname, kind):
    found = classify(
        soname, excludes=("libfoo.so*",), in_wheel=frozenset({"libsibling.so"}), whitelist=WHITELIST
    )
    assert found is kind


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        ("pkg/lib/libk.so", "pkg/lib/libk.so"),
        ("pkg-1.0.data/platlib/pkg/libk.so", "pkg/libk.so"),
        ("pkg-1.0.data/scripts/tool", None),
    ],
)
def test_install_path(member, expected):
    assert install_path(member) == expected


def test_origin_entry_to_tvm_ffi():
    assert origin_entry("pkg/lib/libk.so", "tvm_ffi/lib") == "$ORIGIN/../../tvm_ffi/lib"
    assert origin_entry("libk.so", "tvm_ffi/lib") == "$ORIGIN/tvm_ffi/lib"
    assert origin_entry("pkg/libk.so", "pkg") == "$ORIGIN"


def test_run_path_drops_build_dirs_and_adds_what_is_missing():
    current = ("/tmp/build-env/site-packages/tvm_ffi/lib", "$ORIGIN")
    planned = planned_run_path("pkg/libk.so", current, ["tvm_ffi/lib", "pkg.libs"])
    assert planned == ("$ORIGIN", "$ORIGIN/../tvm_ffi/lib", "$ORIGIN/../pkg.libs")


def test_run_path_set_at_link_time_is_left_alone():
    current = ("${ORIGIN}/../../tvm_ffi/lib",)
    assert planned_run_path("pkg/lib/libk.so", current, ["tvm_ffi/lib"]) == current


def test_data_scripts_binary_needing_tvm_ffi_is_refused():
    with pytest.raises(TvmFfiWheelError, match="outside site-packages"):
        planned_run_path("pkg-1.0.data/scripts/tool", (), ["tvm_ffi/lib"])


GLIBC_OLD = ("libc.so.6", "GLIBC_2.2.5", "free")
GLIBCXX_26 = ("libstdc++.so.6", "GLIBCXX_3.4.26", "_ZNSt7__cxx1119basic_ostringstreamC1Ev")


def test_plan_picks_the_oldest_platform_and_names_what_rules_out_older():
    kernel = binary(
        "pkg/libk.so",
        needed=["libtvm_ffi.so", "libstdc++.so.6", "libc.so.6"],
        versions=[GLIBC_OLD, GLIBCXX_26],
    )
    plan = plan_repair([kernel], distribution="pkg", excludes=(), plat="", finder=NoLibraries())
    assert plan.platform_tags == ("manylinux_2_31_x86_64",)
    assert "GLIBCXX_3.4.26" in str(plan.tag_reason[0])
    assert plan.run_paths == {"pkg/libk.so": ("$ORIGIN/../tvm_ffi/lib",)}
    assert plan.vendored == ()


def test_plan_with_only_old_symbols_gets_legacy_aliases():
    kernel = binary("pkg/libk.so", needed=["libc.so.6"], versions=[GLIBC_OLD])
    plan = plan_repair([kernel], distribution="pkg", excludes=(), plat="", finder=NoLibraries())
    assert plan.platform_tags == ("manylinux_2_5_x86_64", "manylinux1_x86_64")


def test_requested_platform_that_the_binary_exceeds_names_the_symbol():
    kernel = binary("pkg/libk.so", needed=["libstdc++.so.6"], versions=[GLIBCXX_26])
    with pytest.raises(TvmFfiWheelError) as caught:
        plan_repair([kernel], distribution="pkg", excludes=(), plat="manylinux_2_28", finder=NoLibraries())
    assert "manylinux_2_28_x86_64" in str(caught.value)
    assert "@GLIBCXX_3.4.26" in str(caught.value)


def test_unknown_requested_platform_lists_the_known_ones():
    kernel = binary("pkg/libk.so", needed=["libc.so.6"], versions=[GLIBC_OLD])
    with pytest.raises(TvmFfiWheelError, match="(?s)not a manylinux platform.*manylinux_2_28_x86_64"):
        plan_repair([kernel], distribution="pkg", excludes=(), plat="manylinux_9", finder=NoLibraries())


def test_symbol_newer_than_every_policy_is_an_error_naming_it():
    kernel = binary("pkg/libk.so", needed=["libc.so.6"], versions=[("libc.so.6", "GLIBC_2.99", "newfn")])
    with pytest.raises(TvmFfiWheelError, match=r"newfn@GLIBC_2\.99"):
        plan_repair([kernel], distribution="pkg", excludes=(), plat="", finder=NoLibraries())


def test_missing_library_is_an_error_naming_it_and_the_binary():
    kernel = binary("pkg/libk.so", needed=["libmissing.so.1"])
    with pytest.raises(TvmFfiWheelError, match="pkg/libk.so needs libmissing.so.1"):
        plan_repair([kernel], distribution="pkg", excludes=(), plat="", finder=NoLibraries())


def test_excluded_and_driver_libraries_are_not_looked_for():
    kernel = binary("pkg/libk.so", needed=["libcuda.so.1", "libmissing.so.1"])
    plan = plan_repair(
        [kernel], distribution="pkg", excludes=("libmissing.so*",), plat="", finder=NoLibraries()
    )
    assert plan.vendored == ()
    assert "pkg/libk.so" not in plan.run_paths


def test_library_inside_the_wheel_gets_a_run_path_to_its_folder():
    kernel = binary("pkg/libk.so", needed=["libhelper.so"])
    helper = binary("pkg/sub/libhelper.so", soname="libhelper.so")
    plan = plan_repair([kernel, helper], distribution="pkg", excludes=(), plat="", finder=NoLibraries())
    assert plan.run_paths["pkg/libk.so"] == ("$ORIGIN/sub",)


def test_libpython_is_dropped_not_vendored():
    ext = binary("pkg/ext.so", needed=["libpython3.11.so.1.0"])
    plan = plan_repair([ext], distribution="pkg", excludes=(), plat="", finder=NoLibraries())
    assert plan.removed_needed == {"pkg/ext.so": ("libpython3.11.so.1.0",)}


def test_vendored_name_carries_a_content_hash(tmp_path):
    library = tmp_path / "libgomp.so.1"
    library.write_bytes(b"pretend")
    name = vendored_name("libgomp.so.1", library)
    assert name.startswith("libgomp-") and name.endswith(".so.1") and len(name) == len("libgomp-12345678.so.1")


def test_policies_are_ordered_best_first():
    names = [p.name for p in manylinux_policies("x86_64")]
    assert names[0] == "manylinux_2_5_x86_64"
    assert names.index("manylinux_2_28_x86_64") < names.index("manylinux_2_31_x86_64")


# Python tags ---------------------------------------------------------------------------


def test_default_tag_becomes_py3_none_without_c_api():
    assert choose_python_tag(("cp311", "cp311"), {}) == (("py3", "none"), None)


def test_default_tag_stays_cpython_with_c_api_and_names_the_file():
    users = python_c_api_users([binary("pkg/ext.so", c_api=["PyLong_FromLong"])])
    tag, note = choose_python_tag(("cp311", "cp311"), users)
    assert tag == ("cp311", "cp311")
    assert "pkg/ext.so" in note and "PyLong_FromLong" in note


def test_explicit_abi3_is_honoured():
    assert choose_python_tag(("cp39", "abi3"), {})[0] == ("cp39", "abi3")


def test_explicit_py3_with_c_api_is_an_error():
    users = python_c_api_users([binary("pkg/ext.so", needed=["libpython3.11.so.1.0"])])
    with pytest.raises(TvmFfiWheelError, match=r"pkg/ext.so uses the Python C API \(needs libpython"):
        choose_python_tag(("py3", "none"), users)


def test_nvidia_library_without_its_wheel_is_refused_naming_the_wheel():
    kernel = binary("pkg/libk.so", needed=["libcublas.so.13"])
    with pytest.raises(TvmFfiWheelError) as caught:
        plan_repair([kernel], distribution="pkg", excludes=(), plat="", finder=NoLibraries())
    assert "libcublas.so.13, which tvmffi-wheel never vendors" in str(caught.value)
    assert "add 'nvidia-cublas' to [project] dependencies" in str(caught.value)


def test_nvidia_library_with_its_wheel_gets_a_run_path_into_it():
    kernel = binary("pkg/lib/libk.so", needed=["libcudart.so.13", "libtvm_ffi.so"])
    plan = plan_repair(
        [kernel], distribution="pkg", excludes=(), plat="", finder=NoLibraries(),
        requirements=frozenset({"nvidia-cuda-runtime"}),
    )
    assert plan.run_paths["pkg/lib/libk.so"] == (
        "$ORIGIN/../../nvidia/cu13/lib", "$ORIGIN/../../tvm_ffi/lib"
    )
    assert plan.vendored == ()
