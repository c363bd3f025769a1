"""What a new user hit: paths with spaces, CUDA outside PATH, exact pins, mistakes that
passed in silence, errors blamed on the wrong party. Each built with the real compilers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import (
    EXAMPLE,
    PROJECTS,
    assert_refused,
    copy_project,
    only_wheel,
    pip_wheel,
    recording_wheels,
    requires_dist,
    run,
    wheel_text,
)
from test_bad_wheels import edit, rewrite
from tvmffi_wheel.compiling.cuda import find_nvcc
from tvmffi_wheel.deciding.requirements import pinned_version

NVCC = find_nvcc(os.environ)
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="needs nvcc")
CUDA = ["-C", "cmake.define.EXAMPLE_KERNELS_CUDA=ON"]
LIBRARY = "example_kernels/lib/libexample_kernels.so"


def built_against(wheel: Path):
    version = pinned_version(wheel_text(wheel, ".dist-info/METADATA"))
    assert version is not None
    return version


def without_nvcc_on_path(env: dict[str, str]) -> dict[str, str]:
    """The environment with every PATH folder that holds an nvcc left out, and no CUDA variables."""
    kept = [entry for entry in env["PATH"].split(os.pathsep) if not (Path(entry) / "nvcc").exists()]
    clean = {k: v for k, v in env.items() if k not in ("CUDACXX", "CUDA_HOME", "CUDA_PATH")}
    return {**clean, "PATH": os.pathsep.join(kept)}


def cuda_root() -> Path | None:
    """A toolkit folder (with bin/nvcc) the backend can be pointed at."""
    for candidate in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if candidate and (Path(candidate) / "bin" / "nvcc").is_file():
            return Path(candidate).resolve()
    return None


def pip_wheel_quietly(project: Path, out: Path, env, *extra, ok=True):
    """`pip wheel` as a user types it: no -v, so pip hides the backend's output."""
    return recording_wheels(
        run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", out, *extra, project], env=env, ok=ok), out
    )


def pip_wheel_in(environment, project: Path, out: Path, *extra, env=None, ok=True):
    """`pip wheel --no-build-isolation` in an environment that has the backend: a build that
    stops before compiling needs no isolated environment set up first."""
    return recording_wheels(
        environment.run("-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-w", out, *extra, project,
                        env=env, ok=ok),
        out,
    )


def add_dependency(project: Path, requirement: str) -> None:
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert 'dependencies = ["apache-tvm-ffi"]' in text
    pyproject.write_text(text.replace('dependencies = ["apache-tvm-ffi"]', f"dependencies = [{requirement!r}]"))


def test_a_project_and_tmpdir_with_spaces_and_non_ascii_letters_build(tmp_path, build_env, backend_venv):
    project = copy_project(EXAMPLE, tmp_path / "my kernels ünï" / "example")
    tmpdir = tmp_path / "tmp dir é"
    tmpdir.mkdir()
    out = tmp_path / "dist"
    pip_wheel(project, out, {**build_env, "TMPDIR": str(tmpdir)})
    wheel = only_wheel(out)
    with zipfile.ZipFile(wheel) as archive:
        library = archive.read(LIBRARY)
    assert b"my kernels" not in library and str(tmpdir).encode() not in library  # mapped out
    target = tmp_path / "installed"
    backend_venv.run("-m", "pip", "install", "-q", "--no-deps", "--target", target, wheel)
    code = ("import numpy as np, example_kernels as k\n"
            "x = np.ones(4, np.float32); out = np.empty_like(x); k.add_one(x, out); assert (out == 2).all()")
    backend_venv.run("-c", code, cwd=tmp_path, env={"PYTHONPATH": str(target)})


