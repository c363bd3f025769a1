"""What CMake runs in a zig build: compiler wrappers, the toolchain file and the link's extras.

All of it is kept in one folder per content, `~/.cache/tvmffi-wheel/toolchains/<hash>/`, named
after what the files say, so that:
- a persistent `build-dir`, whose CMake cache records the compilers and the toolchain file, finds
  them again in the next build;
- compiler caches, which hash the compiler and nvcc's arguments (-ccbin), hit across isolated builds.
Nothing in the folder names a path of one build: the build environment's Python and zig_link.py
reach the libstdc++ link through the environment.

The backend owns these links, so it keeps the C++ runtime it links in from leaving the library
(the rule is common/symbols.py's):
- every compile gets hidden visibility, and tvm-ffi's headers' `TVM_FFI_DLL` (which marks
  tvm-ffi's own C++ classes) is left empty, so only what the source marks for export, such as
  the `__tvm_ffi_*` entry points of TVM_FFI_DLL_EXPORT, is exported;
- an ELF link without a version script of the project's gets one that makes every runtime
  symbol local (zig's linker has no --exclude-libs); a project's own script is its decision;
- a Mach-O link gets hidden definitions of operator new and delete (data/macos_new_delete.cc):
  zig's Mach-O linker ignores export lists, and would export libc++abi's.
Windows needs neither: a DLL exports only what is marked dllexport (cross_os.py's shim).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tvmffi_wheel.common.symbols import runtime_version_script
from tvmffi_wheel.compiling import zig_link
from tvmffi_wheel.compiling.cmake_environment import cmake_string
from tvmffi_wheel.compiling.compiler_cache import cache_home
from tvmffi_wheel.compiling.cross_os import HIDDEN_VISIBILITY, link_rules
from tvmffi_wheel.compiling.notes import CUDA_REFUSED, NOTES_VARIABLE
from tvmffi_wheel.compiling.toolchain import SHIM_SOURCE, ToolchainPlan
from tvmffi_wheel.compiling.zig_copy import ZIG_REQUIREMENT, stable_zig
from tvmffi_wheel.errors import TvmFfiWheelError, warn

# Marks where the kept folder's path goes in its files' text: the folder is named after the
# text with the mark in place, so no file has to name the folder before it exists.
_FOLDER = "@TVMFFI_WHEEL_FOLDER@"
# Options by which a link states its own exports; with one, the backend adds no version script.
_OWN_EXPORTS = ("*-version-script*",)


@dataclasses.dataclass(frozen=True)
class ToolchainSetup:
    """What a zig build passes to CMake: variables, and the environment its links read."""

    defines: dict[str, str]
    environment: dict[str, str]
    # The folder a persistent build-dir keeps this toolchain's build tree in: a CMake cache holds
    # on to the compilers and toolchain file of its first configure, so each toolchain has its own.
    build_folder: str = ""


def _zig_for_build(plan: ToolchainPlan, environ: Mapping[str, str]) -> str:
    assert plan.zig is not None
    try:
        return str(stable_zig(plan.zig, environ))
    except OSError as err:
        warn(f"zig runs from the build environment, so it rebuilds its C++ runtime ({err})")
        return str(plan.zig)


def _kept_folder(
    environ: Mapping[str, str], files: Mapping[str, str], executables: Sequence[str] = (),
    complete: Callable[[Path], None] | None = None,
) -> Path:
    """A folder holding ``files`` (name -> text, `_FOLDER` standing for the folder's own path),
    named after their text; ``complete`` adds what is made from them (a compiled shim). Made
    under a temporary name and renamed, so a concurrent build sees all of it or none."""
    digest = hashlib.sha256(json.dumps(sorted(files.items())).encode()).hexdigest()[:16]
    base = cache_home(environ) / "toolchains"
    folder = base / digest
    if folder.is_dir():
        return folder
    base.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{digest}-", dir=base))
    try:
        for name, text in files.items():
            (partial / name).write_text(text.replace(_FOLDER, str(folder)), "utf-8")
            (partial / name).chmod(0o755 if name in executables else 0o644)
        if complete is not None:
            complete(partial)
        try:
            os.rename(partial, folder)
        except OSError:
            if not folder.is_dir():  # not lost to a concurrent build that got there first
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder


def _script(*lines: str) -> str:
    return "\n".join(["#!/bin/sh", *lines]) + "\n"


def _shared_link_case(command: str, link_extras: Sequence[str], own_exports_extras: Sequence[str]) -> list[str]:
    """sh lines that run ``command`` with the link's extras for a shared library: ``link_extras``
    always, ``own_exports_extras`` only when the link states no exports of its own."""
    def run(extras: Sequence[str]) -> str:
        return " ".join([f"exec {command}", '"$@"', *([shlex.join(extras)] if extras else [])])

    return [
        "shared= own_exports=",
        "for arg do",
        "  case $arg in -shared|-dynamiclib) shared=1 ;; " + " | ".join(_OWN_EXPORTS) + ") own_exports=1 ;; esac",
        "done",
        f'if [ -n "$shared" ] && [ -z "$own_exports" ]; then {run([*link_extras, *own_exports_extras])}; fi',
        f'if [ -n "$shared" ]; then {run(link_extras)}; fi',
    ]


def _no_cuda_script(plan: ToolchainPlan) -> str:
    """The CUDA host compiler of a libc++ build: it refuses, and notes why for the backend's message."""
    return _script(
        f'[ -n "${NOTES_VARIABLE}" ] && echo {CUDA_REFUSED} >> "${NOTES_VARIABLE}"',
        "echo " + shlex.quote(f"tvmffi-wheel: the project enables CUDA, which {plan.target} with LLVM's libc++ "
                              "cannot build (see the message after CMake's)") + " >&2",
        "exit 1",
    )


def _libcxx_files(plan: ToolchainPlan, zig: str) -> tuple[dict[str, str], Callable[[Path], None] | None]:
    rules = link_rules(plan.os_target)
    link_extras = [extra.format(folder=_FOLDER) for extra in rules.link_extras]
    own_exports_extras = [extra.format(folder=_FOLDER) for extra in rules.own_exports_extras]
    files = dict(rules.files)
    for name, driver in (("cc", "cc"), ("c++", "c++")):
        command = shlex.join([zig, driver, "-target", plan.target, *rules.compile_flags])
        shared = _shared_link_case(command, link_extras, own_exports_extras) if link_extras + own_exports_extras else []
        files[name] = _script(f"# tvmffi-wheel: zig's clang for {plan.target}", *shared, f'exec {command} "$@"')
    files["ar"] = _script(f'exec {shlex.quote(zig)} ar "$@"')
    files["ranlib"] = _script(f'exec {shlex.quote(zig)} ranlib "$@"')
    files["no-cuda-host-compiler"] = _no_cuda_script(plan)
    lines = []
    if plan.os_target is not None:
        files |= plan.os_target.kept_files()
        lines += plan.os_target.toolchain_lines(_FOLDER)
    elif plan.cross:
        lines += ["set(CMAKE_SYSTEM_NAME Linux)", f"set(CMAKE_SYSTEM_PROCESSOR {plan.arch})"]
    lines += [f"set(CMAKE_C_COMPILER {cmake_string(_FOLDER + '/cc')})",
              f"set(CMAKE_CXX_COMPILER {cmake_string(_FOLDER + '/c++')})"]
    # The binutils are cache entries CMake fills by searching PATH: preset them.
    lines += [f'set(CMAKE_{tool.upper()} {cmake_string(_FOLDER + "/" + tool)} CACHE FILEPATH "zig")'
              for tool in ("ar", "ranlib")]
    # A project that enables CUDA anyway fails at CMake's compiler check, noting why.
    lines.append(f"set(CMAKE_CUDA_HOST_COMPILER {cmake_string(_FOLDER + '/no-cuda-host-compiler')})")
    files["zig-toolchain.cmake"] = _toolchain_text(f"zig's clang for {plan.target}", lines)
    if rules.shim is None:
        return files, None
    source, output = rules.shim
    compiler = [zig, "c++", "-target", plan.target, "-std=c++17"]
    return files, lambda folder: _compile_shim(compiler, folder / source, folder / output)


def _toolchain_text(comment: str, settings: Sequence[str]) -> str:
    return "\n".join([f"# Generated by tvmffi-wheel: {comment}", *settings]) + "\n"


def _compile_shim(compiler: Sequence[str], source: Path, output: Path) -> None:
    try:
        subprocess.run([*compiler, "-c", "-O2", "-fPIC", str(source), "-o", str(output)],
                       capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        shown = getattr(err, "stderr", "") or ""
        raise TvmFfiWheelError(f"zig cannot compile tvmffi-wheel's {source.name} ({err}):\n{shown}",
                               f"reinstall {ZIG_REQUIREMENT}") from None


def _link_wrapper_text(compiler: Path) -> str:
    """A compiler that is ``compiler``, with hidden visibility, except that it hands the link of
    a shared library to zig_link.py (run by the build environment's Python, from the environment)."""
    real = shlex.join([str(compiler), *HIDDEN_VISIBILITY])
    return _script(
        f"# tvmffi-wheel: {compiler}, with shared libraries linked by zig (compiling/zig_link.py).",
        "for arg do",
        f'  case $arg in -c|-E|-S|-M|-MM) exec {real} "$@" ;; esac',
        "done",
        "for arg do",
        f'  case $arg in -shared) exec "${zig_link.PYTHON_VARIABLE}" -I "${zig_link.SCRIPT_VARIABLE}" "$@" ;; esac',
        "done",
        f'exec {shlex.quote(str(compiler))} "$@"',
    )


def _libstdcxx_files(plan: ToolchainPlan, zig: str) -> tuple[dict[str, str], Callable[[Path], None]]:
    assert plan.compilers is not None and plan.libstdcxx is not None and plan.glibc is not None
    c_compiler, cxx_compiler = plan.compilers
    files = {
        "cc": _link_wrapper_text(c_compiler),
        "c++": _link_wrapper_text(cxx_compiler),
        "runtime.map": runtime_version_script(),
        "glibc_shim.c": SHIM_SOURCE.read_text("utf-8"),
        "link-recipe.json": json.dumps({
            "zig": zig, "target": plan.target, "glibc": str(plan.glibc), "libstdcxx": str(plan.libstdcxx),
            "shim": f"{_FOLDER}/glibc_shim.o", "version_script": f"{_FOLDER}/runtime.map",
        }),
    }
    lines = [
        f"set(CMAKE_C_COMPILER {cmake_string(_FOLDER + '/cc')})",
        f"set(CMAKE_CXX_COMPILER {cmake_string(_FOLDER + '/c++')})",
        # nvcc compiles host code with it; CMake links a CUDA target with it.
        f"set(CMAKE_CUDA_HOST_COMPILER {cmake_string(_FOLDER + '/c++')})",
    ]
    files["zig-toolchain.cmake"] = _toolchain_text(
        f"the system compilers, linking shared libraries with zig for {plan.target}", lines)
    return files, lambda folder: _compile_shim(
        [zig, "cc", "-target", plan.target], folder / "glibc_shim.c", folder / "glibc_shim.o"
    )


def write_toolchain_files(plan: ToolchainPlan, environ: Mapping[str, str]) -> ToolchainSetup:
    """zig's compiler wrappers and a CMake toolchain file using them, in a kept folder."""
    if plan.toolchain == "system":
        return ToolchainSetup({}, {})
    zig = _zig_for_build(plan, environ)
    maker = _libstdcxx_files if plan.cxx_runtime == "libstdc++" else _libcxx_files
    files, complete = maker(plan, zig)
    folder = _kept_folder(environ, files, ("cc", "c++", "ar", "ranlib", "no-cuda-host-compiler"), complete)
    defines = {"CMAKE_TOOLCHAIN_FILE": str(folder / "zig-toolchain.cmake")}
    build_folder = f"zig-{plan.target}-{plan.cxx_runtime}-{folder.name[:8]}"
    if plan.cxx_runtime != "libstdc++":
        return ToolchainSetup(defines, {}, build_folder)
    return ToolchainSetup(defines, {
        zig_link.RECIPE_VARIABLE: str(folder / "link-recipe.json"),
        zig_link.PYTHON_VARIABLE: sys.executable,
        zig_link.SCRIPT_VARIABLE: zig_link.__file__,
    }, build_folder)
