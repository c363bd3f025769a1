"""The `os` setting: macOS and Windows targets for zig, their refusals, and what CMake's
toolchain file says for them; no compiler."""

from __future__ import annotations

import re

import pytest

from tvmffi_wheel.compiling.cross_os import WINDOWS_SHIM, OsTarget, check_os_settings
from tvmffi_wheel.compiling.settings import ToolchainSettings
from tvmffi_wheel.compiling.settings_reader import load_settings
from tvmffi_wheel.compiling.toolchain import check_toolchain_settings
from tvmffi_wheel.errors import TvmFfiWheelError


def target(os_name: str, arch: str = "", toolchain: str = "zig", glibc: str = "", cxx_runtime: str = "",
           uses_cuda: bool = False, **environ: str) -> OsTarget | None:
    settings = ToolchainSettings(toolchain, cxx_runtime, glibc, arch, os_name)  # type: ignore[arg-type]
    return check_os_settings(settings, uses_cuda, environ)


def test_linux_is_no_os_target() -> None:
    assert target("") is None and target("linux") is None


def test_macos_and_windows_targets() -> None:
    macos = target("macos")
    assert macos == OsTarget("macos", "aarch64", "11.0")
    assert (macos.zig_target, macos.facts_arch) == ("aarch64-macos.11.0", "arm64")
    assert target("macos", MACOSX_DEPLOYMENT_TARGET="13.2") == OsTarget("macos", "aarch64", "13.2")
    assert target("macos", MACOSX_DEPLOYMENT_TARGET="14") == OsTarget("macos", "aarch64", "14.0")
    assert target("macos", MACOSX_DEPLOYMENT_TARGET="11.0.1") == OsTarget("macos", "aarch64", "11.0")
    windows = target("windows")
    assert windows == OsTarget("windows", "x86_64")
    assert (windows.zig_target, windows.facts_arch) == ("x86_64-windows-gnu", "amd64")
    assert check_toolchain_settings(ToolchainSettings("zig", os="macos"), False, {}) == (macos, "libc++")


@pytest.mark.parametrize(("arguments", "message"), [
    ({"os_name": "macos", "toolchain": "system"}, 'os = "macos" on this Linux machine needs toolchain = "zig"'),
    ({"os_name": "windows", "toolchain": "system"}, 'os = "windows" on this Linux machine needs toolchain = "zig"'),
    ({"os_name": "macos", "arch": "x86_64"}, "apache-tvm-ffi publishes macOS wheels for arm64 only"),
    ({"os_name": "windows", "arch": "aarch64"}, "Windows wheels for x86_64 (win_amd64) only"),
    ({"os_name": "macos", "uses_cuda": True}, 'os = "macos" cannot build CUDA: macOS has no CUDA'),
    ({"os_name": "windows", "uses_cuda": True}, 'os = "windows" cannot build CUDA'),
    ({"os_name": "windows", "glibc": "2.28"}, 'glibc = "2.28" is for Linux targets'),
    ({"os_name": "macos", "cxx_runtime": "libstdc++"}, 'cxx-runtime = "libstdc++" is for Linux targets'),
    ({"os_name": "macos", "MACOSX_DEPLOYMENT_TARGET": "10.15"},
     "MACOSX_DEPLOYMENT_TARGET is 10.15, but apache-tvm-ffi's macOS wheels need macOS 11.0"),
    ({"os_name": "macos", "MACOSX_DEPLOYMENT_TARGET": "eleven"}, "MACOSX_DEPLOYMENT_TARGET is 'eleven'"),
])
def test_refusals(arguments: dict, message: str) -> None:
    with pytest.raises(TvmFfiWheelError, match=re.escape(message)):
        target(**arguments)


def test_an_unknown_os_is_refused_by_the_settings() -> None:
    with pytest.raises(TvmFfiWheelError, match="os") as refused:
        load_settings({}, {"tvmffi-wheel.os": "freebsd"}, {})
    assert "macos" in str(refused.value) and "windows" in str(refused.value)


def test_toolchain_lines() -> None:
    macos = OsTarget("macos", "aarch64", "11.0").toolchain_lines("/kept")
    assert "set(CMAKE_SYSTEM_NAME Darwin)" in macos
    assert 'set(CMAKE_SHARED_LIBRARY_RUNTIME_C_FLAG "-Wl,-rpath,")' in macos
    assert 'set(CMAKE_INSTALL_NAME_DIR "@rpath")' in macos
    windows = OsTarget("windows", "x86_64").toolchain_lines("/kept")
    assert "set(CMAKE_SYSTEM_NAME Windows)" in windows
    assert any("/kept/windows_shim.h" in line and "CMAKE_CXX_FLAGS_INIT" in line for line in windows)
    assert 'set(CMAKE_USER_MAKE_RULES_OVERRIDE "/kept/windows-names.cmake")' in windows
    kept = OsTarget("windows", "x86_64").kept_files()
    assert 'set(CMAKE_SHARED_LIBRARY_PREFIX "")' in kept["windows-names.cmake"]
    assert OsTarget("macos", "aarch64", "11.0").kept_files() == {}
    assert not any("windows_shim" in line for line in macos)
    assert WINDOWS_SHIM.is_file()
