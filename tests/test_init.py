"""`tvmffi-wheel init`: the generated package builds, installs and passes its own tests."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import pytest

from conftest import only_wheel, pip_wheel, run, wheel_text
from tvmffi_wheel.compiling.cuda import find_nvcc

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_init_builds_and_its_tests_pass(command, tmp_path, build_env, fresh_venv):
    project = tmp_path / "my-kernels"
    initialized = command("init", "my-kernels", cwd=tmp_path)  # a bare folder name, as users type it
    assert {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()} == {
        "pyproject.toml", "CMakeLists.txt", "src/kernels.cc", "python/my_kernels/__init__.py",
        "tests/test_kernels.py", "README.md", ".gitignore", ".github/workflows/wheels.yml",
    }
    config = tomllib.loads((project / "pyproject.toml").read_text())
    assert config["build-system"]["build-backend"] == "tvmffi_wheel.build"
    cibuildwheel = config["tool"]["cibuildwheel"]
    assert cibuildwheel["repair-wheel-command"] == "tvmffi-wheel repair -w {dest_dir} {wheel}"
    assert cibuildwheel["audit-command"] == "tvmffi-wheel check {wheel}"
    assert cibuildwheel["audit-requires"] == ["tvmffi-wheel"]  # the audit runs in an environment of its own
    assert "tvmffi_wheel_configure_target(my_kernels" in (project / "CMakeLists.txt").read_text()
    assert config["tool"]["tvmffi-wheel"]["loader"] == "my_kernels/_native.py"
    assert cibuildwheel["test-command"] == "pytest {project}/tests && tvmffi-wheel compat {wheel}"
    # macOS and Windows runners: the same repair (not delocate or delvewheel), arm64 and AMD64 only.
    assert cibuildwheel["build"] == "cp312-manylinux_* cp312-macosx_arm64 cp312-win_amd64"
    assert (cibuildwheel["macos"]["archs"], cibuildwheel["windows"]["archs"]) == (["arm64"], ["AMD64"])
    workflow = (project / ".github" / "workflows" / "wheels.yml").read_text()
    assert "runner: [ubuntu-latest, ubuntu-24.04-arm, macos-14, windows-latest]" in workflow

    # The next step init prints works as printed: pip reads a bare name as a project on the index.
    (next_step,) = [line for line in initialized.stdout.splitlines() if "next: pip wheel" in line]
    printed = shlex.split(next_step.split("next: ", 1)[1].split("   (or")[0])
    assert printed == ["pip", "wheel", "--no-deps", "-w", "dist", "./my-kernels"]
    run([sys.executable, "-m", *printed], cwd=tmp_path, env=build_env)
    wheel = only_wheel(tmp_path / "dist")
    assert wheel.name.startswith("my_kernels-0.1.0-py3-none-manylinux_")
    environment = fresh_venv("init-venv")
    environment.pip_install(wheel, "numpy", "pytest")
    result = environment.run("-m", "pytest", "-q", "-p", "no:cacheprovider", project / "tests", cwd=tmp_path)
    assert "3 passed" in result.stdout
    built = environment.run("-c", "import my_kernels; print(my_kernels.BUILD['libraries'])", cwd=tmp_path)
    assert "'my_kernels': {'device_code': [], 'member': 'my_kernels/lib/libmy_kernels.so'" in built.stdout


@pytest.mark.skipif(find_nvcc(os.environ) is None, reason="needs nvcc")
def test_init_cuda_builds_with_the_pip_toolkit(command, tmp_path, build_env, fresh_venv):
    project = tmp_path / "gpu_kernels"
    command("init", project, "--cuda")
    assert (project / "src" / "kernels_cuda.cu").is_file()
    result = pip_wheel(project, tmp_path / "dist", build_env, "-C", "tvmffi-wheel.cuda.toolkit=pip")
    assert "/nvidia/cu13/bin/nvcc" in result.stdout
    wheel = only_wheel(tmp_path / "dist")
    recorded = json.loads(wheel_text(wheel, ".dist-info/tvmffi_wheel.json"))
    assert recorded["cuda"]["toolkit_source"] == "pip"
    assert recorded["device_code"] == ["PTX compute_120", "SASS sm_75", "SASS sm_80", "SASS sm_90"]
    environment = fresh_venv("init-cuda-venv")
    environment.pip_install(wheel, "numpy", "pytest")
    result = environment.run("-m", "pytest", "-q", "-p", "no:cacheprovider", project / "tests", cwd=tmp_path)
    assert "3 passed, 1 skipped" in result.stdout  # the GPU test needs torch and a GPU


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--name", "my kernels"], "'my kernels' is not a valid distribution name"),
        (["--name", "9lives"], "'9lives' would be imported as '9lives', which is not a Python identifier"),
        (["--name", "class"], "'class' would be imported as 'class', which is a Python keyword"),
        (["--name", "json"], "'json' would be imported as 'json', which another module already uses"),
    ],
)
def test_init_refuses_bad_names(command, tmp_path, arguments, message):
    result = command("init", tmp_path / "new", *arguments, ok=False)
    assert result.returncode == 1 and message in result.stdout and "Traceback" not in result.stdout
    assert not (tmp_path / "new").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no scratch folder left either


def test_init_refuses_a_folder_that_is_not_empty(command, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    result = command("init", tmp_path / "taken", ok=False)
    assert "is not empty; init writes a whole project and overwrites nothing" in result.stdout
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]


def test_init_into_an_existing_empty_folder(command, tmp_path):
    (tmp_path / "empty").mkdir()
    command("init", tmp_path / "empty", "--name", "Fancy.Kernels")
    assert (tmp_path / "empty" / "python" / "fancy_kernels" / "__init__.py").is_file()
    assert 'name = "Fancy.Kernels"' in (tmp_path / "empty" / "pyproject.toml").read_text()
    assert not list(Path(tmp_path).glob(".tvmffi-wheel-init-*"))