@needs_nvcc
def test_cuda_through_cuda_home_only_undeclared_architectures_and_a_bare_runtime(tmp_path, build_env, command):
    """nvcc reachable only through CUDA_HOME; the architectures set inside CMakeLists.txt, as
    tvm-ffi's examples do, so tvmffi-wheel is told none; the shared runtime with the project
    requiring a bare nvidia-cuda-runtime."""
    root = cuda_root()
    if root is None:
        pytest.skip("no CUDA toolkit folder to point CUDA_HOME at")
    project = copy_project(EXAMPLE, tmp_path / "example")
    add_dependency(project, "nvidia-cuda-runtime")
    cmakelists = project / "CMakeLists.txt"
    cmakelists.write_text(cmakelists.read_text().replace(
        "target_compile_features(example_kernels PRIVATE cxx_std_17)",
        'target_compile_features(example_kernels PRIVATE cxx_std_17)\n'
        'set_target_properties(example_kernels PROPERTIES CUDA_ARCHITECTURES "75-real;90-virtual")'))
    env = {**without_nvcc_on_path(build_env), "CUDA_HOME": str(root)}
    result = pip_wheel(project, tmp_path / "dist", env, *CUDA, "-C", "tvmffi-wheel.cuda.runtime=shared")
    wheel = only_wheel(tmp_path / "dist")
    assert "the CUDA architectures are not declared" in result.stdout
    facts = json.loads(wheel_text(wheel, ".dist-info/tvmffi_wheel.json"))
    toolkit = facts["cuda"]["toolkit"]
    major = int(toolkit.split(".")[0])
    assert facts["cuda"]["runtime"] == "shared" and facts["cuda"]["toolkit_source"] == "system"
    # Read back from the device code, in CMake's syntax.
    assert facts["cuda"]["architectures"] == "75-real;90-virtual"
    assert sorted(facts["device_code"]) == ["PTX compute_90", "SASS sm_75"]
    assert any("not declared" in warning for warning in facts["warnings"])
    assert f"nvidia-cuda-runtime<{major + 1},>={toolkit}" in requires_dist(wheel)
    checked = command("check", wheel)
    assert "warning: the build warned: the CUDA architectures are not declared" in checked.stdout


@needs_nvcc
def test_cuda_in_its_default_prefix_only_from_a_folder_with_a_space(tmp_path, build_env, command):
    if not Path("/usr/local/cuda/bin/nvcc").is_file():
        pytest.skip("no toolkit in /usr/local/cuda")
    project = copy_project(EXAMPLE, tmp_path / "gpu kernels é" / "example")
    tmpdir = tmp_path / "tmp dir"
    tmpdir.mkdir()
    env = {**without_nvcc_on_path(build_env), "TMPDIR": str(tmpdir)}
    pip_wheel(project, tmp_path / "dist", env, *CUDA, "-C", "tvmffi-wheel.cuda.architectures=75-real;90-virtual")
    wheel = only_wheel(tmp_path / "dist")
    facts = json.loads(wheel_text(wheel, ".dist-info/tvmffi_wheel.json"))
    assert facts["cuda"]["architectures"] == "75-real;90-virtual" and facts["warnings"] == []
    assert sorted(facts["device_code"]) == ["PTX compute_90", "SASS sm_75"]
    command("check", wheel)


def test_an_exact_pin_is_kept_and_check_shows_the_warning(tmp_path, build_env, example_wheel, command):
    version = built_against(example_wheel)
    project = copy_project(EXAMPLE, tmp_path / "example")
    add_dependency(project, f"apache-tvm-ffi=={version}")
    pip_wheel_quietly(project, tmp_path / "dist", build_env)
    wheel = only_wheel(tmp_path / "dist")
    assert f"apache-tvm-ffi=={version}" in requires_dist(wheel)
    assert [r for r in requires_dist(wheel) if r.startswith("apache-tvm-ffi")] == [f"apache-tvm-ffi=={version}"]
    checked = command("check", wheel)  # sound: exit status 0
    assert f"warning: the build warned: apache-tvm-ffi=={version} is the project's exact pin" in checked.stdout


def with_folder_entries(entries):
    """What auditwheel writes: a zip entry for every folder, which RECORD does not list."""
    folders = sorted({name.rsplit("/", 1)[0] + "/" for info, _ in entries if "/" in (name := info.filename)})
    return [(zipfile.ZipInfo(folder), b"") for folder in folders] + entries


