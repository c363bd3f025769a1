"""A new user's trial of the newer surfaces (cross builds, zig, sccache, compat): each bad or
unusual input gets one message that names what the user gave and a fix the tool allows, exit 1,
and nothing left behind. The damaged-wheel cases are in test_bad_wheels.py."""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from conftest import EXAMPLE, assert_refused, copy_project, only_wheel, pip_wheel, run, zig_venv_build
from test_bad_wheels import rewrite


def pip_wheel_in(venv, project: Path, out: Path, *options: str, env=None, ok=False):
    return run([venv.python, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-v", "-w", out, *options,
                project], env={**venv.env, **(env or {})}, ok=ok)


ZIG = ("-C", "tvmffi-wheel.toolchain=zig")


def test_repair_skip_for_windows_or_macos_is_refused(zig_venv, tmp_path):
    project = copy_project(EXAMPLE, tmp_path / "example")
    for os_name in ("windows", "macos"):
        out = tmp_path / f"dist-{os_name}"
        result = pip_wheel_in(zig_venv, project, out, *ZIG, "-C", f"tvmffi-wheel.os={os_name}",
                              "-C", "tvmffi-wheel.repair=skip")
        assert_refused(result, out, 'repair = "skip" writes a linux_<arch> wheel', 'fix: remove repair = "skip"')


def test_cuda_switched_on_in_a_windows_build_gets_a_fix_that_works(zig_venv, tmp_path):
    """The project's own CMake option turns CUDA on, with no architectures declared anywhere."""
    project = copy_project(EXAMPLE, tmp_path / "example")
    out = tmp_path / "dist"
    result = pip_wheel_in(zig_venv, project, out, *ZIG, "-C", "tvmffi-wheel.os=windows",
                          "-C", "cmake.define.EXAMPLE_KERNELS_CUDA=ON")
    assert_refused(result, out, 'the project enables CUDA (CMake\'s CUDA language), but os = "windows" cannot build',
                   "turn the project's CUDA off for this build with its own CMake option")
    fix = result.stdout.split("fix:")[-1]
    assert "cuda.architectures" not in fix and "toolkit" not in fix  # neither works for Windows


def test_cuda_with_cxx_runtime_libcxx_is_named_after_cmake_fails(zig_venv, tmp_path):
    project = copy_project(EXAMPLE, tmp_path / "example")
    out = tmp_path / "dist"
    result = pip_wheel_in(zig_venv, project, out, *ZIG, "-C", "tvmffi-wheel.cxx-runtime=libc++",
                          "-C", "cmake.define.EXAMPLE_KERNELS_CUDA=ON")
    assert_refused(result, out, 'but cxx-runtime = "libc++" cannot build it', 'set cxx-runtime = "libstdc++"')


def test_the_editable_refusal_names_os(zig_venv, tmp_path):
    project = copy_project(EXAMPLE, tmp_path / "example")
    result = run([zig_venv.python, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "-e", project,
                  *ZIG, "-C", "tvmffi-wheel.os=macos"], env=zig_venv.env, ok=False)
    assert 'os = "macos" builds for another machine' in result.stdout
    assert "install editable without os" in result.stdout and "arch" not in result.stdout.split("error:")[-1]


@pytest.mark.parametrize("variable", ["CC", "CXX"])
def test_compilers_named_by_the_environment_are_refused_with_libcxx(zig_venv, tmp_path, variable):
    project = copy_project(EXAMPLE, tmp_path / "example")
    out = tmp_path / "dist"
    # example_project enables CUDA under an option, which makes GCC's runtime zig's default: ask for libc++.
    result = pip_wheel_in(zig_venv, project, out, *ZIG, "-C", "tvmffi-wheel.cxx-runtime=libc++", env={variable: "gcc"})
    assert_refused(result, out, f"the environment names other compilers ({variable}=gcc)",
                   f"unset {variable} for this build")


def test_a_glibc_zig_does_not_offer_quotes_the_range_the_backend_takes(zig_venv, tmp_path):
    project = copy_project(EXAMPLE, tmp_path / "example")
    out = tmp_path / "dist"
    result = pip_wheel_in(zig_venv, project, out, *ZIG, "-C", "tvmffi-wheel.glibc=2.99")
    assert_refused(result, out, "tvmffi-wheel builds for glibc 2.17 to ")


def test_a_deployment_target_with_a_patch_level_builds(zig_venv, tmp_path):
    project = copy_project(EXAMPLE, tmp_path / "example")
    out = tmp_path / "dist"
    result = zig_venv_build(zig_venv, project, out, "-C", "tvmffi-wheel.os=macos")
    assert only_wheel(out).name.endswith("-macosx_11_0_arm64.whl")
    environment = {**zig_venv.env, "MACOSX_DEPLOYMENT_TARGET": "11.0.1"}
    patched = tmp_path / "dist-patch"
    result = run([zig_venv.python, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-v", "-w", patched,
                  *ZIG, "-C", "tvmffi-wheel.os=macos", project], env=environment)
    assert "built for macOS 11.0, which covers it" in result.stdout
    assert only_wheel(patched).name.endswith("-macosx_11_0_arm64.whl")


