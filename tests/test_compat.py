"""The tvm-ffi range from the binaries' symbols, `tvmffi-wheel compat`, and the loader's tvm-ffi check.

The fixture is a kernel built against apache-tvm-ffi 0.1.12 that calls json::Stringify,
whose mangled name changed in 0.1.13.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from conftest import PROJECTS, copy_project, only_wheel, pip_wheel, requires_dist
from test_bad_wheels import edit, rewrite

OLD_STRINGIFY = "_ZN3tvm3ffi4json9StringifyERKNS0_3AnyENS0_8OptionalIivEE"


def tvm_ffi_requirement(wheel: Path) -> Requirement:
    (requirement,) = [Requirement(r) for r in requires_dist(wheel) if r.startswith("apache-tvm-ffi")]
    return requirement


@pytest.fixture(scope="session")
def json_kernel_build(tmp_path_factory, build_env) -> tuple[Path, str]:
    project = copy_project(PROJECTS / "json_kernel", tmp_path_factory.mktemp("json") / "json_kernel")
    out = tmp_path_factory.mktemp("json-dist")
    result = pip_wheel(project, out, build_env)
    return only_wheel(out), result.stdout


def test_a_removed_cpp_symbol_bounds_the_range(json_kernel_build):
    wheel, log = json_kernel_build
    requirement = tvm_ffi_requirement(wheel)
    assert str(requirement.specifier) == "<0.1.13,>=0.1.12"
    assert requirement.specifier.contains(Version("0.1.12"))
    for later in ("0.1.13.post3", "0.1.14.post1", "0.1.15.post2"):
        assert not requirement.specifier.contains(Version(later))
    assert f"apache-tvm-ffi 0.1.13 lacks {OLD_STRINGIFY}: upper bound <0.1.13" in log
    assert "C++ symbols imported from libtvm_ffi by json_kernel/libjson_kernel.so" in log


def test_the_pinned_wheel_resolves_and_works(json_kernel_build, fresh_venv, tmp_path):
    environment = fresh_venv("json-kernel")
    environment.pip_install(json_kernel_build[0])
    code = "import json_kernel, tvm_ffi; print(json_kernel.pair_to_json(1, 2), tvm_ffi.__version__)"
    assert environment.run("-c", code, cwd=tmp_path).stdout.split() == ["[1,2]", "0.1.12"]


def test_without_the_cpp_call_the_range_stays_the_minor(tmp_path, build_env):
    project = copy_project(PROJECTS / "json_kernel", tmp_path / "json_kernel")
    pip_wheel(project, tmp_path / "dist", build_env, "-C", "cmake.define.JSON_KERNEL_STRINGIFY=OFF")
    assert str(tvm_ffi_requirement(only_wheel(tmp_path / "dist")).specifier) == "<0.2,>=0.1.12"


def test_the_loader_refuses_a_tvm_ffi_outside_the_range(json_kernel_build, fresh_venv, tmp_path):
    environment = fresh_venv("json-kernel-wrong")
    environment.pip_install(json_kernel_build[0])
    environment.pip_install("--no-deps", "apache-tvm-ffi==0.1.15.post2")
    result = environment.run("-c", "import json_kernel", cwd=tmp_path, ok=False)
    assert "ImportError: json_kernel needs apache-tvm-ffi<0.1.13,>=0.1.12 (built against 0.1.12), but " \
           "apache-tvm-ffi 0.1.15.post2 is installed; fix: pip install 'apache-tvm-ffi<0.1.13,>=0.1.12'" \
           in result.stdout


def test_check_reports_the_imports_and_the_admitted_releases(json_kernel_build, command):
    document = json.loads(command("check", "--json", json_kernel_build[0]).stdout)
    (wheel,) = document["wheels"]
    (binary,) = wheel["binaries"]
    assert {"symbol": OLD_STRINGIFY, "abi": "c++"} in binary["tvm_ffi_imports"]
    assert {"symbol": "TVMFFIErrorSetRaised", "abi": "c"} in binary["tvm_ffi_imports"]
    assert wheel["tvm_ffi_releases"] == [{"version": "0.1.12", "exports_all": True, "missing": []}]


def widened(wheel: Path, folder: Path) -> Path:
    """The wheel with its Requires-Dist widened by hand to the whole 0.1 series."""
    metadata = next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".dist-info/METADATA"))
    folder.mkdir()
    return rewrite(wheel, folder / wheel.name, edit(metadata, lambda data: data.replace(
        b"apache-tvm-ffi<0.1.13,>=0.1.12", b"apache-tvm-ffi<0.2,>=0.1.12")))


def test_compat_passes_the_honest_wheel_and_fails_the_widened_one(json_kernel_build, command, tmp_path):
    honest = command("compat", json_kernel_build[0])  # lowest,highest of what it admits: 0.1.12
    assert "apache-tvm-ffi 0.1.12: ok" in honest.stdout

    wide = widened(json_kernel_build[0], tmp_path / "wide")
    check = command("check", wide, ok=False)
    assert f"admits apache-tvm-ffi 0.1.13.post3, which does not export {OLD_STRINGIFY}" in check.stdout
    result = command("compat", wide, "--versions", "0.1.12,0.1.13.post3", "--json", ok=False)
    assert result.returncode == 1
    (report,) = json.loads(result.stdout[result.stdout.index("\n{") :])["wheels"]  # after the progress lines
    ok, broken = report["results"]
    assert (ok["version"], ok["ok"]) == ("0.1.12", True)
    assert (broken["version"], broken["ok"], broken["in_range"]) == ("0.1.13.post3", False, True)
    library = next(f for f in broken["failures"] if f["what"] == "json_kernel/libjson_kernel.so")
    assert library["missing_symbol"] == OLD_STRINGIFY


def test_compat_tests_a_named_version_outside_the_range(json_kernel_build, command):
    result = command("compat", json_kernel_build[0], "--versions", "0.1.13.post3", ok=False)
    assert "apache-tvm-ffi 0.1.13.post3: FAILED (outside the wheel's range)" in result.stdout
    assert f"missing symbol {OLD_STRINGIFY}" in result.stdout


@pytest.mark.parametrize(
    ("arguments", "environment", "message"),
    [
        (["--versions", "newest"], {}, "--versions: 'newest' is neither a version nor lowest, highest or all"),
        (["--versions", "0.1.99"], {}, "apache-tvm-ffi 0.1.99 does not exist on the package index"),
        ([], {"PIP_CONFIG_FILE": "/dev/null", "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_FIND_LINKS": "",
              "PIP_RETRIES": "0", "PIP_TIMEOUT": "2"}, "pip found no apache-tvm-ffi release at all"),
    ],
    ids=["unknown-selection", "no-such-release", "index-unreachable"],
)
def test_compat_bad_input(json_kernel_build, backend_venv, arguments, environment, message):
    from conftest import run

    script = backend_venv.path / "bin" / "tvmffi-wheel"
    env = {**backend_venv.env, **environment}
    result = run([script, "compat", json_kernel_build[0], *arguments], env=env, ok=False)
    assert result.returncode == 1 and message in result.stdout and "Traceback" not in result.stdout


def test_compat_refuses_a_wheel_without_a_kernel_library(command, tmp_path):
    wheel = tmp_path / "pure-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pure/__init__.py", "")
        archive.writestr("pure-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: pure\nVersion: 1.0\n")
        archive.writestr("pure-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nTag: py3-none-any\n")
        archive.writestr("pure-1.0.dist-info/RECORD", "")
    result = command("compat", wheel, ok=False)
    assert "pure-1.0-py3-none-any.whl has no kernel library" in result.stdout
