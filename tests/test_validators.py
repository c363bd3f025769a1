"""Every wheel the tests build passes validators we did not write."""

from __future__ import annotations

import re
import shutil

import pytest

from conftest import assert_independently_valid, only_wheel, run, sbom_of


@pytest.mark.parametrize("fixture", ["example_wheel", "openmp_wheel", "cpython_ext_build", "recipe_build"])
def test_built_wheels_pass_independent_validators(request, tmp_path, fixture):
    built = request.getfixturevalue(fixture)
    if isinstance(built, tuple):
        built = built[0]
    wheel = built if built.suffix == ".whl" else only_wheel(built)
    assert_independently_valid(wheel, tmp_path)


def test_the_openmp_wheel_lists_the_libgomp_it_vendors_with_its_debian_package(openmp_wheel, command):
    document = sbom_of(openmp_wheel)  # every vendored file listed, with its hash
    (gomp,) = [c for c in document["components"] if c["name"] == "libgomp"]
    if shutil.which("dpkg-query") is None:
        pytest.skip("needs dpkg to say which package libgomp came from")
    owner = run(["dpkg-query", "-S", "libgomp.so.1"]).stdout.splitlines()[0].split(":")[0]
    version = run(["dpkg-query", "-W", "-f", "${Version}", owner]).stdout
    assert gomp["version"] == version and gomp["purl"].startswith(f"pkg:deb/debian/{owner}@")
    checked = command("check", openmp_wheel).stdout
    assert f"  sbom      1 component: libgomp (pkg:deb/debian/{owner}@" in checked


def test_the_sbom_names_the_tools_that_built_the_wheel(example_wheel):
    tools = {t["name"]: t.get("version") for t in sbom_of(example_wheel)["metadata"]["tools"]["components"]}
    cmake = re.search(r"cmake version (\S+)", run(["cmake", "--version"]).stdout)
    assert cmake is not None and tools["cmake"] == cmake.group(1)
    gcc = run(["gcc", "-dumpfullversion"]).stdout.strip()
    assert tools["gcc"] == gcc and tools["scikit-build-core"] and tools["tvmffi-wheel"]
