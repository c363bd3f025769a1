"""Editable installs: every common loader finds its library, and nothing leaks into git or sdists."""

from __future__ import annotations

import shutil
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import PROJECTS, copy_project, only_wheel, run
from tvmffi_wheel.writing.editable import MANIFEST

CALL_ALL = (
    "import editable_loaders as e\n"
    "print('beside', e.beside.add_step(1))\n"
    "print('nested', e.nested.max_threads() >= 1)\n"
    "print('record', e.record.triple(5))\n"
)


def git(repo: Path, *args: str) -> str:
    return run(["git", "-C", repo, *args]).stdout


@pytest.fixture
def repo(tmp_path) -> Path:
    """The fixture project as the root of a fresh git repository, committed."""
    project = copy_project(PROJECTS / "editable_loaders", tmp_path / "repo")
    git(project, "init", "-q")
    git(project, "add", ".")
    git(project, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "fixture")
    return project


def test_every_loader_works_and_the_copies_stay_out_of_git_and_sdists(repo, fresh_venv, build_env, tmp_path):
    environment = fresh_venv("editable-loaders")
    environment.pip_install("-e", repo)
    result = environment.run("-c", CALL_ALL, cwd=tmp_path)
    assert result.stdout.split("\n")[:3] == ["beside 3", "nested True", "record 15"]

    listed = [line for line in (repo / MANIFEST).read_text().splitlines() if not line.startswith("#")]
    assert "src/editable_loaders/libbeside.so" in listed
    assert "src/editable_loaders/lib/libnested.so" in listed
    assert [p for p in listed if p.startswith("src/editable_loaders.libs/libgomp-")]  # vendored, beside
    assert git(repo, "status", "--porcelain") == ""
    assert "/src/editable_loaders/libbeside.so" in (repo / ".git" / "info" / "exclude").read_text()

    # Out of the sdist by the backend's own exclusion, not only git's: build it without git.
    shutil.rmtree(repo / ".git")
    run([sys.executable, "-m", "build", "--sdist", "--outdir", tmp_path / "sdist", repo], env=build_env)
    with tarfile.open(next((tmp_path / "sdist").glob("*.tar.gz"))) as sdist:
        names = sdist.getnames()
    assert any(n.endswith("src/editable_loaders/__init__.py") for n in names)
    assert not [n for n in names if n.endswith((".so", MANIFEST)) or ".so." in n]

    # A regular wheel from the same tree holds each library once: CMake's, not the copy.
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp_path / "wheel", repo], env=build_env)
    with zipfile.ZipFile(only_wheel(tmp_path / "wheel")) as wheel:
        libraries = sorted(n for n in wheel.namelist() if n.endswith(".so") or ".so." in n)
    assert [n for n in libraries if not n.startswith("editable_loaders.libs/")] == [
        "editable_loaders/lib/libnested.so", "editable_loaders/lib/librecord.so", "editable_loaders/libbeside.so"
    ]


def test_a_rebuild_refreshes_the_copies_and_removes_stale_ones(repo, fresh_venv, tmp_path):
    environment = fresh_venv("editable-rebuild")
    environment.pip_install("-e", repo)
    assert environment.run("-c", CALL_ALL, cwd=tmp_path).stdout.startswith("beside 3\n")

    (repo / "cpp" / "beside.cc").write_text(
        (repo / "cpp" / "beside.cc").read_text().replace("#define BESIDE_STEP 2", "#define BESIDE_STEP 40")
    )
    cmake = repo / "CMakeLists.txt"
    install_record = "install(TARGETS record LIBRARY DESTINATION editable_loaders/lib)\n"
    cmake.write_text(cmake.read_text().replace(install_record, ""))
    (repo / "src" / "editable_loaders" / "__init__.py").write_text(
        "from pathlib import Path\nimport tvm_ffi\n"
        "beside = tvm_ffi.load_module(str(Path(__file__).with_name('libbeside.so')))\n"
    )
    environment.pip_install("-e", repo)
    code = "import editable_loaders as e; print('beside', e.beside.add_step(1))"
    assert environment.run("-c", code, cwd=tmp_path).stdout.strip() == "beside 41"
    assert not (repo / "src" / "editable_loaders" / "lib" / "librecord.so").exists()
    assert "librecord.so" not in (repo / MANIFEST).read_text()
    assert git(repo, "status", "--porcelain").split() == ["M", "CMakeLists.txt", "M", "cpp/beside.cc",
                                                          "M", "src/editable_loaders/__init__.py"]


def test_rebuild_on_import_is_refused(repo, tmp_path, backend_venv):
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + 'build-dir = "build"\neditable.rebuild = true\n')
    call = "import os, sys; os.chdir(sys.argv[1]); from tvmffi_wheel import build; build.build_editable(sys.argv[2])"
    result = backend_venv.run("-c", call, repo, tmp_path / "out", ok=False)
    assert "editable.rebuild makes scikit-build-core rebuild at import without tvmffi-wheel" in result.stdout
    assert "Traceback" not in result.stdout
    assert not (repo / MANIFEST).exists()
    assert not list((tmp_path / "out").glob("*.whl"))
