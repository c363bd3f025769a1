"""The example's kernels cross-compiled by zig for macOS arm64 and Windows amd64, each packed
into an unrepaired wheel: inputs for `tvmffi-wheel check` and `tvmffi-wheel repair` on other
platforms than this Linux one.

The wheels are what a build on those systems hands to a repair tool (delocate, delvewheel):
the library links tvm-ffi's (from the target's apache-tvm-ffi wheel, downloaded with pip)
and, with ``helper=True``, a second library outside the wheel, but nothing says where they
are: no LC_RPATH on macOS, and Windows never has one. Adding that is the repair's job.

zig comes from PyPI's ziglang, run as ``python -m ziglang``. The first build for a target
takes minutes (zig builds libc++ for it); later ones seconds, from zig's cache, left at its
default place (~/.cache/zig) so that test runs share it.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KERNELS = REPO / "example_project" / "src" / "kernels.cc"
# Everything the kernel library exports on its own, without the helper.
KERNEL_FUNCTIONS = ("add_one", "axpy", "total")
HELPER_FUNCTION = "greeting_scale"
COMPILE_FLAGS = ("-std=c++17", "-O2", "-fPIC", "-fvisibility=hidden")


@dataclass(frozen=True)
class CrossWheel:
    """An unrepaired wheel built for another platform, and what it was built from."""

    wheel: Path
    library_member: str  # the kernel library's path inside the wheel
    helper_dir: Path | None  # the helper library, outside the wheel (helper=True): --lib-path for the repair
    tvm_ffi_version: str  # of the apache-tvm-ffi wheel linked against; also the wheel's lower bound
    tvm_ffi_wheel: Path  # that wheel, for the target platform


@dataclass(frozen=True)
class _Target:
    zig_target: str
    pip_platform: str
    python_version: str  # any CPython the platform's apache-tvm-ffi wheel is published for
    wheel_platform: str
    tvm_ffi_library: str  # in the apache-tvm-ffi wheel: what the kernel library links

    def library(self, name: str) -> str:
        return f"lib{name}.dylib" if self.is_macos else f"{name}.dll"

    @property
    def is_macos(self) -> bool:
        return "macos" in self.zig_target


# Without the ".11.0", zig writes minos 15.0 into LC_BUILD_VERSION.
MACOS = _Target(
    zig_target="aarch64-macos.11.0",
    pip_platform="macosx_11_0_arm64",
    python_version="3.12",
    wheel_platform="macosx_11_0_arm64",
    tvm_ffi_library="tvm_ffi/lib/libtvm_ffi.dylib",
)
WINDOWS = _Target(
    zig_target="x86_64-windows-gnu",
    pip_platform="win_amd64",
    python_version="3.13",
    wheel_platform="win_amd64",
    tvm_ffi_library="tvm_ffi/lib/tvm_ffi.lib",  # the import library of tvm_ffi.dll
)

# tvm-ffi's headers take Windows to mean MSVC (_MSC_VER); MinGW's clang gets their POSIX branch.
# Forced into every kernel source with -include.
_WINDOWS_SHIM = """\
/* Windows without _MSC_VER: what tvm-ffi's headers need from MinGW's clang (tests/cross_kernels.py). */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

/* c_api.h defines both only when TVM_FFI_DLL is undefined, and then as visibility("default"):
   no dllexport anywhere makes lld export every symbol. Imports need no dllimport: the import
   library's thunks (and MinGW's auto-import) resolve the TVMFFI* functions. Left empty, the
   class tvm::ffi::Error (header-only) is not imported from tvm_ffi.dll either. */
#define TVM_FFI_DLL
#define TVM_FFI_DLL_EXPORT __declspec(dllexport)

/* memory.h's AlignedAlloc calls posix_memalign, which Windows lacks, for alignments above
   max_align_t, and AlignedFree releases with free(). Nothing free() can release honours such
   an alignment (_aligned_malloc needs _aligned_free), so those fail (std::bad_alloc) rather
   than corrupt the heap. The example's objects are never over-aligned. */
static inline int posix_memalign(void** out, size_t align, size_t size) {
  if (align > __alignof__(max_align_t)) return ENOMEM;
  *out = malloc(size);
  return *out ? 0 : ENOMEM;
}
"""

# The helper: a plain C library the kernel library links, which the wheel does not hold.
_HELPER_SOURCE = """\
#if defined(_WIN32)
#define GREETING_API __declspec(dllexport)
#else
#define GREETING_API __attribute__((visibility("default")))
#endif

