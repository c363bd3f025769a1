"""scikit-build-core's settings as its own reader sees them: what CMake will receive."""

import pytest

from tvmffi_wheel.compiling._skbuild import read_build_settings


def pyproject(scikit_build):
    return {
        "build-system": {"requires": ["tvmffi-wheel"]},
        "project": {"name": "demo-kernels", "version": "1.0"},
        "tool": {"scikit-build": scikit_build},
    }


ARCHS_FROM_ENV = {"cmake": {"define": {"CMAKE_CUDA_ARCHITECTURES": {"env": "ARCHS", "default": "80-real"}}}}


@pytest.fixture(autouse=True)
def project_folder(tmp_path, monkeypatch):
    (tmp_path / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.18)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ARCHS", raising=False)
    return tmp_path


def defines(table, config=None, environ=None, state="wheel"):
    return read_build_settings(pyproject(table), config or {}, environ or {}, state).cmake_defines


def test_env_table_default():
    assert defines(ARCHS_FROM_ENV) == {"CMAKE_CUDA_ARCHITECTURES": "80-real"}


def test_env_table_value_from_the_environment(monkeypatch):
    monkeypatch.setenv("ARCHS", "90-real;120-virtual")  # scikit-build-core reads os.environ
    assert defines(ARCHS_FROM_ENV) == {"CMAKE_CUDA_ARCHITECTURES": "90-real;120-virtual"}


def test_if_env_override_replaces_the_table_unless_it_inherits():
    table = {
        **ARCHS_FROM_ENV,
        "overrides": [{"if": {"env": {"CUDA_RT": "shared"}},
                       "cmake": {"define": {"CMAKE_CUDA_RUNTIME_LIBRARY": "Shared"}}}],
    }
    assert defines(table, environ={}) == {"CMAKE_CUDA_ARCHITECTURES": "80-real"}
    # scikit-build-core's rule: an override replaces the whole table...
    assert defines(table, environ={"CUDA_RT": "shared"}) == {"CMAKE_CUDA_RUNTIME_LIBRARY": "Shared"}
    # ...unless it asks to inherit it.
    table["overrides"][0]["inherit"] = {"cmake": {"define": "append"}}
    assert defines(table, environ={"CUDA_RT": "shared"}) == {
        "CMAKE_CUDA_ARCHITECTURES": "80-real", "CMAKE_CUDA_RUNTIME_LIBRARY": "Shared"
    }


def test_if_state_override():
    table = {**ARCHS_FROM_ENV, "overrides": [{"if": {"state": "editable"}, "inherit": {"cmake": {"define": "append"}},
                                              "cmake": {"define": {"CMAKE_CUDA_ARCHITECTURES": "native"}}}]}
    assert defines(table, state="wheel")["CMAKE_CUDA_ARCHITECTURES"] == "80-real"
    assert defines(table, state="editable")["CMAKE_CUDA_ARCHITECTURES"] == "native"


def test_every_channel_in_cmakes_order():
    table = {"cmake": {"define": {"A": True, "L": ["x", "y"], "B": "from-define"}, "args": ["-DB:STRING=from-args"]}}
    config = {"cmake.define.C": "3"}
    environ = {"SKBUILD_CMAKE_DEFINE": "D=4", "CMAKE_ARGS": "-DE=5 -D F:BOOL=OFF -DB=from-env"}
    assert defines(table, config, environ) == {
        "A": "TRUE", "L": "x;y", "B": "from-env", "C": "3", "D": "4", "E": "5", "F": "OFF"
    }


def test_the_environment_cmake_runs_in_has_the_env_table():
    table = {"env": {"CUDAARCHS": "75-real", "KEPT": {"env": "HOME", "default": "x"}}}
    settings = read_build_settings(pyproject(table), {}, {"HOME": "/h", "CUDAARCHS": "90-real"}, "wheel")
    assert settings.environment["CUDAARCHS"] == "90-real"  # set-if-unset, as scikit-build-core does
    settings = read_build_settings(pyproject(table), {}, {"HOME": "/h"}, "wheel")
    assert settings.environment["CUDAARCHS"] == "75-real"


def test_packages_are_discovered_as_scikit_build_core_does(project_folder):
    (project_folder / "src" / "demo_kernels").mkdir(parents=True)
    (project_folder / "src" / "demo_kernels" / "__init__.py").write_text("")
    assert read_build_settings(pyproject({}), {}, {}, "wheel").packages == {"demo_kernels": "src/demo_kernels"}
    explicit = read_build_settings(pyproject({"wheel": {"packages": ["python/pkg"]}}), {}, {}, "wheel")
    assert explicit.packages == {"pkg": "python/pkg"}


@pytest.mark.parametrize(
    ("py_api", "python", "warned"),
    [("cp312", (3, 11), True), ("cp312", (3, 12), False), ("cp39", (3, 11), False), ("py3", (3, 11), False),
     ("", (3, 11), False)],
)
def test_a_stable_abi_newer_than_this_python_is_named(py_api, python, warned):
    build = read_build_settings(pyproject({"wheel": {"py-api": py_api}}), {}, {}, "wheel")
    warning = build.py_api_warning(python)
    assert (warning is not None) == warned
    if warned:
        assert f'wheel.py-api = "{py_api}"' in warning and "tagged cp311" in warning
