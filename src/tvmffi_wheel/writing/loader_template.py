"""Loads this package's tvm-ffi kernel libraries, checking first that they can work here.

Written into the wheel by tvmffi-wheel (the `loader` option); it needs nothing of
tvmffi-wheel at run time. `load(target)` returns the `tvm_ffi.Module` of `lib<target>.so`
(`lib<target>.dylib` on macOS, `<target>.dll` on Windows) after three checks, each of which
raises ImportError with the fix instead of failing later:

- the installed apache-tvm-ffi lies in the range the wheel requires;
- the library binds immediately (RTLD_NOW): a missing symbol is named now, not at the
  first call, where the process would die;
- every visible CUDA GPU has device code in the library that it can run (checked only when
  the driver and a GPU are there: a CPU-only use is fine).

`BUILD` records how the wheel was built: the tvm-ffi it was built against, the range it
admits, its platform, and each library's device code.
"""

from __future__ import annotations

import ctypes
import os
import re
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

BUILD: dict[str, Any] = {}  # filled in when tvmffi-wheel writes this file into a wheel

_TVM_FFI = "apache-tvm-ffi"
_HERE = Path(__file__).parent


def load(target: str) -> Any:
    """The tvm_ffi.Module of the library `target` from this package (typed Any: tvm_ffi is
    imported only here), checked first."""
    libraries = BUILD["libraries"]
    if target not in libraries:
        raise ImportError(f"{BUILD['distribution']} has no library {target!r}; it has: "
                          + ", ".join(Path(libraries[name]["path"]).name for name in sorted(libraries)))
    library = libraries[target]
    path = _HERE / library["path"]
    installed = _check_tvm_ffi()
    import tvm_ffi  # after the version check: an incompatible one may not even import

    if hasattr(os, "add_dll_directory"):  # Windows: no run path; tvm_ffi.dll's folder, for the check below
        os.add_dll_directory(str(Path(tvm_ffi.__file__).parent / "lib"))
    _check_binding(path, installed)
    _check_gpus(path.name, library["device_code"])
    return tvm_ffi.load_module(str(path))


# --------------------------------------------------------------------------- tvm-ffi range


def _check_tvm_ffi() -> str:
    required = BUILD["tvm_ffi_requirement"]
    fix = f"pip install '{_TVM_FFI}{required}'"
    try:
        installed = metadata.version(_TVM_FFI)
    except metadata.PackageNotFoundError:
        raise ImportError(f"{BUILD['distribution']} needs {_TVM_FFI}{required}, which is not installed; "
                          f"fix: {fix}") from None
    if not admits(required, installed):
        raise ImportError(
            f"{BUILD['distribution']} needs {_TVM_FFI}{required} (built against "
            f"{BUILD['tvm_ffi_version']}), but {_TVM_FFI} {installed} is installed; fix: {fix}"
        )
    return installed


_VERSION = re.compile(r"^v?(\d+(?:\.\d+)*)(?:[-_.]?(a|b|rc)(\d+))?(?:[-_.]?post(\d+))?(?:[-_.]?dev(\d+))?$")
_LOW, _HIGH = (0,), (2,)


def version_key(text: str) -> tuple[Any, ...] | None:
    """A sort key for a PEP 440 version (None if it is not one): dev < pre < final < post."""
    match = _VERSION.match(text.strip().lower())
    if match is None:
        return None
    release = tuple(int(part) for part in match.group(1).split("."))
    while len(release) > 1 and release[-1] == 0:
        release = release[:-1]
    letter, number, post, dev = match.group(2), match.group(3), match.group(4), match.group(5)
    if letter is not None:
        pre: tuple[int, ...] = (1, ["a", "b", "rc"].index(letter), int(number))
    else:
        pre = _LOW if dev is not None and post is None else _HIGH
    return (release, pre, (1, int(post)) if post else _LOW, (1, int(dev)) if dev else _HIGH)


def admits(specifier: str, version: str) -> bool:
    """Whether a specifier set such as `!=0.1.8,<0.1.13,>=0.1.12` admits ``version``.

    Clauses it cannot read count as admitting: the check must never block a valid install.
    """
    key = version_key(version)
    if key is None:
        return True
    for clause in filter(None, (c.strip() for c in specifier.split(","))):
        operator = next((op for op in ("===", "~=", "==", "!=", "<=", ">=", "<", ">") if clause.startswith(op)), "")
        bound_text = clause[len(operator):].strip()
        if bound_text.endswith(".*") and operator in ("==", "!="):
            prefix = version_key(bound_text[:-2])
            if prefix is None:
                continue
            same = key[0][: len(prefix[0])] == prefix[0]
            if same != (operator == "=="):
                return False
            continue
        bound = version_key(bound_text)
        if bound is not None and not _holds(operator, key, bound):
            return False
    return True


