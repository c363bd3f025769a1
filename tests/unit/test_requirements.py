import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tvmffi_wheel.deciding.requirements import (
    compatible_range,
    merge,
    pin_metadata,
    requirement_names,
    requires_dist,
    tvm_ffi_requirement,
)
from tvmffi_wheel.errors import TvmFfiWheelError

BUILT = Version("0.1.15.post2")


@pytest.mark.parametrize(
    ("version", "expected"),
    [("0.1.15.post2", ">=0.1.15.post2,<0.2"), ("0.3.0", ">=0.3.0,<0.4"), ("1.2.3", ">=1.2.3,<2")],
)
def test_compatible_range_stops_at_the_next_abi(version, expected):
    spec = compatible_range(Version(version))
    assert {str(s) for s in spec} == set(expected.split(","))


def test_no_user_requirement_gets_the_pin():
    requirement, _ = merge(None, BUILT)
    assert set(map(str, requirement.specifier)) == {">=0.1.15.post2", "<0.2"}


def test_unbounded_user_requirement_is_pinned_with_a_message():
    requirement, messages = merge(Requirement("apache-tvm-ffi"), BUILT)
    assert set(map(str, requirement.specifier)) == {">=0.1.15.post2", "<0.2"}
    assert len(messages) == 1 and "no version range" in messages[0]


def test_looser_bounds_are_tightened_with_messages():
    requirement, messages = merge(Requirement("apache-tvm-ffi>=0.1,<1"), BUILT)
    assert set(map(str, requirement.specifier)) == {">=0.1.15.post2", "<0.2"}
    assert any("lower bound tightened from >=0.1" in m for m in messages)
    assert any("upper bound tightened from <1" in m for m in messages)


def test_stricter_user_bounds_win():
    requirement, messages = merge(Requirement("apache-tvm-ffi>=0.1.15.post2,<0.1.17"), BUILT)
    assert set(map(str, requirement.specifier)) == {">=0.1.15.post2", "<0.1.17"}
    assert messages == []


def test_exclusions_and_markers_are_kept():
    user = Requirement('apache-tvm-ffi!=0.1.16; python_version >= "3.9"')
    requirement, _ = merge(user, BUILT)
    assert "!=0.1.16" in map(str, requirement.specifier)
    assert str(requirement.marker) == 'python_version >= "3.9"'


def test_user_range_that_excludes_the_build_environment_is_an_error():
    with pytest.raises(TvmFfiWheelError, match=r"build environment has 0\.1\.15\.post2"):
        merge(Requirement("apache-tvm-ffi<0.1.10"), BUILT)


METADATA = """Metadata-Version: 2.2
Name: demo
Version: 1.0
Requires-Dist: numpy
Requires-Dist: apache-tvm-ffi>=0.1
Provides-Extra: test
Requires-Dist: pytest; extra == "test"

A description.
Requires-Dist: this line is body text, not a header
"""


def test_metadata_merges_the_existing_line_in_place():
    text = pin_metadata(METADATA, BUILT, quiet=True)
    lines = text.splitlines()
    assert lines[4] == "Requires-Dist: apache-tvm-ffi<0.2,>=0.1.15.post2"
    assert "Requires-Dist: this line is body text, not a header" in lines
    assert text.count("apache-tvm-ffi") == 1


def test_metadata_without_requirement_gets_one_after_the_others():
    text = pin_metadata("Metadata-Version: 2.2\nName: demo\nRequires-Dist: numpy\n", BUILT)
    assert text.splitlines()[3] == "Requires-Dist: apache-tvm-ffi<0.2,>=0.1.15.post2"


def test_pinning_is_idempotent():
    once = pin_metadata(METADATA, BUILT, quiet=True)
    assert pin_metadata(once, BUILT, quiet=True) == once


def test_pinned_version_reads_a_full_pin_only():
    from tvmffi_wheel.deciding.requirements import pinned_version

    assert pinned_version(pin_metadata(METADATA, BUILT, quiet=True)) == BUILT
    assert pinned_version(METADATA) is None  # ">=0.1" alone says nothing about the build


def test_requirements_are_read_from_the_header_only():
    metadata = ("Metadata-Version: 2.1\nName: k\nRequires-Dist: numpy>=1\n"
                "Requires-Dist: Apache_TVM_FFI<0.2,>=0.1.15\nRequires-Dist: pytest; extra == \"test\"\n\n"
                "Requires-Dist: in the description, not a requirement\n")
    assert requires_dist(metadata) == ["numpy>=1", "Apache_TVM_FFI<0.2,>=0.1.15", 'pytest; extra == "test"']
    assert requirement_names(metadata) == {"numpy", "apache-tvm-ffi", "pytest"}
    assert str(tvm_ffi_requirement(metadata)) == "Apache_TVM_FFI<0.2,>=0.1.15"
    assert tvm_ffi_requirement("Name: k\n\n") is None
