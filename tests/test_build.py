"""End to end: real builds with real compilers, installed into fresh virtual environments."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from conftest import (
    EXAMPLE,
    PROJECTS,
    copy_project,
    deserved_platform,
    only_wheel,
    pip_wheel,
    recording_wheels,
    requires_dist,
    run,
    wheel_text,
)
from tvmffi_wheel.inspecting.elf import read_elf_facts
from tvmffi_wheel.inspecting.wheel import inspect_wheel
from tvmffi_wheel.inspecting.wheel_reader import WheelArchive


def assert_pinned(wheel: Path) -> None:
    """One apache-tvm-ffi requirement: >= the build's version, < the next 0.X series."""
    (requirement,) = [Requirement(r) for r in requires_dist(wheel) if r.startswith("apache-tvm-ffi")]
    bounds = {s.operator: Version(s.version) for s in requirement.specifier}
    assert set(bounds) == {">=", "<"}, requirement
    lower, upper = bounds[">="], bounds["<"]
    assert lower.major == 0 and upper == Version(f"0.{lower.minor + 1}"), requirement

LOAD_WITHOUT_TVM_FFI = """
import ctypes, importlib.util, pathlib, sys
spec = importlib.util.find_spec(sys.argv[1])
library = pathlib.Path(spec.submodule_search_locations[0]) / sys.argv[2]
handle = ctypes.CDLL(str(library))
handle[sys.argv[3]]
assert "tvm_ffi" not in sys.modules
print("loaded", library.name)
"""


def elf_facts_in(wheel: Path, member: str, tmp_path: Path):
    with zipfile.ZipFile(wheel) as archive:
        path = Path(archive.extract(member, tmp_path / "unpacked"))
    return read_elf_facts(path, member)


