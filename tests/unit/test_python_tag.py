"""The Python part of the tag, decided on synthetic ELF facts."""

import pytest
from synthetic import binary

from tvmffi_wheel.deciding.python_tag import choose_python_tag, python_c_api_users
from tvmffi_wheel.errors import TvmFfiWheelError


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


