"""Windows's platform tag, and how a package finds its DLLs there.

Windows has no run path: a DLL's dependencies are found in the folders the process added
with os.add_dll_directory (Python 3.8 and later search those), among others. So a repaired
package adds, when it is imported, the folder of tvm_ffi.dll and the folder of the DLLs a
repair vendored; loading the kernel then works whether or not tvm_ffi was imported first.
"""

from __future__ import annotations

from collections.abc import Sequence

from tvmffi_wheel.common.tvm_ffi import TVM_FFI_LIB_DIR
from tvmffi_wheel.deciding.classify import Classifier, Kind
from tvmffi_wheel.deciding.runpath import install_path
from tvmffi_wheel.inspecting.wheel import WheelBinary

TAG_BY_ARCH = {"amd64": "win_amd64", "arm64": "win_arm64", "x86": "win32"}


def windows_platform_tag(arch: str) -> str:
    return TAG_BY_ARCH[arch]


def dll_folders(binaries: Sequence[WheelBinary], classifier: Classifier, vendoring: bool) -> tuple[str, ...]:
    """The site-packages folders the package must add for its DLLs to load."""
    kinds = {kind for b in binaries for _, kind in classifier.needs(b.facts)}
    folders = []
    if Kind.TVM_FFI in kinds:
        folders.append(TVM_FFI_LIB_DIR)
    if vendoring or Kind.VENDORED in kinds:  # vendored now, or by an earlier repair
        folders.append(classifier.libs_dir)
    return tuple(folders)


def packages_to_patch(binaries: Sequence[WheelBinary], libs_dir: str) -> tuple[str, ...]:
    """The top-level package folders holding the wheel's DLLs (site-packages relative), but
    the vendored DLLs' folder ``libs_dir``, which is no package."""
    found = []
    for binary in binaries:
        location = install_path(binary.path)
        if location is not None and "/" in location and location.split("/", 1)[0] != libs_dir:
            found.append(location.split("/", 1)[0])
    return tuple(dict.fromkeys(found))
