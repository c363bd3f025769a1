"""The apache-tvm-ffi the kernels are compiled against: the build environment's, or for a
cross build the same release's wheel for the target architecture.

This is the one home of the distribution's name and of downloading a release's wheel
(which the ABI table's regeneration uses too).

The build environment holds apache-tvm-ffi for the host. A cross build links the target's
libtvm_ffi.so instead: the same version's wheel for the target architecture, downloaded
with `pip download --platform`, unpacked into a folder of the build. tvm-ffi's CMake
package asks the build's Python (`python -m tvm_ffi.config --libfiles`), which runs on the
host and answers with the host's library; so CMake is pointed (tvm_ffi_DIR) at a package
that includes tvm-ffi's own, from the target wheel, then sets the target's library on
`tvm_ffi::shared`. The headers are the host copy's, which are the same files.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from tvmffi_wheel.common.tvm_ffi import TVM_FFI_DISTRIBUTION
from tvmffi_wheel.compiling.cmake_environment import cmake_string
from tvmffi_wheel.compiling.cross_os import TVM_FFI_LIBRARIES, release_platform_tags, target_name
from tvmffi_wheel.compiling.notes import NOTES_VARIABLE, STUB_SKIPPED
from tvmffi_wheel.errors import TvmFfiWheelError, info

_KEPT = ("tvm_ffi/lib/", "tvm_ffi/share/", "tvm_ffi/include/")


@dataclasses.dataclass(frozen=True)
class TvmFfiInstall:
    """The apache-tvm-ffi the kernels are compiled against: the build environment's."""

    version: Version
    prefix: Path  # the site-packages folder holding tvm_ffi/, a CMake search prefix

    @property
    def library(self) -> Path:
        return self.prefix / "tvm_ffi" / "lib" / "libtvm_ffi.so"


def find_build_tvm_ffi() -> TvmFfiInstall:
    import importlib.util
    from importlib import (
        metadata as importlib_metadata,  # slow to import; the backend only
    )

    try:
        text = importlib_metadata.version(TVM_FFI_DISTRIBUTION)
        # Found, not imported: importing loads libtvm_ffi, which CMake's find_package does anyway.
        spec = importlib.util.find_spec("tvm_ffi")
        if spec is None or spec.origin is None:
            raise ImportError("no module named tvm_ffi")
    except (importlib_metadata.PackageNotFoundError, ImportError) as err:
        raise TvmFfiWheelError(
            f"apache-tvm-ffi cannot be imported in the build environment ({err})",
            "build with an isolated frontend (pip wheel, python -m build, uv build), which "
            "installs it for you, or `pip install apache-tvm-ffi` when building with "
            "--no-build-isolation",
        ) from None
    return TvmFfiInstall(Version(text), Path(spec.origin).resolve().parent.parent)


def download_release_wheel(
    version: Version, arch: str, folder: Path, *, python_version: str = "", system: str = "linux"
) -> Path:
    """The wheel of apache-tvm-ffi ``version`` for ``system`` ("linux", "macos", "windows")
    and ``arch``, downloaded by pip into ``folder`` (so PIP_INDEX_URL and PIP_FIND_LINKS
    apply); for the running Python unless ``python_version``."""
    if importlib.util.find_spec("pip") is None:
        raise TvmFfiWheelError(
            f"downloading the {arch} wheel of {TVM_FFI_DISTRIBUTION} needs pip, which this Python lacks",
            "install pip (a build for another architecture asks for it in its build requirements)",
        )
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(folder),
        *(argument for tag in release_platform_tags(arch, system) for argument in ("--platform", tag)),
        *(["--python-version", python_version, "--implementation", "cp"] if python_version else []),
        f"{TVM_FFI_DISTRIBUTION}=={version}",
    ]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    wheels = [
        path for path in folder.glob("*.whl")
        if canonicalize_name(parse_wheel_filename(path.name)[0]) == TVM_FFI_DISTRIBUTION
        and parse_wheel_filename(path.name)[1] == version
    ]
    if result.returncode != 0 or not wheels:
        last = [line for line in result.stdout.splitlines() if line.strip()][-2:]
        raise TvmFfiWheelError(
            f"no {arch} wheel of {TVM_FFI_DISTRIBUTION} {version} could be downloaded: {' '.join(last)}",
            f"build against a {TVM_FFI_DISTRIBUTION} release that has {arch} wheels, or make one reachable "
            "to pip (PIP_FIND_LINKS, PIP_INDEX_URL)",
        )
    return wheels[0]


