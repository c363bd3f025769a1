"""Windows: PE binaries, case-insensitive names, no run path.

A DLL's dependencies are found in the folders the process added with os.add_dll_directory
(Python 3.8 and later search those), among others. So a repaired package adds, when it is
imported, the folder of tvm_ffi.dll and the folder of the DLLs a repair vendored; loading the
kernel then works whether or not tvm_ffi was imported first. What the system provides is a
fixed list, as delvewheel keeps one.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from tvmffi_wheel.common.tvm_ffi import TVM_FFI_LIB_DIR
from tvmffi_wheel.deciding.platforms.base import LibrarySearch, Platform, TagChoice, TagJudgement, Vendor
from tvmffi_wheel.deciding.platforms.macos import refuse_plat
from tvmffi_wheel.deciding.runpath import install_path
from tvmffi_wheel.inspecting.wheel import WheelBinary

if TYPE_CHECKING:
    from tvmffi_wheel.deciding.classify import Classifier

TAG_BY_ARCH = {"amd64": "win_amd64", "arm64": "win_arm64", "x86": "win32"}
# The Windows DLLs every supported Windows has, besides the API sets (api-ms-win-*,
# ext-ms-*), and the C runtime CPython itself ships (vcruntime140*.dll; MSVCP140 is not
# among them, so a kernel built with MSVC's C++ library carries its own, as apache-tvm-ffi does).
_WINDOWS_DLLS = (
    "advapi32", "bcrypt", "cfgmgr32", "comctl32", "comdlg32", "crypt32", "d3d11", "d3d12", "dbghelp",
    "dnsapi", "dwmapi", "dxgi", "gdi32", "imm32", "iphlpapi", "kernel32", "kernelbase", "msvcrt",
    "mswsock", "ncrypt", "netapi32", "normaliz", "ntdll", "ole32", "oleaut32", "opengl32", "powrprof",
    "psapi", "rpcrt4", "secur32", "setupapi", "shell32", "shlwapi", "ucrtbase", "user32", "userenv",
    "uxtheme", "version", "winhttp", "wininet", "winmm", "ws2_32", "wsock32", "vcruntime140",
    "vcruntime140_1",
)


def windows_platform_tag(arch: str) -> str:
    return TAG_BY_ARCH[arch]


@dataclasses.dataclass(frozen=True)
class WindowsPlatform(Platform):
    def places(self, name: str, origin: str | None, run_paths: Sequence[str], search_dirs: Sequence[str]) -> list[str]:
        return [posixpath.join(folder, self.file_name(name)) for folder in search_dirs]  # no run path

    def choose_tags(
        self, binaries: Sequence[WheelBinary], classifier: Classifier, arch: str, plat: str, vendor: Vendor,
        deployment_target: str | None,
    ) -> TagChoice:
        refuse_plat(self, plat)
        return TagChoice((windows_platform_tag(arch),), None, vendor(classifier), ())

    def cross_tags(self, binaries: Sequence[WheelBinary], arch: str) -> tuple[str, ...]:
        return (windows_platform_tag(arch),)

    def judge_tag(self, carried: str, binaries: Sequence[WheelBinary], classifier: Classifier,
                  arch: str) -> TagJudgement:
        return TagJudgement(None, windows_platform_tag(arch), classifier)

    def dll_folders(self, binaries: Sequence[WheelBinary], classifier: Classifier, vendoring: bool) -> tuple[str, ...]:
        folders = []
        if any(classifier.needs_tvm_ffi(b.facts) for b in binaries):
            folders.append(TVM_FFI_LIB_DIR)
        if vendoring or any(classifier.needs_vendored(b.facts) for b in binaries):  # now, or by an earlier repair
            folders.append(classifier.libs_dir)
        return tuple(folders)

    def packages_to_patch(self, binaries: Sequence[WheelBinary], libs_dir: str) -> tuple[str, ...]:
        """The top-level package folders holding the wheel's DLLs, but ``libs_dir``, which is no package."""
        found = []
        for binary in binaries:
            location = install_path(binary.path)
            if location is not None and "/" in location and location.split("/", 1)[0] != libs_dir:
                found.append(location.split("/", 1)[0])
        return tuple(dict.fromkeys(found))

    def load_problems(self, binaries: Sequence[WheelBinary], classifier: Classifier,
                      dll_folder_packages: Collection[str]) -> list[str]:
        """A package whose DLL needs tvm_ffi.dll or a vendored DLL must add their folders when
        imported (writing/dll_folders.py), as a run path would on Linux."""
        problems = []
        for binary in binaries:
            location = install_path(binary.path) or ""
            package = location.split("/")[0] if "/" in location else ""
            if not package or package == classifier.libs_dir or package in dll_folder_packages:
                continue
            needs = classifier.needs_tvm_ffi(binary.facts) + classifier.needs_vendored(binary.facts)
            if needs:
                problems.append(f"{binary.path}: needs {needs[0]}, but {package}/__init__.py does not add its folder "
                                "(no DLL folders block), so it loads only after `import tvm_ffi`; run `tvmffi-wheel "
                                "repair` on the wheel")
        return problems

    def import_libraries(self, members: Sequence[str], binaries: Sequence[WheelBinary]) -> list[str]:
        """MinGW's `<name>.dll.a` and a `.lib` named after one of the wheel's DLLs."""
        dlls = {posixpath.splitext(posixpath.basename(b.path))[0].lower() for b in binaries}
        found = []
        for member in members:
            name = posixpath.basename(member).lower()
            if name.endswith(".dll.a") or (name.endswith(".lib") and name[: -len(".lib")] in dlls):
                found.append(member)
        return found


WINDOWS = WindowsPlatform(
    name="Windows", key="windows", format="pe",
    tvm_ffi=("tvm_ffi.dll", "tvm_ffi-*.dll"),
    cuda_driver=("nvcuda.dll", "nvml.dll", "cudart64_*.dll", "cublas*64_*.dll", "cufft*64_*.dll",
                 "curand64_*.dll", "cusolver*64_*.dll", "cusparse64_*.dll", "nvrtc*64_*.dll",
                 "nvjitlink*_*.dll", "cudnn*64_*.dll", "nccl*.dll", "nvtx*.dll"),
    loader=(),
    python=("python3*.dll",),
    provided=("api-ms-win-*", "ext-ms-*", *(f"{name}.dll" for name in _WINDOWS_DLLS)),
    origin=None,
    fold_case=True,
    architectures=("amd64", "arm64", "x86"),
    search=LibrarySearch(("PATH",), False, "the wheel, --lib-path and $PATH"),
    patcher="pe",
    renames_vendored_id=False,
)
