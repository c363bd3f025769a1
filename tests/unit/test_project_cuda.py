"""CUDA found in a project's sources, for zig's default C++ runtime (compiling/project_cuda.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tvmffi_wheel.compiling.project_cuda import project_cuda
from tvmffi_wheel.compiling.settings import ToolchainSettings
from tvmffi_wheel.compiling.toolchain import check_toolchain_settings, host_architecture


def _project(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


@pytest.mark.parametrize(("files", "reason"), [
    # tvm-ffi's quickstart: LANGUAGES CXX, then enable_language(CUDA) under an option
    ({"CMakeLists.txt": "project(q LANGUAGES CXX)\nif(X)\n  enable_language(CUDA)\nendif()\n"},
     "CMakeLists.txt:3 calls enable_language(CUDA)"),
    ({"CMakeLists.txt": "project(k VERSION 1.0 LANGUAGES CXX CUDA)\n"}, "CMakeLists.txt:1 calls project(k VERSION"),
    ({"CMakeLists.txt": 'set(CMAKE_CUDA_ARCHITECTURES "80-real")\n'},
     "CMakeLists.txt:1 names CMAKE_CUDA_ARCHITECTURES"),
    ({"CMakeLists.txt": "add_subdirectory(sub)\n", "sub/CMakeLists.txt": "enable_language( cuda )\n"},
     "sub/CMakeLists.txt:1 calls enable_language(cuda)"),
    ({"cmake/kernels.cmake": "find_package(CUDAToolkit REQUIRED)\n"}, "cmake/kernels.cmake:1 names CUDAToolkit"),
    ({"CMakeLists.txt": "project(k LANGUAGES CXX)\n", "src/add.cu": "__global__ void f() {}\n"},
     "src/add.cu is a CUDA source"),
])
def test_cuda_is_found_in_the_project(tmp_path: Path, files: dict[str, str], reason: str) -> None:
    found = project_cuda(_project(tmp_path, files))
    assert found is not None and found.startswith(reason), found


@pytest.mark.parametrize("files", [
    {"CMakeLists.txt": "project(p LANGUAGES CXX)\n# enable_language(CUDA) one day\n"},  # a comment
    {"CMakeLists.txt": "project(p LANGUAGES CXX)\nmessage(STATUS \"no CUDA_HOME here\")\n"},
    # a build tree (CMakeCache.txt) and version control hold no sources of the project
    {"CMakeLists.txt": "project(p)\n", "build-wheel/CMakeCache.txt": "", "build-wheel/CMakeFiles/x.cu": "",
     ".git/hooks/y.cu": ""},
])
def test_a_cpu_project_is_not_taken_for_cuda(tmp_path: Path, files: dict[str, str]) -> None:
    assert project_cuda(_project(tmp_path, files)) is None


def _runtime(arch: str = "", cxx_runtime: str = "", os_name: str = "", *, project: bool) -> str:
    settings = ToolchainSettings("zig", cxx_runtime, "", arch, os_name)  # type: ignore[arg-type]
    checked = check_toolchain_settings(settings, False, {}, project_cuda=project)
    assert checked is not None
    return checked[1]


def test_the_project_picks_gccs_runtime_only_where_cuda_can_build() -> None:
    other = "aarch64" if host_architecture() == "x86_64" else "x86_64"
    assert _runtime(project=True) == "libstdc++"
    assert _runtime(project=False) == "libc++"
    # CUDA is never cross-built, and an explicit runtime stays the user's choice.
    assert _runtime(other, project=True) == "libc++"
    assert _runtime(cxx_runtime="libc++", project=True) == "libc++"
    assert _runtime(os_name="macos", project=True) == "libc++"
