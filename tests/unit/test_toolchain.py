"""toolchain = zig: the checks before anything compiles, zig's glibc list, the toolchain file."""

from __future__ import annotations

import os
import shlex
import threading
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from tvmffi_wheel.compiling.cross_os import HIDDEN_VISIBILITY
from tvmffi_wheel.compiling.settings import ToolchainSettings
from tvmffi_wheel.compiling.toolchain import (
    ToolchainPlan,
    check_toolchain_settings,
    host_architecture,
    plan_toolchain,
    zig_glibc_versions,
)
from tvmffi_wheel.compiling.zig_copy import kept_zig, stable_zig
from tvmffi_wheel.compiling.zig_wrappers import write_toolchain_files
from tvmffi_wheel.errors import TvmFfiWheelError

HOST = host_architecture()
OTHER = "aarch64" if HOST == "x86_64" else "x86_64"

# What `zig targets` prints, cut down: ZON, not JSON.
TARGETS = """.{
    .arch = .{ "aarch64", "x86_64", },
    .glibc = .{
        "2.16.0",
        "2.17.0",
        "2.28.0",
        "2.44.0",
    },
    .cpus = .{ .x86_64 = .{ .znver4 = .{ "adx", }, }, },
}
"""


def fake_zig(folder: Path) -> Path:
    """A `ziglang` package whose zig answers `targets` and `version` like zig 0.17."""
    package = folder / "ziglang"
    package.mkdir(parents=True)
    (package / "targets.zon").write_text(TARGETS)
    zig = package / "zig"
    zig.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = targets ]; then cat {package / "targets.zon"}; exit 0; fi\n'
        'if [ "$1" = version ]; then echo 0.17.1; exit 0; fi\n'
        # `zig cc ... -o FILE`: writes FILE (the glibc shim's object)
        'if [ "$1" = cc ]; then for a do out=$a; done; touch "$out"; exit 0; fi\n'
        "exit 1\n"
    )
    zig.chmod(0o755)
    (package / "lib").mkdir()
    (package / "lib" / "libc.txt").write_text("zig's lib folder\n")
    return zig


def plan(tmp_path: Path, **overrides) -> ToolchainPlan:
    # A cache folder of the test's own: the machine's may keep a zig (zig_copy.kept_zig).
    environ = {"PATH": os.environ["PATH"], "XDG_CACHE_HOME": str(tmp_path / "empty-cache")}
    fields = {name: overrides.pop(name) for name in ("toolchain", "arch", "glibc", "cxx_runtime") if name in overrides}
    settings = ToolchainSettings(name=fields.pop("toolchain", "zig"), **fields)
    arguments: dict[str, Any] = {"uses_cuda": False, "user_defines": {}, "environ": environ,
                                 "search_path": [str(tmp_path)]} | overrides
    if "environ" in overrides:
        arguments["environ"] = environ | overrides["environ"]
    return plan_toolchain(settings, **arguments)


def check(toolchain: str, arch: str = "", glibc: str = "", cxx_runtime: str = "", *, uses_cuda: bool):
    return check_toolchain_settings(ToolchainSettings(toolchain, cxx_runtime, glibc, arch), uses_cuda)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"toolchain": "system", "arch": OTHER}, f"arch = '{OTHER}' on this {HOST} machine needs toolchain = \"zig\""),
        ({"toolchain": "system", "glibc": "2.28"}, "glibc = '2.28' needs toolchain = \"zig\""),
        ({"toolchain": "system", "cxx_runtime": "libstdc++"}, "cxx-runtime = 'libstdc++' needs toolchain = \"zig\""),
        ({"toolchain": "zig", "cxx_runtime": "libc++", "uses_cuda": True}, 'cxx-runtime = "libc++" cannot build CUDA'),
        ({"toolchain": "zig", "cxx_runtime": "libstdc++", "arch": OTHER},
         f"cxx-runtime = \"libstdc++\" compiles with this machine's gcc and nvcc, which build for {HOST}"),
        ({"toolchain": "zig", "uses_cuda": True, "arch": OTHER}, "not arch = "),
        ({"toolchain": "zig", "glibc": "2.16", "uses_cuda": True}, "the oldest CUDA's static runtime binds to"),
        ({"toolchain": "zig", "glibc": "2.16"}, "glibc = '2.16' is older than 2.17"),
        ({"toolchain": "zig", "glibc": "2"}, "glibc = '2' is not a glibc version"),
        ({"toolchain": "zig", "glibc": "latest"}, "glibc = 'latest' is not a glibc version"),
    ],
)
def test_refused_before_anything_is_installed(settings, message):
    arguments = {"arch": "", "glibc": "", "cxx_runtime": "", "uses_cuda": False} | settings
    with pytest.raises(TvmFfiWheelError) as refused:
        check(**arguments)
    assert message in refused.value.problem


def test_the_defaults_and_a_native_system_build_pass():
    assert check("system", "", "", "", uses_cuda=True) is None
    assert check("system", HOST, "", "", uses_cuda=False) is None
    assert check("zig", OTHER, "2.28", "", uses_cuda=False) == (Version("2.28"), "libc++")


def test_cuda_with_zig_links_gccs_runtime_by_default():
    assert check("zig", "", "", "", uses_cuda=True) == (Version("2.17"), "libstdc++")
    assert check("zig", "", "2.28", "libstdc++", uses_cuda=False) == (Version("2.28"), "libstdc++")


