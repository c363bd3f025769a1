"""verify_wheel on synthetic facts: each rule a wheel must pass before it is written."""

import pytest
from synthetic import GLIBC_OLD, GLIBCXX_26, binary

from tvmffi_wheel.common._auditwheel import manylinux_policies
from tvmffi_wheel.deciding.classify import Classifier
from tvmffi_wheel.deciding.platforms.linux import policy_named
from tvmffi_wheel.deciding.verify import leaked_exports, verify_wheel

POLICY = policy_named("manylinux_2_28", "x86_64")
TO_TVM_FFI = "$ORIGIN/../tvm_ffi/lib"


def verify(binaries, *, members=None, policy=POLICY, python_tag=("py3", "none"), repaired=True, excludes=()):
    classifier = Classifier.for_wheel(
        [(b.path, b.facts) for b in binaries],
        distribution="pkg",
        excludes=excludes,
        whitelist=policy.whitelist if policy is not None else frozenset(),
    )
    members = ["pkg/__init__.py", *(b.path for b in binaries)] if members is None else members
    return verify_wheel(
        binaries, members, classifier=classifier, policy=policy, python_tag=python_tag, repaired=repaired
    )


def sound_kernel(**overrides):
    arguments = {
        "needed": ["libtvm_ffi.so", "libstdc++.so.6", "libc.so.6"],
        "versions": [GLIBC_OLD],
        "run_paths": [TO_TVM_FFI],
        **overrides,
    }
    return binary("pkg/libk.so", **arguments)


def test_a_sound_wheel_has_no_problems():
    assert verify([sound_kernel()]) == []


@pytest.mark.parametrize(
    ("member", "message"),
    [
        ("pkg/lib/libtvm_ffi.so", "a copy of libtvm_ffi is inside the wheel"),
        ("pkg.libs/libtvm_ffi-1a2b3c4d.so", "a copy of libtvm_ffi is inside the wheel"),
        ("pkg/libcuda.so.1", "CUDA's driver and libraries must come from the system"),
        ("pkg.libs/libcudart-1a2b3c4d.so.13", "CUDA's driver and libraries must come from the system"),
    ],
)
def test_libraries_that_must_never_be_inside(member, message):
    (problem,) = verify([sound_kernel()], members=["pkg/__init__.py", "pkg/libk.so", member])
    assert problem.startswith(f"{member}: {message}")


def test_an_absolute_run_path_is_a_problem_only_for_a_repaired_wheel():
    kernel = sound_kernel(run_paths=[TO_TVM_FFI, "/tmp/build/lib"])
    assert verify([kernel]) == ["pkg/libk.so: run path entry '/tmp/build/lib' is not relative to $ORIGIN"]
    assert verify([kernel], repaired=False, policy=None) == []


def test_libtvm_ffi_must_be_reached_through_the_run_path():
    kernel = sound_kernel(run_paths=["$ORIGIN"])
    (problem,) = verify([kernel])
    assert problem == (
        "pkg/libk.so: needs libtvm_ffi.so but has no run path to tvm_ffi/lib, "
        "so it only loads after `import tvm_ffi`"
    )
    assert verify([kernel], repaired=False) == []


def test_nvidia_library_must_be_reached_in_its_wheel():
    reached = binary("pkg/lib/libk.so", needed=["libcudart.so.13"], run_paths=["$ORIGIN/../../nvidia/cu13/lib"])
    assert verify([reached]) == []
    unreached = binary("pkg/lib/libk.so", needed=["libcudart.so.13"])
    assert verify([unreached]) == ["pkg/lib/libk.so: needs libcudart.so.13 but has no run path to nvidia/cu13/lib"]


def test_a_library_nothing_provides_is_a_problem_under_a_platform_policy():
    kernel = sound_kernel(needed=["libtvm_ffi.so", "libgomp.so.1"])
    assert verify([kernel]) == [
        "pkg/libk.so: needs libgomp.so.1, which manylinux_2_28_x86_64 does not provide and the wheel "
        "does not contain"
    ]
    assert verify([kernel], excludes=("libgomp.so*",)) == []
    assert verify([kernel], policy=None) == []  # a linux_* wheel promises nothing


def test_libraries_the_wheel_provides_itself_are_fine():
    kernel = sound_kernel(needed=["libtvm_ffi.so", "libhelper.so", "libgomp-1a2b3c4d.so.1"],
                          run_paths=[TO_TVM_FFI, "$ORIGIN/sub", "$ORIGIN/../pkg.libs"])
    helper = binary("pkg/sub/libhelper.so", install_name="libhelper.so")
    vendored = binary("pkg.libs/libgomp-1a2b3c4d.so.1", install_name="libgomp-1a2b3c4d.so.1")
    assert verify([kernel, helper, vendored]) == []


def test_python_c_api_in_a_py3_none_wheel():
    extension = binary("pkg/ext.so", c_api=["PyLong_FromLong"])
    assert verify([extension]) == ["pkg/ext.so: uses the Python C API (PyLong_FromLong) in a py3-none wheel"]
    assert verify([extension], python_tag=("cp311", "cp311")) == []


