"""One classifier per wheel: what satisfies each NEEDED library."""

import pytest
from synthetic import WHITELIST, facts

from tvmffi_wheel.deciding.classify import Classifier, Kind, is_never_vendored


def classifier(**overrides):
    binaries = [
        ("pkg/sub/libsibling.so", facts(install_name="libsibling.so")),
        ("pkg.libs/libgomp-1a2b3c4d.so.1", facts(install_name="libgomp-1a2b3c4d.so.1")),
    ]
    arguments = {"distribution": "pkg", "excludes": ("libfoo.so*",), "whitelist": WHITELIST, **overrides}
    return Classifier.for_wheel(binaries, **arguments)


@pytest.mark.parametrize(
    ("soname", "kind"),
    [
        ("libtvm_ffi.so", Kind.TVM_FFI),
        ("libtvm_ffi.so.0", Kind.TVM_FFI),
        ("libtvm_ffi-1a2b3c4d.so", Kind.TVM_FFI),
        ("libcuda.so.1", Kind.CUDA_DRIVER),
        ("libnvidia-ml.so.1", Kind.CUDA_DRIVER),
        ("libcudart.so.13", Kind.NVIDIA_WHEEL),
        ("ld-linux-x86-64.so.2", Kind.LOADER),
        ("libpython3.11.so.1.0", Kind.PYTHON),
        ("libfoo.so.3", Kind.EXCLUDED),
        ("libsibling.so", Kind.IN_WHEEL),
        ("libgomp-1a2b3c4d.so.1", Kind.VENDORED),
        ("libstdc++.so.6", Kind.SYSTEM),
        ("libgomp.so.1", Kind.NOT_PROVIDED),
    ],
)
def test_kind(soname, kind):
    assert classifier().kind(soname) is kind


def test_the_whitelist_is_the_platforms():
    assert classifier().with_whitelist(frozenset()).kind("libstdc++.so.6") is Kind.NOT_PROVIDED


def test_needs_keep_the_binarys_order():
    needs = classifier().needs(facts(needed=["libc.so.6", "libtvm_ffi.so", "libgomp.so.1"]))
    assert needs == [("libc.so.6", Kind.SYSTEM), ("libtvm_ffi.so", Kind.TVM_FFI), ("libgomp.so.1", Kind.NOT_PROVIDED)]


def test_provider_folder_is_site_packages_relative():
    judged = Classifier.for_wheel(
        [("pkg-1.0.data/platlib/pkg/libk.so", facts(install_name="libk.so")), ("libtop.so", facts())],
        distribution="pkg", excludes=(),
    )
    assert judged.provider_folder("libk.so") == "pkg"
    assert judged.provider_folder("libtop.so") == "."


@pytest.mark.parametrize(
    ("name", "never"),
    [("libtvm_ffi.so", True), ("libcudart-1a2b3c4d.so.13", True), ("libcuda.so.1", True), ("libgomp.so.1", False)],
)
def test_never_vendored(name, never):
    assert is_never_vendored(name) is never
