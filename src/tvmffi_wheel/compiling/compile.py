"""Compile: run scikit-build-core's hook in the environment CMake needs, and read back what
CMake noted (notes.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import posixpath
import tempfile
from pathlib import Path
from typing import Any

from tvmffi_wheel.compiling import _skbuild, compiler_cache, stable_source
from tvmffi_wheel.compiling.cmake_environment import changed_environment, cmake_environment
from tvmffi_wheel.compiling.compiler_cache import CachePlan
from tvmffi_wheel.compiling.cuda import CudaPlan
from tvmffi_wheel.compiling.notes import CUDA_REFUSED, NOTES_VARIABLE, STUB_SKIPPED, read_notes
from tvmffi_wheel.compiling.settings import CacheSettings
from tvmffi_wheel.compiling.toolchain import ToolchainPlan, cuda_refusal
from tvmffi_wheel.compiling.zig_wrappers import ToolchainSetup
from tvmffi_wheel.errors import info, warn

# Link with the run path the installed library gets: CMake would otherwise link with the
# build tree's absolute run path and rewrite it at install, after the linker computed the
# build ID from it, so two builds of the same source would differ in their build IDs.
BACKEND_CMAKE_DEFINES = {"CMAKE_BUILD_WITH_INSTALL_RPATH": "ON"}


@dataclasses.dataclass(frozen=True)
class CompileJob:
    """One run of scikit-build-core's build hook, with everything the backend adds to it."""

    hook: str  # "build_wheel" or "build_editable"
    staging: Path  # the build's own folder, removed afterwards; the wheel is written here
    forwarded: dict[str, Any]  # the config-settings meant for scikit-build-core
    build: _skbuild.BuildSettings
    cache: CacheSettings
    cuda: CudaPlan
    tvm_ffi_prefix: Path  # the site-packages folder that holds tvm_ffi
    toolchain: ToolchainPlan
    setup: ToolchainSetup


def _cmake_defines(job: CompileJob, cache: CachePlan | None) -> dict[str, Any]:
    """Config-settings for scikit-build-core with our CMake variables, never one the user set
    (plan_toolchain refuses a toolchain the user set; cuda and cache plans leave theirs out)."""
    ours = {k: v for k, v in BACKEND_CMAKE_DEFINES.items() if k not in job.build.cmake_defines}
    ours |= job.cuda.defines | (cache.defines if cache is not None else {}) | job.setup.defines
    return {**job.forwarded, **{f"cmake.define.{k}": v for k, v in ours.items()}}


def _mirrors(job: CompileJob, project: Path, stack: contextlib.ExitStack) -> stable_source.Mirrors | None:
    """The project and tvm_ffi mirrored at paths every build on this machine shares, for the
    compiler cache (stable_source.py); None for an editable build, a persistent build-dir or
    an absolute cmake.source-dir, which a path changing between builds would break."""
    if job.hook != "build_wheel" or job.build.build_dir or Path(job.build.source_dir).is_absolute():
        return None
    cache_folder = compiler_cache.cache_home(job.build.environment)
    return stack.enter_context(stable_source.mirrors_for_build(project, job.tvm_ffi_prefix, cache_folder))


def _own_build_dir(job: CompileJob) -> dict[str, str]:
    """A persistent build-dir's CMake cache keeps the compilers and toolchain file of its first
    configure and ignores a new toolchain file, so each zig toolchain builds in a folder of its
    own inside it."""
    if not job.build.build_dir or not job.setup.build_folder:
        return {}
    folder = posixpath.join(job.build.build_dir, job.setup.build_folder)
    info(f"toolchain = zig builds in {folder}, apart from other toolchains' build trees")
    # The environment, which scikit-build-core reads before config-settings and pyproject.toml.
    return {"SKBUILD_BUILD_DIR": folder}


def compile_project(job: CompileJob) -> Path:
    """Run scikit-build-core's hook in the environment CMake needs; the wheel it wrote."""
    project = Path.cwd().resolve()
    notes = job.staging / "notes.txt"
    with contextlib.ExitStack() as stack:
        cache = None
        mirrors = _mirrors(job, project, stack) if job.cache.tool != "none" else None
        sources, site = (mirrors.project, mirrors.site_packages) if mirrors else (project, job.tvm_ffi_prefix.resolve())
        if job.cache.tool != "none":
            cache = compiler_cache.plan_cache(
                job.cache, environ=job.build.environment, user_defines=job.build.cmake_defines,
                base_dirs=[job.tvm_ffi_prefix, project, sources, site],
                server_socket=stack.enter_context(compiler_cache.server_socket()),
            )
        prefix_map = {site: "/site-packages", sources: "."}
        if job.cache.tool == "sccache" and mirrors is None:
            # A path that changes with every isolated build cannot be in a cached compile's arguments.
            del prefix_map[site]
        appended, replaced = cmake_environment(site, prefix_map, job.cuda, python_path=mirrors is not None)
        replaced |= (cache.environment if cache is not None else {}) | job.setup.environment | _own_build_dir(job)
        replaced[NOTES_VARIABLE] = str(notes)
        # The compilers' temporary files (nvcc's tmpxft_* are tens of MB) go inside the
        # build's folder, which is removed however the build ends, Ctrl-C included.
        compiler_tmp = job.staging / "tmp"
        if " " in str(compiler_tmp):  # nvcc cannot open its own files in a folder with a space
            compiler_tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tvmffi-wheel-", dir="/tmp")))
        compiler_tmp.mkdir(exist_ok=True)
        replaced["TMPDIR"] = str(compiler_tmp)
        stack.enter_context(changed_environment(appended, replaced))
        stack.enter_context(compiler_cache.running(cache))
        # metadata_directory is not passed on: scikit-build-core would compare it with
        # its own METADATA, which lacks the pin we add; repair_wheel compares instead.
        skbuild_settings = _cmake_defines(job, cache)
        if mirrors is not None:
            skbuild_settings["cmake.source-dir"] = str(sources / job.build.source_dir)
        try:
            built: str = _skbuild.call(job.hook, str(job.staging), skbuild_settings)
        except SystemExit:  # scikit-build-core's way of saying CMake failed; it showed the output
            if any(note[0] == CUDA_REFUSED for note in read_notes(notes)):
                raise cuda_refusal(job.toolchain) from None
            raise
    _report_notes(read_notes(notes))
    return job.staging / built


def _report_notes(notes: list[tuple[str, ...]]) -> None:
    for note in notes:
        if note[0] == STUB_SKIPPED and len(note) == 3:
            warn(f"tvm_ffi_configure_target({note[1]} STUB_DIR {note[2]}) generates stubs by loading the built "
                 "library, which a cross build cannot load here: the step was left out, and the stubs already in "
                 f"{note[2]} are shipped as they are")