def test_repair_of_a_wheel_with_folder_entries_stays_sound(tmp_path, example_wheel, command):
    given = rewrite(example_wheel, tmp_path / example_wheel.name, with_folder_entries, fix_record=False)
    first, second = tmp_path / "first", tmp_path / "second"
    command("repair", "-w", first, given)
    repaired = only_wheel(first)
    command("check", repaired)
    command("repair", "-w", second, repaired)  # as cibuildwheel may run it again
    assert only_wheel(second).read_bytes() == repaired.read_bytes()


def test_repair_without_tvm_ffi_or_patchelf_installed(tmp_path, example_wheel, plain_recipe_wheel, fresh_venv):
    """The wheel's own lower bound is what it was built against; patchelf is needed only for a
    change, and a missing one gets the command's fix, not a build setting; a version that the
    wheel excludes is not blamed on a build environment."""
    version = built_against(example_wheel)
    lower_bound_only = rewrite(
        example_wheel, tmp_path / example_wheel.name,
        edit("example_kernels-0.1.0.dist-info/METADATA",
             lambda data: data.replace(b"apache-tvm-ffi<0.2,>=", b"apache-tvm-ffi>=")),
    )
    assert requires_dist(lower_bound_only)[0] == f"apache-tvm-ffi>={version}"
    environment = fresh_venv("bare-repair-venv")
    environment.pip_install("tvmffi-wheel")
    script = environment.path / "bin" / "tvmffi-wheel"
    env = {**environment.env, "PATH": os.pathsep.join(p for p in environment.env["PATH"].split(os.pathsep)
                                                      if not (Path(p) / "patchelf").exists())}
    # The recipe's wheel lacks the run path to tvm_ffi/lib: setting it needs patchelf.
    refused = run([script, "repair", "-w", tmp_path / "refused", "--tvm-ffi-version", version, plain_recipe_wheel],
                  env=env, ok=False)
    assert refused.returncode == 1 and "the patchelf executable is not on PATH" in refused.stdout
    assert "into the environment that runs tvmffi-wheel" in refused.stdout and "repair=skip" not in refused.stdout
    assert not list((tmp_path / "refused").glob("*.whl"))
    # The example's wheel has every run path already: only its pin and tag change.
    run([script, "repair", "-w", tmp_path / "out", lower_bound_only], env=env)
    assert f"apache-tvm-ffi<0.2,>={version}" in requires_dist(only_wheel(tmp_path / "out"))
    excluded = run([script, "repair", "-w", tmp_path / "old", "--tvm-ffi-version", "0.1.0", lower_bound_only],
                   env=env, ok=False)
    assert excluded.returncode == 1 and "build environment" not in excluded.stdout
    assert "Traceback" not in excluded.stdout and not list((tmp_path / "old").glob("*.whl"))


@pytest.mark.parametrize(
    ("change", "extra", "environment", "message"),
    [
        ("[tool.tvmffi-wheel]", [], {}, "pyproject.toml has a [tool.tvmffi_wheel] table, which tvmffi-wheel does not"),
        (None, ["-C", "tvmffi_wheel.loader=example_kernels/_native.py"], {},
         "-C tvmffi_wheel.loader: tvmffi-wheel's options start with tvmffi-wheel."),
        (None, [], {"TVMFFI_WHEEL_LODER": "example_kernels/_native.py"},
         "unknown environment variable TVMFFI_WHEEL_LODER"),
    ],
    ids=["table", "config-settings", "environment"],
)
def test_misspellings_are_named_with_the_right_spelling(tmp_path, backend_venv, change, extra, environment, message):
    project = copy_project(EXAMPLE, tmp_path / "example")
    if change:
        pyproject = project / "pyproject.toml"
        pyproject.write_text(pyproject.read_text().replace(change, "[tool.tvmffi_wheel]"))
    out = tmp_path / "dist"
    result = pip_wheel_in(backend_venv, project, out, *extra, env=environment, ok=False)
    assert_refused(result, out, message)


