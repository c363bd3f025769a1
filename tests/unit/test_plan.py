"""Repair plans and run paths, decided on synthetic ELF facts: no compiler needed."""


import pytest
from synthetic import GLIBC_OLD, GLIBCXX_26, binary

from tvmffi_wheel.common._auditwheel import manylinux_policies
from tvmffi_wheel.deciding.classify import Classifier
from tvmffi_wheel.deciding.plan import plan_repair
from tvmffi_wheel.deciding.platforms import LINUX
from tvmffi_wheel.deciding.runpath import install_path, origin_entry, planned_run_path
from tvmffi_wheel.errors import TvmFfiWheelError


class NoLibraries:
    """A machine with no library to vendor."""

    search_dirs = ()

    def find(self, places, *, fold_case, file_format, architecture):
        return None


def make_plan(binaries, *, excludes=(), plat="", requirements=frozenset()):
    classifier = Classifier.for_wheel(
        [(b.path, b.facts) for b in binaries], distribution="pkg", excludes=excludes
    )
    return plan_repair(binaries, classifier, plat=plat, finder=NoLibraries(), requirements=requirements)


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


def test_plan_picks_the_oldest_platform_and_names_what_rules_out_older():
    kernel = binary(
        "pkg/libk.so",
        needed=["libtvm_ffi.so", "libstdc++.so.6", "libc.so.6"],
        versions=[GLIBC_OLD, GLIBCXX_26],
    )
    result = make_plan([kernel])
    assert result.platform_tags == ("manylinux_2_31_x86_64",)
    assert "GLIBCXX_3.4.26" in str(result.tag_reason[0])
    assert result.run_paths == {"pkg/libk.so": ("$ORIGIN/../tvm_ffi/lib",)}
    assert result.vendored == ()


def test_plan_with_only_old_symbols_gets_legacy_aliases():
    kernel = binary("pkg/libk.so", needed=["libc.so.6"], versions=[GLIBC_OLD])
    result = make_plan([kernel])
    assert result.platform_tags == ("manylinux_2_5_x86_64", "manylinux1_x86_64")


def test_requested_platform_that_the_binary_exceeds_names_the_symbol():
    kernel = binary("pkg/libk.so", needed=["libstdc++.so.6"], versions=[GLIBCXX_26])
    with pytest.raises(TvmFfiWheelError) as caught:
        make_plan([kernel], plat="manylinux_2_28")
    assert "manylinux_2_28_x86_64" in str(caught.value)
    assert "@GLIBCXX_3.4.26" in str(caught.value)


def test_unknown_requested_platform_lists_the_known_ones():
    kernel = binary("pkg/libk.so", needed=["libc.so.6"], versions=[GLIBC_OLD])
    with pytest.raises(TvmFfiWheelError, match=r"(?s)not a manylinux platform.*manylinux_2_28_x86_64"):
        make_plan([kernel], plat="manylinux_9")


def test_symbol_newer_than_every_policy_is_an_error_naming_it():
    kernel = binary("pkg/libk.so", needed=["libc.so.6"], versions=[("libc.so.6", "GLIBC_2.99", "newfn")])
    with pytest.raises(TvmFfiWheelError, match=r"newfn@GLIBC_2\.99"):
        make_plan([kernel])


def test_missing_library_is_an_error_naming_it_and_the_binary():
    kernel = binary("pkg/libk.so", needed=["libmissing.so.1"])
    with pytest.raises(TvmFfiWheelError, match=r"pkg/libk\.so needs libmissing\.so\.1"):
        make_plan([kernel])


def test_excluded_and_driver_libraries_are_not_looked_for():
    kernel = binary("pkg/libk.so", needed=["libcuda.so.1", "libmissing.so.1"])
    result = make_plan([kernel], excludes=("libmissing.so*",))
    assert result.vendored == ()
    assert "pkg/libk.so" not in result.run_paths


def test_library_inside_the_wheel_gets_a_run_path_to_its_folder():
    kernel = binary("pkg/libk.so", needed=["libhelper.so"])
    helper = binary("pkg/sub/libhelper.so", install_name="libhelper.so")
    result = make_plan([kernel, helper])
    assert result.run_paths["pkg/libk.so"] == ("$ORIGIN/sub",)


def test_libpython_is_dropped_not_vendored():
    ext = binary("pkg/ext.so", needed=["libpython3.11.so.1.0"])
    result = make_plan([ext])
    assert result.removed_needed == {"pkg/ext.so": ("libpython3.11.so.1.0",)}


def test_vendored_name_carries_a_content_hash():
    name, asked_for = LINUX.vendored_names("libgomp.so.1", "1a2b3c4d" + "0" * 56)
    assert name == asked_for == "libgomp-1a2b3c4d.so.1"


def test_policies_are_ordered_best_first():
    names = [p.name for p in manylinux_policies("x86_64")]
    assert names[0] == "manylinux_2_5_x86_64"
    assert names.index("manylinux_2_28_x86_64") < names.index("manylinux_2_31_x86_64")


def test_nvidia_library_without_its_wheel_is_refused_naming_the_wheel():
    kernel = binary("pkg/libk.so", needed=["libcublas.so.13"])
    with pytest.raises(TvmFfiWheelError) as caught:
        make_plan([kernel])
    assert "libcublas.so.13, which tvmffi-wheel never vendors" in str(caught.value)
    assert "add 'nvidia-cublas' to [project] dependencies" in str(caught.value)


def test_nvidia_library_with_its_wheel_gets_a_run_path_into_it():
    kernel = binary("pkg/lib/libk.so", needed=["libcudart.so.13", "libtvm_ffi.so"])
    result = make_plan([kernel], requirements=frozenset({"nvidia-cuda-runtime"}))
    assert result.run_paths["pkg/lib/libk.so"] == (
        "$ORIGIN/../../nvidia/cu13/lib", "$ORIGIN/../../tvm_ffi/lib"
    )
    assert result.vendored == ()


def test_cuda_runtime_without_its_wheel_names_what_really_links_it_statically():
    kernel = binary("pkg/libk.so", needed=["libcudart.so.13"])
    with pytest.raises(TvmFfiWheelError) as caught:
        make_plan([kernel])
    # cuda.runtime alone does not change an explicit CUDA::cudart link, so the fix names the target.
    assert "CUDA::cudart_static instead of CUDA::cudart" in caught.value.fix
    assert "add 'nvidia-cuda-runtime' to [project] dependencies" in caught.value.fix