def test_repair_with_a_lib_path_that_does_not_exist(command, example_wheel, tmp_path):
    out = tmp_path / "out"
    result = command("repair", "-w", out, "--lib-path", tmp_path / "nowhere", example_wheel, ok=False)
    assert f"--lib-path {tmp_path / 'nowhere'} is not a folder" in result.stdout
    assert not out.exists() or not list(out.iterdir())


@pytest.mark.parametrize("which", [0, 1], ids=["macos", "windows"])
def test_compat_says_it_cannot_load_a_wheel_for_another_platform(command, macos_cross_wheels, windows_cross_wheels,
                                                                 which):
    wheel = (macos_cross_wheels, windows_cross_wheels)[which][0].wheel
    result = command("compat", wheel, ok=False)
    platform = wheel.name.rsplit("-", 1)[1].removesuffix(".whl")
    assert f"is for {platform}, which this machine cannot install or load" in result.stdout
    assert f"run `tvmffi-wheel compat` on a {platform} machine" in result.stdout
    assert "no binary in it needs libtvm_ffi" not in result.stdout and "admitted" not in result.stdout


def test_a_macos_tag_for_x86_64_gets_a_fix_the_backend_allows(command, macos_cross_wheels, tmp_path):
    wheel = macos_cross_wheels[0].wheel
    tagged = wheel.name.replace("arm64", "x86_64")

    def retag(entries):
        return [(info, data.replace(b"arm64", b"x86_64") if info.filename.endswith("/WHEEL") else data)
                for info, data in entries]

    bad = rewrite(wheel, tmp_path / tagged, retag)
    out = tmp_path / "out"
    result = command("repair", "-w", out, "--tvm-ffi-version", macos_cross_wheels[0].tvm_ffi_version, bad, ok=False)
    assert "its tag must name the architecture its binaries are built for, arm64" in result.stdout
    assert "cross-compile" not in result.stdout
    assert not out.exists() or not list(out.iterdir())


def _sccache_processes() -> set[int]:
    found = subprocess.run(["pgrep", "-x", "sccache"], capture_output=True, text=True).stdout.split()
    return {int(pid) for pid in found}


def test_an_unreachable_sccache_storage_stops_the_build_and_its_server(build_env, tmp_path):
    before = _sccache_processes()
    project = copy_project(EXAMPLE, tmp_path / "example")
    out = tmp_path / "dist"
    result = pip_wheel(project, out, {**build_env, "SCCACHE_REDIS_ENDPOINT": "redis://127.0.0.1:1"},
                       "-C", "tvmffi-wheel.cache=sccache", ok=False)
    assert_refused(result, out, "sccache could not start its server (redis storage)",
                   'or build without a compiler cache: cache = "none"')
    assert _sccache_processes() <= before  # nothing of this build's is left running


def test_sccache_dir_that_is_a_file_is_named(build_env, tmp_path):
    project = copy_project(EXAMPLE, tmp_path / "example")
    out = tmp_path / "dist"
    cache_file = tmp_path / "not-a-folder"
    cache_file.write_text("")
    result = pip_wheel(project, out, {**build_env, "SCCACHE_DIR": str(cache_file)}, "-C", "tvmffi-wheel.cache=sccache",
                       ok=False)
    assert_refused(result, out, f"SCCACHE_DIR is {cache_file}, which is a file, not a folder")


def test_check_reads_the_dll_folders_block_of_a_windows_wheel(command, windows_cross_wheels, tmp_path):
    """A Windows wheel whose package does not add tvm_ffi.dll's folder loads only after
    `import tvm_ffi`, as a Linux library without its run path: check says so, repair fixes it."""
    wheel = windows_cross_wheels[0].wheel
    report = json.loads(command("check", "--json", wheel, ok=False).stdout)["wheels"][0]
    assert any("no DLL folders block" in problem for problem in report["problems"]), report["problems"]
    out = tmp_path / "out"
    command("repair", "-w", out, "--tvm-ffi-version", windows_cross_wheels[0].tvm_ffi_version, wheel)
    repaired = only_wheel(out)
    assert json.loads(command("check", "--json", repaired).stdout)["wheels"][0]["sound"]
    with zipfile.ZipFile(repaired) as archive:
        assert b"begin tvmffi-wheel: DLL folders" in archive.read(windows_cross_wheels[0].library_member.split("/")[0]
                                                                  + "/__init__.py")