@pytest.mark.parametrize(
    ("destination", "message", "fix"),
    [(None, "the wheel holds no compiled library", "install(TARGETS <target> LIBRARY DESTINATION <package folder>)"),
     ("lib", "installs to site-packages/lib/, a folder other wheels install into too",
      "its install() rule puts it there (DESTINATION lib): install it into the package, "
      "install(TARGETS <target> DESTINATION example_kernels)")],
    ids=["no-library", "top-level-lib"],
)
def test_a_library_missing_or_outside_the_packages_is_refused(tmp_path, build_env, destination, message, fix):
    project = copy_project(EXAMPLE, tmp_path / "example")
    cmakelists = project / "CMakeLists.txt"
    install = ("install(TARGETS example_kernels LIBRARY DESTINATION example_kernels/lib "
               "RUNTIME DESTINATION example_kernels/lib)")
    replacement = "" if destination is None else f"install(TARGETS example_kernels LIBRARY DESTINATION {destination})"
    assert install in cmakelists.read_text()
    cmakelists.write_text(cmakelists.read_text().replace(install, replacement).replace(
        "tvmffi_wheel_configure_target(example_kernels DESTINATION example_kernels/lib)",
        f"tvmffi_wheel_configure_target(example_kernels DESTINATION {destination or 'example_kernels/lib'})"))
    out = tmp_path / "dist"
    result = pip_wheel(project, out, build_env, ok=False)
    assert_refused(result, out, message, fix)


def test_a_stable_abi_newer_than_this_python_is_a_recorded_warning(tmp_path, build_env, command):
    project = copy_project(PROJECTS / "cpython_ext", tmp_path / "ext")
    newer = f"cp3{sys.version_info.minor + 1}"
    result = pip_wheel(project, tmp_path / "dist", build_env, "-C", f"wheel.py-api={newer}")
    wheel = only_wheel(tmp_path / "dist")
    tag = f"cp3{sys.version_info.minor}-cp3{sys.version_info.minor}"
    assert tag in wheel.name
    expected = f'wheel.py-api = "{newer}" asks for the stable ABI from Python 3.{sys.version_info.minor + 1}'
    assert expected in result.stdout
    assert f'the build warned: wheel.py-api = "{newer}"' in command("check", wheel).stdout


@pytest.mark.parametrize("name", ["README.md", "LICENSE"])
def test_a_readme_or_license_that_is_not_utf8_is_named(tmp_path, backend_venv, name):
    project = copy_project(EXAMPLE, tmp_path / "example")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('readme = "README.md"\n',
                                                       'readme = "README.md"\nlicense = {file = "LICENSE"}\n'))
    (project / "LICENSE").write_text("Apache-2.0\n")
    (project / name).write_bytes("Kernels for the café\n".encode("latin-1"))
    out = tmp_path / "dist"
    result = pip_wheel_in(backend_venv, project, out, ok=False)
    assert_refused(result, out, f"{name} is not UTF-8 text", f"save {name} as UTF-8")
    assert "internal error" not in result.stdout


@pytest.fixture
def full_disk(tmp_path):
    """A folder on a file system with no room: a 64 KiB tmpfs (needs root)."""
    folder = tmp_path / "full"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", folder], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield folder
    finally:
        subprocess.run(["umount", folder], check=True)


def test_a_full_disk_is_the_machines_problem_and_leaves_nothing(tmp_path, example_wheel, backend_venv, full_disk):
    big = rewrite(example_wheel, tmp_path / example_wheel.name,
                  lambda entries: [*entries[:-1], (zipfile.ZipInfo("example_kernels/data.bin"), os.urandom(1 << 20)),
                                   entries[-1]])
    script = backend_venv.path / "bin" / "tvmffi-wheel"
    result = run([script, "repair", "-w", full_disk, big], env=backend_venv.env, ok=False)
    assert result.returncode == 1 and "No space left on device" in result.stdout
    assert "fix: free space on that disk" in result.stdout
    assert "internal error" not in result.stdout and "Traceback" not in result.stdout
    assert list(full_disk.iterdir()) == []
