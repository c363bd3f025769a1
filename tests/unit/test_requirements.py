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
    requirement, _, _ = merge(None, BUILT)
    assert set(map(str, requirement.specifier)) == {">=0.1.15.post2", "<0.2"}


def test_unbounded_user_requirement_is_pinned_with_a_message():
    requirement, notes, warnings = merge(Requirement("apache-tvm-ffi"), BUILT)
    assert set(map(str, requirement.specifier)) == {">=0.1.15.post2", "<0.2"}
    assert len(notes) == 1 and "no version range" in notes[0] and warnings == []


def test_looser_bounds_are_tightened_with_messages():
    requirement, _, messages = merge(Requirement("apache-tvm-ffi>=0.1,<1"), BUILT)
    assert set(map(str, requirement.specifier)) == {">=0.1.15.post2", "<0.2"}
    assert any("lower bound tightened from >=0.1" in m for m in messages)
    assert any("upper bound tightened from <1" in m for m in messages)


def test_stricter_user_bounds_win():
    requirement, notes, warnings = merge(Requirement("apache-tvm-ffi>=0.1.15.post2,<0.1.17"), BUILT)
    assert set(map(str, requirement.specifier)) == {">=0.1.15.post2", "<0.1.17"}
    assert notes == warnings == []


@pytest.mark.parametrize("operator", ["==", "==="])
def test_an_exact_pin_is_kept_as_written_with_a_warning(operator):
    requirement, notes, warnings = merge(Requirement(f"apache-tvm-ffi{operator}0.1.15.post2"), BUILT)
    assert str(requirement) == f"apache-tvm-ffi{operator}0.1.15.post2"
    assert notes == [] and len(warnings) == 1 and "exact pin, kept as written" in warnings[0]
    with pytest.raises(TvmFfiWheelError, match=r"built against 0\.1\.15\.post2"):
        merge(Requirement(f"apache-tvm-ffi{operator}0.1.8.post2"), BUILT)


def test_a_wildcard_pin_is_a_range():
    requirement, _, warnings = merge(Requirement("apache-tvm-ffi==0.1.*"), BUILT)
    assert set(map(str, requirement.specifier)) == {"==0.1.*", ">=0.1.15.post2", "<0.2"} and warnings == []


def test_exclusions_and_markers_are_kept():
    user = Requirement('apache-tvm-ffi!=0.1.16; python_version >= "3.9"')
    requirement, _, _ = merge(user, BUILT)
    assert "!=0.1.16" in map(str, requirement.specifier)
    assert str(requirement.marker) == 'python_version >= "3.9"'


def test_user_range_that_excludes_the_build_environment_is_an_error():
    with pytest.raises(TvmFfiWheelError, match=r"but the wheel is built against 0\.1\.15\.post2"):
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


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [("apache-tvm-ffi<0.2,>=0.1.15.post2", "0.1.15.post2"), ("apache-tvm-ffi>=0.1.8.post2", "0.1.8.post2"),
     ("apache-tvm-ffi==0.1.8.post2", "0.1.8.post2"), ("apache-tvm-ffi>0.1.8", None), ("apache-tvm-ffi<0.2", None),
     ("apache-tvm-ffi", None)],
)
def test_pinned_version_is_the_wheels_own_lower_bound(requirement, expected):
    from tvmffi_wheel.deciding.requirements import pinned_version

    metadata = f"Metadata-Version: 2.1\nName: k\nRequires-Dist: {requirement}\n"
    assert pinned_version(metadata) == (Version(expected) if expected else None)
    assert pinned_version(pin_metadata(METADATA, BUILT, quiet=True)) == BUILT


def test_requirements_are_read_from_the_header_only():
    metadata = ("Metadata-Version: 2.1\nName: k\nRequires-Dist: numpy>=1\n"
                "Requires-Dist: Apache_TVM_FFI<0.2,>=0.1.15\nRequires-Dist: pytest; extra == \"test\"\n\n"
                "Requires-Dist: in the description, not a requirement\n")
    assert requires_dist(metadata) == ["numpy>=1", "Apache_TVM_FFI<0.2,>=0.1.15", 'pytest; extra == "test"']
    assert requirement_names(metadata) == {"numpy", "apache-tvm-ffi", "pytest"}
    assert str(tvm_ffi_requirement(metadata)) == "Apache_TVM_FFI<0.2,>=0.1.15"
    assert tvm_ffi_requirement("Name: k\n\n") is None