def members(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


# --------------------------------------------------------------------------- example


@pytest.fixture(scope="session")
def example_venv(example_wheel, fresh_venv):
    environment = fresh_venv("example-venv")
    environment.pip_install(example_wheel, "numpy", "pytest")
    return environment


def test_example_wheel_is_tagged_pinned_and_has_no_libtvm_ffi(example_wheel, tmp_path):
    platform = deserved_platform(example_wheel, tmp_path / "elf")
    assert platform.startswith("manylinux_")
    assert example_wheel.name == f"example_kernels-0.1.0-py3-none-{platform}.whl"
    assert_pinned(example_wheel)
    assert not [m for m in members(example_wheel) if "libtvm_ffi" in m]
    assert f"Tag: py3-none-{platform}" in wheel_text(example_wheel, ".dist-info/WHEEL")
    with WheelArchive(example_wheel) as archive:  # RECORD matches every member's content
        inspect_wheel(archive, tmp_path)


def test_example_run_path_was_set_at_link_time(example_wheel, tmp_path):
    facts = elf_facts_in(example_wheel, "example_kernels/lib/libexample_kernels.so", tmp_path)
    assert facts.run_paths == ("$ORIGIN/../../tvm_ffi/lib",)
    assert "libtvm_ffi.so" in facts.needed


def test_example_passes_its_own_tests_from_the_installed_wheel(example_venv, tmp_path):
    result = example_venv.run("-m", "pytest", "-q", "-p", "no:cacheprovider", EXAMPLE / "tests", cwd=tmp_path)
    assert "6 passed" in result.stdout


def test_example_loads_with_ctypes_before_tvm_ffi(example_venv):
    result = example_venv.run(
        "-c", LOAD_WITHOUT_TVM_FFI, "example_kernels", "lib/libexample_kernels.so", "__tvm_ffi_add_one"
    )
    assert "loaded libexample_kernels.so" in result.stdout


def test_example_exports_only_tvm_ffi_entry_points(example_wheel, tmp_path):
    with zipfile.ZipFile(example_wheel) as archive:
        path = archive.extract("example_kernels/lib/libexample_kernels.so", tmp_path)
    lines = run(["nm", "-D", "--defined-only", path]).stdout.splitlines()
    exported = [line.split()[-1] for line in lines if line.strip()]
    assert {"__tvm_ffi_add_one", "__tvm_ffi_axpy", "__tvm_ffi_total"} <= set(exported)
    assert [s for s in exported if not s.startswith("__tvm_ffi_")] == []


# --------------------------------------------------------------------------- the recipe


def test_recipe_builds_sdist_and_a_repaired_wheel_from_it(recipe_build, tmp_path):
    assert len(list(recipe_build.glob("my_ffi_extension-0.1.0.tar.gz"))) == 1
    wheel = only_wheel(recipe_build)
    assert wheel.name == f"my_ffi_extension-0.1.0-py3-none-{deserved_platform(wheel, tmp_path / 'elf')}.whl"
    assert_pinned(wheel)
    # The recipe sets no run path; the repair step adds it, and the build tree's is gone.
    facts = elf_facts_in(wheel, "my_ffi_extension/libmy_ffi_extension.so", tmp_path)
    assert facts.run_paths == ("$ORIGIN/../tvm_ffi/lib",)


def test_recipe_wheel_works_in_a_fresh_venv(recipe_build, fresh_venv):
    environment = fresh_venv("recipe-venv")
    environment.pip_install(only_wheel(recipe_build))
    code = (
        "import my_ffi_extension as m\n"
        "assert m.add_two(3) == 5\n"
        "try:\n    m.raise_error('boom')\nexcept RuntimeError as e:\n    assert 'boom' in str(e)\n"
        "else:\n    raise SystemExit('no error raised')\n"
        "print('recipe ok')\n"
    )
    assert "recipe ok" in environment.run("-c", code).stdout
    loaded = environment.run(
        "-c", LOAD_WITHOUT_TVM_FFI, "my_ffi_extension", "libmy_ffi_extension.so", "__tvm_ffi_add_two"
    )
    assert "loaded" in loaded.stdout


# --------------------------------------------------------------------------- libgomp


def test_openmp_kernel_vendors_libgomp_and_runs(openmp_wheel, tmp_path, fresh_venv):
    wheel = openmp_wheel
    # The vendored libgomp's own symbol versions count: it is one of the wheel's binaries.
    assert wheel.name == f"openmp_kernels-1.0.0-py3-none-{deserved_platform(wheel, tmp_path / 'elf')}.whl"
    vendored = [m for m in members(wheel) if m.startswith("openmp_kernels.libs/")]
    assert len(vendored) == 1 and Path(vendored[0]).name.startswith("libgomp-")
    facts = elf_facts_in(wheel, "openmp_kernels/libopenmp_kernels.so", tmp_path)
    assert Path(vendored[0]).name in facts.needed
    assert "libgomp.so.1" not in facts.needed
    assert facts.run_paths == ("$ORIGIN/../tvm_ffi/lib", "$ORIGIN/../openmp_kernels.libs")
    # the user's looser lower bound (>=0.1) was tightened
    assert_pinned(wheel)

    environment = fresh_venv("openmp-venv")
    environment.pip_install(wheel, "numpy")
    code = (
        "import numpy as np, openmp_kernels as k\n"
        "x = np.arange(1000, dtype=np.float32); out = np.empty_like(x)\n"
        "k.parallel_double(x, out)\n"
        "np.testing.assert_array_equal(out, 2 * x)\n"
        "assert k.max_threads() >= 1\n"
        "print('openmp ok')\n"
    )
    assert "openmp ok" in environment.run("-c", code).stdout


# --------------------------------------------------------------------------- Python ABI


def test_cpython_extension_gets_an_honest_cpython_tag(cpython_ext_build, fresh_venv):
    wheel, log = cpython_ext_build
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert wheel.name.startswith(f"cpython_ext-0.2.0-{tag}-{tag}-manylinux_")
    assert "uses the Python C API" in log and "cpython_ext.cpython-" in log
    environment = fresh_venv("ext-venv")
    environment.pip_install(wheel)
    assert environment.run("-c", "import cpython_ext; print(cpython_ext.triple(4))").stdout.strip() == "12"


def test_py3_claim_for_a_cpython_extension_is_refused(tmp_path, build_env):
    project = copy_project(PROJECTS / "cpython_ext", tmp_path / "ext")
    result = pip_wheel(project, tmp_path / "dist", build_env, "-C", "wheel.py-api=py3", ok=False)
    assert "uses the Python C API" in result.stdout
    assert "wheel.py-api gives the tag py3-none" in result.stdout
    assert not list((tmp_path / "dist").glob("*.whl"))


# --------------------------------------------------------------------------- options


def test_repair_skip_writes_a_linux_wheel_that_is_still_pinned(tmp_path, build_env):
    project = copy_project(EXAMPLE, tmp_path / "example")
    pip_wheel(project, tmp_path / "dist", build_env, "-C", "tvmffi-wheel.repair=skip")
    wheel = only_wheel(tmp_path / "dist")
    assert wheel.name == "example_kernels-0.1.0-py3-none-linux_x86_64.whl"
    assert_pinned(wheel)


def test_editable_install_can_call_the_kernels(tmp_path, build_env, fresh_venv):
    project = copy_project(EXAMPLE, tmp_path / "example")
    environment = fresh_venv("editable-venv")
    environment.pip_install("numpy")
    environment.pip_install("-e", project)
    code = (
        "import numpy as np, example_kernels as k\n"
        "x = np.ones(4, np.float32); out = np.empty_like(x); k.add_one(x, out)\n"
        "assert (out == 2).all(); print('editable ok')\n"
    )
    assert "editable ok" in environment.run("-c", code, cwd=tmp_path).stdout


def test_uv_build_gives_the_same_repaired_wheel(tmp_path, build_env, backend_dist):
    project = copy_project(EXAMPLE, tmp_path / "example")
    env = dict(build_env, UV_FIND_LINKS=str(backend_dist))
    recording_wheels(run([sys.executable, "-m", "uv", "build", "--wheel", "-o", tmp_path / "dist", project], env=env),
                     tmp_path / "dist")
    wheel = only_wheel(tmp_path / "dist")
    assert wheel.name == f"example_kernels-0.1.0-py3-none-{deserved_platform(wheel, tmp_path / 'elf')}.whl"
    assert_pinned(wheel)