# tvm_ffi_configure_target(... STUB_DIR <dir>) runs tvm-ffi's stub tool on the built library
# after the link, which loads it: a library for another machine does not load here ("invalid
# ELF header"). In a cross build the step is left out, the stubs in <dir> are shipped as they
# are, and the backend says so (notes.py). CMake keeps a redefined command's first definition
# as `_<name>`.
_WITHOUT_STUBS = f"""
function(tvm_ffi_configure_target target)
  cmake_parse_arguments(PARSE_ARGV 1 _tvmffi_wheel "" "STUB_INIT;STUB_DIR;STUB_PKG;STUB_PREFIX;STUB_TARGET" "")
  if(_tvmffi_wheel_STUB_DIR AND DEFINED ENV{{{NOTES_VARIABLE}}})
    file(APPEND "$ENV{{{NOTES_VARIABLE}}}" "{STUB_SKIPPED} ${{target}} ${{_tvmffi_wheel_STUB_DIR}}\\n")
  endif()
  _tvm_ffi_configure_target("${{target}}" ${{_tvmffi_wheel_UNPARSED_ARGUMENTS}})
endfunction()
"""


@dataclasses.dataclass(frozen=True)
class TargetTvmFfi:
    library: Path  # the target's libtvm_ffi (.so, .dylib, or tvm_ffi.dll)
    cmake_dir: Path  # for tvm_ffi_DIR: a package that links ``library``


def prepare_target_tvm_ffi(version: Version, arch: str, folder: Path, system: str = "linux") -> TargetTvmFfi:
    """The target's libtvm_ffi and a CMake package for it, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    shown = target_name(system, arch)
    info(f"downloading the {shown} wheel of {TVM_FFI_DISTRIBUTION} {version}, the build environment's version")
    wheel = download_release_wheel(version, arch, folder / "download", system=system)
    unpacked = folder / "wheel"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked, [n for n in archive.namelist() if n.startswith(_KEPT)])
    library_name, link_name = TVM_FFI_LIBRARIES[system]
    library = unpacked / "tvm_ffi" / "lib" / library_name
    linked = unpacked / "tvm_ffi" / "lib" / link_name
    their_config = unpacked / "tvm_ffi" / "share" / "cmake" / "tvm_ffi" / "tvm_ffi-config.cmake"
    if not library.is_file() or not linked.is_file() or not their_config.is_file():
        raise TvmFfiWheelError(
            f"{wheel.name} has no tvm_ffi/lib/{link_name} or no CMake package",
            f"build against another {TVM_FFI_DISTRIBUTION} release",
        )
    cmake_dir = folder / "cmake"
    cmake_dir.mkdir(exist_ok=True)
    (cmake_dir / "tvm_ffi-config.cmake").write_text(
        f"# Generated by tvmffi-wheel: tvm-ffi's CMake package from {wheel.name},\n"
        "# linking that wheel's libtvm_ffi.so rather than the one the host's Python finds.\n"
        f"include({cmake_string(their_config.as_posix())})\n"
        f"set(tvm_ffi_LIB_FILES {cmake_string(linked.as_posix())})\n"
        f"set_target_properties(tvm_ffi::shared PROPERTIES IMPORTED_LOCATION {cmake_string(library.as_posix())}\n"
        '  IMPORTED_IMPLIB "${tvm_ffi_LIB_FILES}")\n'
        f'message(STATUS "tvmffi-wheel: linking the {shown} ${{tvm_ffi_LIB_FILES}}")\n' + _WITHOUT_STUBS,
        "utf-8",
    )
    info(f"linking {link_name} from {wheel.name}")
    return TargetTvmFfi(library, cmake_dir)