def test_symbol_versions_beyond_the_platform_name_the_symbol():
    kernel = sound_kernel(versions=[GLIBC_OLD, GLIBCXX_26])
    (problem,) = verify([kernel])
    assert problem.startswith("pkg/libk.so: needs _ZNSt7__cxx1119basic_ostringstreamC1Ev@GLIBCXX_3.4.26")
    newest = manylinux_policies("x86_64")[-1]
    assert verify([kernel], policy=newest) == []


def test_leaked_exports_are_the_cpp_runtimes_and_glibcs():
    kernel = binary("pkg/libk.so", exports=["__tvm_ffi_add", "_ZNSt6vectorIlE17_M_realloc_insert", "memcpy",
                                            "__cxa_throw", "my_kernel"])
    assert leaked_exports(kernel.facts, frozenset({"memcpy"})) == [
        "_ZNSt6vectorIlE17_M_realloc_insert", "__cxa_throw", "memcpy"
    ]


def test_a_wheel_without_a_library_is_a_problem_unless_none_is_expected():
    (problem,) = verify([], members=["pkg/__init__.py"])
    assert problem.startswith("the wheel holds no compiled library") and "install(TARGETS" in problem
    classifier = Classifier.for_wheel([], distribution="pkg", excludes=())
    in_place = verify_wheel([], ["pkg.pth"], classifier=classifier, policy=None, python_tag=("py3", "none"),
                            repaired=True, library_expected=False)
    assert in_place == []  # an in-place editable install: the library stays in the source tree


@pytest.mark.parametrize(
    ("member", "where"),
    [("lib/libk.so", "site-packages/lib/, a folder other wheels install into too"),
     ("libk.so", "the top of site-packages, shared by all wheels"),
     ("pkg-1.0.data/platlib/lib64/libk.so", "site-packages/lib64/, a folder other wheels install into too"),
     ("nopkg/libk.so", "site-packages/nopkg/, which is no package of this wheel")],
)
def test_a_library_outside_the_wheels_own_folders_is_a_problem(member, where):
    kernel = binary(member, needed=["libc.so.6"], versions=[GLIBC_OLD])
    (problem,) = verify([kernel], members=["pkg/__init__.py", "nopkg/data.txt", member])
    assert problem.startswith(f"{member}: installs to {where}")
    # The fix names what put it there, and a folder the rule accepts.
    assert "its install() rule puts it there" in problem and 'wheel.install-dir = "pkg"' in problem


def test_a_folder_named_after_the_project_or_its_install_dir_is_its_own():
    """tvm-ffi's examples install into wheel.install-dir, a folder with no __init__.py."""
    named = binary("my_ext/libmy_ext.so", needed=["libc.so.6"], versions=[GLIBC_OLD])
    classifier = Classifier.for_wheel([(named.path, named.facts)], distribution="my_ext", excludes=())
    arguments = {"classifier": classifier, "policy": None, "python_tag": ("py3", "none"), "repaired": False}
    assert verify_wheel([named], [named.path], **arguments) == []
    elsewhere = binary("kernels/libk.so", needed=["libc.so.6"], versions=[GLIBC_OLD])
    classifier = Classifier.for_wheel([(elsewhere.path, elsewhere.facts)], distribution="my_ext", excludes=())
    arguments["classifier"] = classifier
    assert verify_wheel([elsewhere], [elsewhere.path], install_dir="kernels", **arguments) == []
    (problem,) = verify_wheel([elsewhere], [elsewhere.path], **arguments)
    assert "site-packages/kernels/, which is no package" in problem


def test_an_install_dir_among_the_shared_folders_is_named_in_the_fix():
    kernel = binary("lib/libk.so", needed=["libc.so.6"], versions=[GLIBC_OLD])
    classifier = Classifier.for_wheel([(kernel.path, kernel.facts)], distribution="my_ext", excludes=())
    (problem,) = verify_wheel([kernel], [kernel.path], classifier=classifier, policy=None,
                              python_tag=("py3", "none"), repaired=False, install_dir="lib")
    assert 'wheel.install-dir = "lib" puts it there: set wheel.install-dir = "my_ext"' in problem


def test_extension_modules_and_vendored_libraries_may_stand_outside_a_package():
    extension = binary("ext.cpython-311-x86_64-linux-gnu.so", needed=["libc.so.6"], versions=[GLIBC_OLD],
                       exports=["PyInit_ext"])
    vendored = binary("pkg.libs/libgomp-1a2b3c4d.so.1", needed=["libc.so.6"], versions=[GLIBC_OLD],
                      install_name="libgomp-1a2b3c4d.so.1")
    assert verify([extension, vendored], python_tag=("cp311", "cp311")) == []


def test_packages_the_build_names_count_though_an_editable_wheel_holds_no_sources():
    kernel = binary("pkg/lib/libk.so", needed=["libc.so.6"], versions=[GLIBC_OLD])
    classifier = Classifier.for_wheel([(kernel.path, kernel.facts)], distribution="pkg", excludes=())
    arguments = {"classifier": classifier, "policy": None, "python_tag": ("py3", "none"), "repaired": False}
    members = ["pkg/lib/libk.so", "_pkg_editable.py", "pkg.pth"]
    classifier = Classifier.for_wheel([(kernel.path, kernel.facts)], distribution="other", excludes=())
    arguments["classifier"] = classifier
    assert verify_wheel([kernel], members, **arguments)[0].startswith("pkg/lib/libk.so: installs to site-packages/pkg/")
    assert verify_wheel([kernel], members, packages=["pkg"], **arguments) == []