GREETING_API int greeting_value(void) { return 42; }
"""

_HELPER_KERNEL_SOURCE = f"""\
// One more kernel, calling into the helper library (libgreeting / greeting.dll).
#include <tvm/ffi/function.h>

extern "C" int greeting_value(void);

namespace example_kernels {{

double GreetingScale(double x) {{ return greeting_value() * x; }}

TVM_FFI_DLL_EXPORT_TYPED_FUNC({HELPER_FUNCTION}, GreetingScale);

}}  // namespace example_kernels
"""


def default_zig() -> list[str]:
    """zig as this Python runs it: ``python -m ziglang``."""
    if importlib.util.find_spec("ziglang") is None:
        raise RuntimeError(f"cross-compiling needs zig: pip install ziglang (into {sys.prefix})")
    return [sys.executable, "-m", "ziglang"]


def build_macos_wheel(
    out: Path, *, name: str = "example_kernels", helper: bool = False,
    tvm_ffi_version: str | None = None, zig: Sequence[str | Path] | None = None,
) -> CrossWheel:
    """The example's kernels as an unrepaired ``py3-none-macosx_11_0_arm64`` wheel, in ``out``/dist.

    ``out`` must be empty or absent. ``tvm_ffi_version``: the newest pip resolves if None.
    ``zig``: the command that runs zig (``default_zig()`` if None).
    """
    return _build(MACOS, Path(out), name, helper, tvm_ffi_version, zig)


def build_windows_wheel(
    out: Path, *, name: str = "example_kernels", helper: bool = False,
    tvm_ffi_version: str | None = None, zig: Sequence[str | Path] | None = None,
) -> CrossWheel:
    """The example's kernels as an unrepaired ``py3-none-win_amd64`` wheel, in ``out``/dist.

    As build_macos_wheel; the library is a DLL, with no .pdb beside it in the wheel.
    """
    return _build(WINDOWS, Path(out), name, helper, tvm_ffi_version, zig)


def download_tvm_ffi(target: _Target, dest: Path, version: str | None = None) -> tuple[Path, str]:
    """The target's apache-tvm-ffi wheel (the newest if ``version`` is None) and its version."""
    dest.mkdir(parents=True, exist_ok=True)
    requirement = "apache-tvm-ffi" if version is None else f"apache-tvm-ffi=={version}"
    _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
          "--platform", target.pip_platform, "--python-version", target.python_version,
          "--disable-pip-version-check", "-d", dest, requirement])
    (wheel,) = dest.glob("apache_tvm_ffi-*.whl")
    return wheel, wheel.name.split("-")[1]


def _build(target: _Target, out: Path, name: str, helper: bool, version: str | None,
           zig: Sequence[str | Path] | None) -> CrossWheel:
    out.mkdir(parents=True, exist_ok=True)
    if any(out.iterdir()):
        raise ValueError(f"{out} is not empty: cross builds go into fresh folders")
    zig_command = [str(part) for part in (zig or default_zig())]

    tvm_ffi_wheel, tvm_ffi_version = download_tvm_ffi(target, out / "tvm-ffi", version)
    tvm_ffi = out / "tvm-ffi" / "unpacked"
    with zipfile.ZipFile(tvm_ffi_wheel) as archive:
        wanted = [n for n in archive.namelist() if n.startswith("tvm_ffi/include/") or n == target.tvm_ffi_library]
        archive.extractall(tvm_ffi, members=wanted)
    # tvm_ffi/include holds dlpack/ too, so one -I does.
    include = tvm_ffi / "tvm_ffi" / "include"

    build = out / "build"
    build.mkdir()
    sources = [KERNELS]
    link: list[str] = []
    helper_dir = None
    if helper:
        helper_dir = out / "helper"
        link += _build_helper(target, zig_command, out / "helper-build", helper_dir)
        sources.append(build / "greeting_kernel.cc")
        sources[-1].write_text(_HELPER_KERNEL_SOURCE)

    flags = [*COMPILE_FLAGS, "-I", str(include)]
    library = build / target.library(name)
    if target.is_macos:
        # @rpath/, as CMake would: the repair adds the LC_RPATH that finds libtvm_ffi.dylib.
        link += ["-L", str(tvm_ffi / "tvm_ffi" / "lib"), "-ltvm_ffi", f"-Wl,-install_name,@rpath/{library.name}"]
    else:
        shim = build / "mingw_shim.h"
        shim.write_text(_WINDOWS_SHIM)
        flags += ["-include", str(shim)]
        link += [str(tvm_ffi / target.tvm_ffi_library)]
    _run([*zig_command, "c++", "-target", target.zig_target, *flags, "-shared", "-o", library, *sources, *link])

    member = f"{name}/{library.name}"
    files = {
        f"{name}/__init__.py": _init_py(name, library.name, helper).encode(),
        member: library.read_bytes(),
    }
    wheel = _write_wheel(out / "dist", name, target.wheel_platform, tvm_ffi_version, files)
    return CrossWheel(wheel=wheel, library_member=member, helper_dir=helper_dir,
                      tvm_ffi_version=tvm_ffi_version, tvm_ffi_wheel=tvm_ffi_wheel)