def _holds(operator: str, key: tuple[Any, ...], bound: tuple[Any, ...]) -> bool:
    same_release = key[0] == bound[0]
    if operator in ("==", "==="):
        return key == bound
    if operator == "!=":
        return key != bound
    if operator == "<":  # PEP 440: not a pre-release of the bound itself
        return key < bound and not (same_release and key[1] != _HIGH and bound[1] == _HIGH)
    if operator == ">":  # nor a post-release of it
        return key > bound and not (same_release and key[2] != _LOW and bound[2] == _LOW)
    if operator == "<=":
        return key <= bound
    if operator == ">=":
        return key >= bound
    if operator == "~=":
        stem = bound[0][:-1] if len(bound[0]) > 1 else bound[0]
        return key >= bound and key[0][: len(stem)] == stem
    return True


# --------------------------------------------------------------------------- binding


def _check_binding(path: Path, installed: str) -> None:
    try:
        # Windows binds every import at load and has no RTLD_* flags.
        ctypes.CDLL(str(path), mode=getattr(os, "RTLD_NOW", 0) | getattr(os, "RTLD_LOCAL", 0))
    except OSError as err:
        symbol = re.search(r"undefined symbol: (\S+)", str(err))
        if symbol is None:
            raise ImportError(f"cannot load {path}: {err}") from None
        raise ImportError(
            f"{path.name} needs the symbol {symbol.group(1).rstrip(',')}, which this process does not "
            f"provide: {_TVM_FFI} {installed} is installed, the wheel was built against "
            f"{BUILD['tvm_ffi_version']} and admits {BUILD['tvm_ffi_requirement']}; fix: "
            f"pip install '{_TVM_FFI}=={BUILD['tvm_ffi_version']}'"
        ) from None


# --------------------------------------------------------------------------- GPUs

_IMAGE = re.compile(r"^(sm|compute)_(\d+)([af]?)$")
_ATTRIBUTE_MAJOR, _ATTRIBUTE_MINOR = 75, 76  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_*


def coverage(device_code: list[str], major: int, minor: int) -> tuple[str, str] | None:
    """("sass", image) when a cubin runs on a device of compute capability major.minor,
    else ("ptx", image) when PTX can be compiled for it, else None.

    SASS sm_XY runs on the same major with a minor of Y or more; `a` images only on
    exactly X.Y, `f` images on the family X.Y and up; PTX compute_XY on anything from X.Y.
    """
    ptx = None
    for image in device_code:
        match = _IMAGE.match(image)
        if match is None:
            continue
        kind, number, variant = match.group(1), int(match.group(2)), match.group(3)
        arch_major, arch_minor = divmod(number, 10)
        if variant == "a":
            fits = (major, minor) == (arch_major, arch_minor)
        elif kind == "sm" or variant == "f":
            fits = major == arch_major and minor >= arch_minor
        else:
            fits = (major, minor) >= (arch_major, arch_minor)
        if fits and kind == "sm":
            return ("sass", image)
        if fits and ptx is None:
            ptx = ("ptx", image)
    return ptx


def _gpus() -> list[tuple[str, int, int]]:
    """(name, major, minor) of each visible GPU; [] without a driver or a GPU."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return []
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return []
    found = []
    for ordinal in range(count.value):
        device, major, minor = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
        if (cuda.cuDeviceGet(ctypes.byref(device), ordinal) != 0
                or cuda.cuDeviceGetAttribute(ctypes.byref(major), _ATTRIBUTE_MAJOR, device) != 0
                or cuda.cuDeviceGetAttribute(ctypes.byref(minor), _ATTRIBUTE_MINOR, device) != 0):
            continue
        name = ctypes.create_string_buffer(256)
        has_name = hasattr(cuda, "cuDeviceGetName") and cuda.cuDeviceGetName(name, 256, device) == 0
        shown = name.value.decode("utf-8", "replace") if has_name else "GPU"
        found.append((f"{shown} (device {ordinal})", major.value, minor.value))
    return found


def _check_gpus(library: str, device_code: list[str]) -> None:
    if not device_code:
        return
    for name, major, minor in _gpus():
        covered = coverage(device_code, major, minor)
        if covered is None:
            raise ImportError(
                f"{name}, sm_{major}{minor}, cannot run {library}: it has device code for "
                f"{', '.join(device_code)} only; fix: install a build whose cuda.architectures "
                f"include {major}{minor}-real, or a PTX target of compute_{major}{minor} or lower"
            )
        if covered[0] == "ptx":
            warnings.warn(
                f"{library} has no SASS for {name}, sm_{major}{minor}: its kernels are compiled from "
                f"PTX {covered[1]} when first used",
                RuntimeWarning,
                stacklevel=3,
            )
