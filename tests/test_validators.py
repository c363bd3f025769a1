"""Every wheel the tests build passes validators we did not write."""

from __future__ import annotations

import pytest

from conftest import assert_independently_valid, only_wheel


@pytest.mark.parametrize("fixture", ["example_wheel", "openmp_wheel", "cpython_ext_build", "recipe_build"])
def test_built_wheels_pass_independent_validators(request, tmp_path, fixture):
    built = request.getfixturevalue(fixture)
    if isinstance(built, tuple):
        built = built[0]
    wheel = built if built.suffix == ".whl" else only_wheel(built)
    assert_independently_valid(wheel, tmp_path)
