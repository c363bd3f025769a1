"""tvm-ffi's own examples (../shared/realworld), as a user adopting tvmffi-wheel would build them.

The copies there are unmodified; a test copies one into a folder of its own and changes only
what such a user would: python_packaging's `[build-system]`, and for the quickstart, which is
CMake only, the minimal pyproject.toml and the CMakeLists.txt that wrap its library the way
python_packaging wraps its own (`wheel.install-dir`, `install(TARGETS ... DESTINATION .)`,
`tvm_ffi_install`).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

# The workspace keeps them beside the checkout; TVMFFI_TESTS_REALWORLD points elsewhere (not a
# TVMFFI_WHEEL_ name: the backend refuses environment variables of its prefix that it does not know).
ROOT = Path(os.environ.get("TVMFFI_TESTS_REALWORLD") or Path(__file__).resolve().parents[2] / "shared" / "realworld")
EXAMPLES = ROOT / "apache-tvm-ffi" / "examples"
MISSING = f"needs the unmodified tvm-ffi examples in {EXAMPLES} (set TVMFFI_TESTS_REALWORLD to their folder)"

requires_examples = pytest.mark.skipif(not (EXAMPLES / "python_packaging").is_dir(), reason=MISSING)

SCIKIT_BUILD_SYSTEM = ('requires = ["scikit-build-core>=0.10.0", "apache-tvm-ffi"]\n'
                       'build-backend = "scikit_build_core.build"')
OUR_BUILD_SYSTEM = 'requires = ["tvmffi-wheel"]\nbuild-backend = "tvmffi_wheel.build"'

QUICKSTART_PYPROJECT = """\
[build-system]
requires = ["tvmffi-wheel"]
build-backend = "tvmffi_wheel.build"

[project]
name = "tvm-ffi-quickstart"
version = "0.1.0"
readme = "quickstart/README.md"
dependencies = ["apache-tvm-ffi"]

[tool.scikit-build]
wheel.py-api = "py3"
wheel.install-dir = "tvm_ffi_quickstart"

[tool.scikit-build.cmake.define]
EXAMPLE_NAME = "{example}"
"""

QUICKSTART_CMAKE = """\
cmake_minimum_required(VERSION 3.20)
project(tvm_ffi_quickstart_wheel LANGUAGES CXX)
if(EXAMPLE_NAME STREQUAL "compile_cuda")
  set(CMAKE_CUDA_ARCHITECTURES "75-real;90-virtual")
  set(example_target add_one_cuda)
else()
  set(example_target add_one_cpu)
endif()
add_subdirectory(quickstart)
install(TARGETS ${example_target} DESTINATION .)
tvm_ffi_install(${example_target} DESTINATION .)
"""


def _writable_copy(source: Path, destination: Path) -> Path:
    """The files as a checkout has them: the shared copies are read-only, a checkout is not."""
    shutil.copytree(source, destination)
    for path in [destination, *destination.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return destination


def python_packaging(folder: Path) -> Path:
    """tvm-ffi's python_packaging example with only its [build-system] changed."""
    project = _writable_copy(EXAMPLES / "python_packaging", folder / "python_packaging")
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert SCIKIT_BUILD_SYSTEM in text, "the example's [build-system] is not the one tvm-ffi documents"
    pyproject.write_text(text.replace(SCIKIT_BUILD_SYSTEM, OUR_BUILD_SYSTEM))
    return project


def quickstart(folder: Path, example: str) -> Path:
    """tvm-ffi's quickstart, unmodified in `quickstart/`, wrapped for ``example`` (compile_cpu or
    compile_cuda) in a pyproject.toml and a CMakeLists.txt that installs its library."""
    project = folder / "tvm_ffi_quickstart"
    project.mkdir(parents=True)
    _writable_copy(EXAMPLES / "quickstart", project / "quickstart")
    (project / "pyproject.toml").write_text(QUICKSTART_PYPROJECT.format(example=example))
    (project / "CMakeLists.txt").write_text(QUICKSTART_CMAKE)
    return project