def test_zigs_glibc_list_is_read_from_its_targets(tmp_path):
    zig = fake_zig(tmp_path)
    assert zig_glibc_versions(zig) == (Version("2.16"), Version("2.17"), Version("2.28"), Version("2.44"))


def test_plan_targets_the_default_glibc_2_17_and_the_host(tmp_path):
    fake_zig(tmp_path)
    chosen = plan(tmp_path)
    assert (chosen.target, chosen.cross) == (f"{HOST}-linux-gnu.2.17", False)
    other = plan(tmp_path, arch=OTHER, glibc="2.28")
    assert (other.target, other.cross) == (f"{OTHER}-linux-gnu.2.28", True)


def test_a_glibc_zig_does_not_know_is_refused_with_its_range(tmp_path):
    fake_zig(tmp_path)
    with pytest.raises(TvmFfiWheelError) as refused:
        plan(tmp_path, glibc="2.18")
    # The range quoted is the one the backend accepts: zig knows 2.16 too, which is below 2.17.
    assert refused.value.problem == (
        "glibc = '2.18': zig cannot target it; tvmffi-wheel builds for glibc 2.17 to 2.44 with this zig")


def test_missing_zig_and_a_users_toolchain_are_refused(tmp_path):
    with pytest.raises(TvmFfiWheelError, match="ziglang package is not installed"):
        plan(tmp_path)
    fake_zig(tmp_path)
    with pytest.raises(TvmFfiWheelError, match="sets CMAKE_TOOLCHAIN_FILE, which the project"):
        plan(tmp_path, user_defines={"CMAKE_TOOLCHAIN_FILE": "/x.cmake"})
    with pytest.raises(TvmFfiWheelError, match="sets CMAKE_CXX_COMPILER"):
        plan(tmp_path, environ={"CMAKE_CXX_COMPILER": "g++"})
    with pytest.raises(TvmFfiWheelError, match="sets CUDAHOSTCXX"):
        plan(tmp_path, cxx_runtime="libstdc++", environ={"CUDAHOSTCXX": "g++"})
    plan(tmp_path, environ={"CUDAHOSTCXX": "g++"})  # libc++ builds no CUDA: nothing to take over


@pytest.mark.parametrize("cross", [False, True])
def test_toolchain_file_and_wrappers(tmp_path, cross):
    fake_zig(tmp_path / "env")
    chosen = plan(tmp_path / "env", arch=OTHER if cross else "", glibc="2.28")
    environ = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    setup = write_toolchain_files(chosen, environ)
    assert setup.environment == {}
    toolchain_file = Path(setup.defines["CMAKE_TOOLCHAIN_FILE"])
    text = toolchain_file.read_text()
    assert ("set(CMAKE_SYSTEM_NAME Linux)" in text) == cross
    assert (f"set(CMAKE_SYSTEM_PROCESSOR {OTHER})" in text) == cross
    stable = tmp_path / "cache" / "tvmffi-wheel" / "zig"
    (copy,) = stable.iterdir()
    kept = toolchain_file.parent
    assert kept.parent == tmp_path / "cache" / "tvmffi-wheel" / "toolchains"
    cxx = (kept / "c++").read_text()
    compile_command = shlex.join([f"{copy}/zig", "c++", "-target", chosen.target, *HIDDEN_VISIBILITY])
    assert f'exec {compile_command} "$@"\n' in cxx
    # A shared library link without a version script of its own gets the runtime's.
    assert f'"$@" -Wl,--version-script={kept}/runtime.map; fi' in cxx
    assert "_ZNSt" not in cxx and "local:" in (kept / "runtime.map").read_text()
    assert os.access(kept / "c++", os.X_OK)
    assert f'set(CMAKE_AR "{kept / "ar"}" CACHE FILEPATH "zig")' in text
    assert "CMAKE_CUDA_HOST_COMPILER" in text
    # Kept: the same files for the next build, whose CMake cache may name them.
    assert write_toolchain_files(chosen, environ) == setup


def test_zig_is_copied_once_to_a_stable_path_even_by_concurrent_builds(tmp_path):
    zig = fake_zig(tmp_path / "build-env-1")
    environ = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    found: list[Path] = []
    threads = [threading.Thread(target=lambda: found.append(stable_zig(zig, environ))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1 and found[0].is_file()
    assert (found[0].parent / "lib" / "libc.txt").read_text() == "zig's lib folder\n"
    # Another build environment with the same zig release runs the same copy.
    assert stable_zig(fake_zig(tmp_path / "build-env-2"), environ) == found[0]
    leftovers = [p.name for p in (tmp_path / "cache" / "tvmffi-wheel" / "zig").iterdir()]
    assert leftovers == [found[0].parent.name]


def test_a_kept_zig_serves_builds_that_have_no_ziglang(tmp_path):
    environ = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    assert kept_zig(environ) is None  # nothing kept yet: the build asks for ziglang
    kept = stable_zig(fake_zig(tmp_path / "build-env"), environ)
    zig_folder = kept.parent.parent
    (zig_folder / "0.18.0-1").mkdir()  # a release ZIG_REQUIREMENT does not admit
    (zig_folder / "0.18.0-1" / "zig").write_text("")
    (zig_folder / ".0.17.9-partial").mkdir()  # a copy still being made
    assert kept_zig(environ) == kept
    plan = plan_toolchain(ToolchainSettings(name="zig", glibc="2.28"), uses_cuda=False,
                          user_defines={}, environ=environ, search_path=[])
    assert plan.zig == kept
