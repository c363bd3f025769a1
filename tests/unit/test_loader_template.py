"""The generated loader's own logic: version ranges without `packaging`, and GPU coverage."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tvmffi_wheel.common.tvm_ffi_releases import load_table
from tvmffi_wheel.writing.loader_template import admits, coverage, version_key

RELEASES = [str(r.version) for r in load_table().for_arch("x86_64")]
SPECIFIERS = [
    "<0.2,>=0.1.12", "<0.1.13,>=0.1.12", "!=0.1.8,<0.2,>=0.1.5", "<0.1.13", ">0.1.13", "<=0.1.13.post2",
    "==0.1.12", "!=0.1.14.*", "==0.1.*", "~=0.1.12", ">=0.1.10rc1", "<0.1.11rc1", ">0.1.8",
]


@pytest.mark.parametrize("specifier", SPECIFIERS)
def test_admits_agrees_with_packaging_on_every_release(specifier):
    expected = SpecifierSet(specifier)
    for release in RELEASES:
        assert admits(specifier, release) == expected.contains(Version(release), prereleases=True), (
            specifier, release
        )


@given(st.sampled_from(RELEASES), st.sampled_from(RELEASES))
def test_version_order_agrees_with_packaging(a, b):
    assert (version_key(a) < version_key(b)) == (Version(a) < Version(b))
    assert (version_key(a) == version_key(b)) == (Version(a) == Version(b))


def test_unreadable_clauses_never_block():
    assert admits(">=wat,<0.2", "0.1.12")
    assert admits("<0.2", "not-a-version")


@pytest.mark.parametrize(
    ("device_code", "capability", "expected"),
    [
        (["sm_80", "compute_90"], (8, 6), ("sass", "sm_80")),  # same major, higher minor
        (["sm_86"], (8, 0), None),  # a lower minor is not covered
        (["sm_75", "compute_90"], (12, 0), ("ptx", "compute_90")),  # newer: JIT from PTX
        (["sm_75", "compute_90"], (6, 1), None),
        (["sm_90a"], (9, 0), ("sass", "sm_90a")),
        (["sm_90a"], (10, 0), None),  # arch-specific: that architecture only
        (["sm_100f"], (10, 3), ("sass", "sm_100f")),  # family
        (["sm_100f"], (12, 0), None),
        (["compute_90a"], (10, 0), None),
        (["sm_120", "compute_80"], (12, 1), ("sass", "sm_120")),
    ],
)
def test_coverage(device_code, capability, expected):
    assert coverage(device_code, *capability) == expected


def test_binding_is_immediate_and_names_the_missing_symbol(tmp_path, monkeypatch):
    import subprocess

    from tvmffi_wheel.writing import loader_template

    source = tmp_path / "k.c"
    source.write_text("extern void TVMFFINotInThisRelease(void);\nvoid f(void) { TVMFFINotInThisRelease(); }\n")
    library = tmp_path / "libk.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", library, source], check=True)
    monkeypatch.setattr(loader_template, "BUILD", {"tvm_ffi_version": "0.1.12", "tvm_ffi_requirement": "<0.2,>=0.1.12"})
    with pytest.raises(ImportError, match=r"libk\.so needs the symbol TVMFFINotInThisRelease, which this process does "
                                          r"not provide: apache-tvm-ffi 0\.1\.15 is installed"):
        loader_template._check_binding(library, "0.1.15")
