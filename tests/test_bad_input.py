"""Bad input: one clear message, a non-zero exit, and no wheel, for each case."""

from __future__ import annotations

import venv
from pathlib import Path

import pytest

from conftest import EXAMPLE, Venv, copy_project, pip_wheel

CALL_BUILD_WHEEL = (
    "import os, sys; os.chdir(sys.argv[1]); "
    "from tvmffi_wheel import build; print(build.build_wheel(sys.argv[2]))"
)


@pytest.fixture
def example(tmp_path) -> Path:
    return copy_project(EXAMPLE, tmp_path / "example")


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def add_option(project: Path, line: str) -> None:
    """Add a line to the project's [tool.tvmffi-wheel] table."""
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert "[tool.tvmffi-wheel]\n" in text
    pyproject.write_text(text.replace("[tool.tvmffi-wheel]\n", f"[tool.tvmffi-wheel]\n{line}\n"))


def assert_failed_cleanly(result, out: Path, *expected: str) -> None:
    assert result.returncode != 0
    for text in expected:
        assert text in result.stdout, f"{text!r} missing from:\n{result.stdout[-4000:]}"
    assert "Traceback" not in result.stdout
    leftovers = list(out.iterdir()) if out.exists() else []
    assert leftovers == [], leftovers


def test_misspelled_option(example, tmp_path, build_env):
    add_option(example, 'repiar = "skip"')
    result = pip_wheel(example, tmp_path / "dist", build_env, ok=False)
    assert_failed_cleanly(
        result, tmp_path / "dist", "unknown option `repiar`", "did you mean `repair`", "valid options are"
    )


def test_option_of_the_wrong_type(example, tmp_path, build_env):
    add_option(example, 'exclude = "libfoo.so"')
    result = pip_wheel(example, tmp_path / "dist", build_env, ok=False)
    assert_failed_cleanly(result, tmp_path / "dist", "option `exclude`", "must be a list of strings")


def test_compiler_error_is_shown(example, tmp_path, build_env):
    append(example / "src" / "kernels.cc", "\nthis is not C++;\n")
    result = pip_wheel(example, tmp_path / "dist", build_env, ok=False)
    assert_failed_cleanly(result, tmp_path / "dist", "kernels.cc", "error:")


def test_needed_library_that_cannot_be_found(tmp_path, build_env):
    project = tmp_path / "forgot_install"
    (project / "src").mkdir(parents=True)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["tvmffi-wheel"]\nbuild-backend = "tvmffi_wheel.build"\n'
        '[project]\nname = "forgot-install"\nversion = "1.0"\n'
    )
    # libhelper is linked but never installed: the wheel's kernel needs a library
    # that exists only in the (deleted) build tree.
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.18)\nproject(forgot LANGUAGES CXX)\n"
        "add_library(helper SHARED src/helper.cc)\n"
        "add_library(kernel SHARED src/kernel.cc)\n"
        "target_link_libraries(kernel PRIVATE helper)\n"
        "install(TARGETS kernel LIBRARY DESTINATION forgot)\n"
    )
    (project / "src" / "helper.cc").write_text("int helper() { return 1; }\n")
    (project / "src" / "kernel.cc").write_text("int helper();\nint kernel() { return helper(); }\n")
    result = pip_wheel(project, tmp_path / "dist", build_env, ok=False)
    assert_failed_cleanly(
        result, tmp_path / "dist", "forgot/libkernel.so needs libhelper.so", "cannot be found"
    )


def test_output_folder_that_cannot_be_created(example, tmp_path, backend_venv):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = backend_venv.run("-c", CALL_BUILD_WHEEL, example, blocker / "dist", ok=False)
    assert_failed_cleanly(result, tmp_path / "nothing", "output folder", "cannot be created")


def test_pyproject_that_is_not_toml(example, tmp_path, backend_venv):
    (example / "pyproject.toml").write_text("[project\nname = 'x'\n")
    out = tmp_path / "dist"
    result = backend_venv.run("-c", CALL_BUILD_WHEEL, example, out, ok=False)
    assert_failed_cleanly(result, out, "pyproject.toml is not valid TOML")


def test_tvm_ffi_missing_from_the_build_environment(example, tmp_path, backend_dist, build_env):
    path = tmp_path / "no-tvm-ffi"
    venv.create(path, with_pip=True)
    environment = Venv(path, build_env)
    environment.pip_install("tvmffi-wheel")
    out = tmp_path / "dist"
    result = environment.run(
        "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-w", out, example, ok=False
    )
    assert_failed_cleanly(result, out, "apache-tvm-ffi cannot be imported in the build environment")


@pytest.mark.parametrize(
    ("loader", "message"),
    [
        ("_native.py", "is not a module path inside a package"),
        ("example_kernels/__init__.py", "would overwrite the source file python/example_kernels/__init__.py"),
    ],
)
def test_loader_in_the_wrong_place_stops_before_compiling(example, tmp_path, build_env, loader, message):
    pyproject = example / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('loader = "example_kernels/_native.py"', f'loader = "{loader}"'))
    result = pip_wheel(example, tmp_path / "dist", build_env, ok=False)
    assert_failed_cleanly(result, tmp_path / "dist", message)
    assert "Building CXX object" not in result.stdout


def test_loader_outside_the_packages_of_the_wheel(example, tmp_path, build_env):
    pyproject = example / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('loader = "example_kernels/_native.py"',
                                                       'loader = "elsewhere/_native.py"'))
    result = pip_wheel(example, tmp_path / "dist", build_env, ok=False)
    assert_failed_cleanly(result, tmp_path / "dist", "is outside the wheel's packages: the wheel has no elsewhere/")
