"""The stable mirrors a cached build compiles through (compiling/stable_source.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tvmffi_wheel.compiling import stable_source

pytestmark = pytest.mark.skipif(os.name == "nt", reason="POSIX links and locks")


def _project(folder: Path, marker: str) -> Path:
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "kernel.cu").write_text(f"// {marker}\n")
    (folder / "src" / "api.cc").write_text(f"// {marker}\n")
    (folder / ".git" / "objects").mkdir(parents=True)
    (folder / "CMakeLists.txt").write_text("project(p)\n")
    return folder


def _site_packages(folder: Path) -> Path:
    (folder / "tvm_ffi" / "include" / "tvm" / "ffi").mkdir(parents=True)
    (folder / "tvm_ffi" / "include" / "tvm" / "ffi" / "any.h").write_text("#pragma once\n")
    (folder / "other_package").mkdir()
    return folder


def test_every_build_compiles_the_same_paths_and_builds_at_once_get_their_own(tmp_path: Path) -> None:
    first = _project(tmp_path / "one", "one")
    second = _project(tmp_path / "two words", "two")
    site = _site_packages(tmp_path / "build-env" / "site-packages")
    cache = tmp_path / "cache"
    with stable_source.mirrors_for_build(first, site, cache) as mirrors:
        assert mirrors is not None
        assert mirrors.project == cache / "sources" / "0" / "project"
        # Compilers resolve symbolic links (nvcc its source, GCC -isystem headers): the files
        # must really be there. Hard links, so nothing is copied.
        kernel = mirrors.project / "src" / "kernel.cu"
        assert not kernel.is_symlink() and kernel.resolve() == kernel
        assert kernel.stat().st_ino == (first / "src" / "kernel.cu").stat().st_ino
        assert (mirrors.project / "src" / "api.cc").stat().st_ino == (first / "src" / "api.cc").stat().st_ino
        assert (mirrors.project / ".git").is_symlink()
        # tvm-ffi's include folder is a real folder of the mirror: tvm_ffi.libinfo resolves it.
        header = mirrors.site_packages / "tvm_ffi" / "include" / "tvm" / "ffi" / "any.h"
        assert header.resolve() == header and header.read_text() == "#pragma once\n"
        assert sorted(p.name for p in mirrors.site_packages.iterdir()) == ["tvm_ffi"]
        with stable_source.mirrors_for_build(second, site, cache) as busy:  # slot 0 is held
            assert busy is not None and busy.project == cache / "sources" / "1" / "project"
            assert (busy.project / "src" / "kernel.cu").read_text() == "// two\n"
        assert kernel.read_text() == "// one\n"  # untouched by the other build
    with stable_source.mirrors_for_build(second, site, cache) as again:  # slot 0 is free again, and cleared
        assert again is not None and again.project == cache / "sources" / "0" / "project"
        assert (again.project / "src" / "kernel.cu").read_text() == "// two\n"
    assert (first / "src" / "kernel.cu").read_text() == "// one\n"  # clearing a mirror spares the originals
    assert (first / ".git" / "objects").is_dir() and (site / "tvm_ffi" / "include").is_dir()


def test_no_mirror_where_the_cache_folder_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    site = _site_packages(tmp_path / "site")
    with stable_source.mirrors_for_build(_project(tmp_path / "p", "p"), site, blocker / "cache") as mirrors:
        assert mirrors is None


def test_across_file_systems_files_are_copied_up_to_a_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_hard_links(source: object, destination: object) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(stable_source.os, "link", no_hard_links)
    project, site = _project(tmp_path / "p", "p"), _site_packages(tmp_path / "site")
    with stable_source.mirrors_for_build(project, site, tmp_path / "cache") as mirrors:
        assert mirrors is not None
        kernel = mirrors.project / "src" / "kernel.cu"
        assert kernel.read_text() == "// p\n" and kernel.stat().st_ino != (project / "src" / "kernel.cu").stat().st_ino
    monkeypatch.setattr(stable_source, "COPY_LIMIT", 4)
    with stable_source.mirrors_for_build(project, site, tmp_path / "cache") as mirrors:
        assert mirrors is None  # the build keeps its own paths


def test_a_cache_folder_inside_the_project_is_not_mirrored_into_itself(tmp_path: Path) -> None:
    project, site = _project(tmp_path / "p", "p"), _site_packages(tmp_path / "site")
    with stable_source.mirrors_for_build(project, site, project / ".cache") as mirrors:
        assert mirrors is not None and (mirrors.project / "src" / "kernel.cu").is_file()
        assert not (mirrors.project / ".cache" / "sources").exists()