def _build_helper(target: _Target, zig_command: list[str], build: Path, helper_dir: Path) -> list[str]:
    """Build the helper library into ``build``, copy it alone into ``helper_dir`` (no import
    library or .pdb there: it is what the repair vendors), and return the kernel's link arguments."""
    build.mkdir()
    helper_dir.mkdir()
    source = build / "greeting.c"
    source.write_text(_HELPER_SOURCE)
    library = build / ("libgreeting.dylib" if target.is_macos else "greeting.dll")
    if target.is_macos:
        extra = ["-fPIC", "-Wl,-install_name,@rpath/libgreeting.dylib"]
        link = ["-L", str(build), "-lgreeting"]
    else:
        import_library = build / "libgreeting.dll.a"
        extra = [f"-Wl,--out-implib,{import_library}"]
        link = [str(import_library)]
    _run([*zig_command, "cc", "-target", target.zig_target, "-O2", "-fvisibility=hidden", *extra,
          "-shared", "-o", library, source])
    (helper_dir / library.name).write_bytes(library.read_bytes())
    return link


def _init_py(name: str, library: str, helper: bool) -> str:
    functions = [*KERNEL_FUNCTIONS, *([HELPER_FUNCTION] if helper else [])]
    lines = [
        f'"""{name}: the example\'s kernels, cross-compiled by the tests (tests/cross_kernels.py)."""',
        "",
        "import os",
        "",
        "import tvm_ffi",
        "",
        f"_LIB = tvm_ffi.load_module(os.path.join(os.path.dirname(__file__), {library!r}))",
        "",
        *(f"{function} = _LIB.{function}" for function in functions),
    ]
    return "\n".join(lines) + "\n"


def _write_wheel(dist: Path, name: str, platform: str, tvm_ffi_version: str, files: dict[str, bytes]) -> Path:
    """A wheel of ``files`` with its dist-info: METADATA, WHEEL, and RECORD (sha256 of each)."""
    version = "0.1.0"
    dist_info = f"{name}-{version}.dist-info"
    tag = f"py3-none-{platform}"
    files = {
        **files,
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n"
            f"Summary: The example's kernels, cross-compiled for {platform}\n"
            f"Requires-Dist: apache-tvm-ffi>={tvm_ffi_version}\n"
        ).encode(),
        f"{dist_info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: tests/cross_kernels.py\nRoot-Is-Purelib: false\nTag: {tag}\n"
        ).encode(),
    }
    record = [f"{path},sha256={_digest(data)},{len(data)}" for path, data in files.items()]
    files[f"{dist_info}/RECORD"] = ("\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n").encode()

    dist.mkdir()
    wheel = dist / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in files.items():
            info = zipfile.ZipInfo(path, date_time=(2024, 1, 1, 0, 0, 0))  # the same bytes every build
            binary = path.endswith((".dylib", ".dll"))
            info.external_attr = (0o100755 if binary else 0o100644) << 16
            archive.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    return wheel


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _run(command: Sequence[str | Path]) -> None:
    """Run a command; fail with its output."""
    result = subprocess.run([str(part) for part in command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{command} failed ({result.returncode}):\n{result.stdout[-6000:]}")
