"""The environment CMake runs in: what the backend appends to and sets in it.

Flags that carry paths are shell-quoted: CMake's generators run compile commands through
a shell, so a project or build environment in a folder with a space or a quote survives.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path

from tvmffi_wheel.compiling.cuda import CudaPlan


@contextlib.contextmanager
def changed_environment(appended: dict[str, tuple[str, str]], replaced: dict[str, str]) -> Iterator[None]:
    """While CMake runs: append (separator, value) to some variables, set others; then restore.

    Appending adds to what CMake reads without overriding a cache variable the project or
    the user set, and the user's own entries stay first.
    """
    previous = {name: os.environ.get(name) for name in [*appended, *replaced]}
    for name, (separator, value) in appended.items():
        if value:
            os.environ[name] = separator.join(filter(None, [previous[name], value]))
    os.environ.update(replaced)
    try:
        yield
    finally:
        for name, old in previous.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def cmake_environment(
    tvm_ffi_prefix: Path, prefix_map: Mapping[Path, str], cuda: CudaPlan, *, python_path: bool = False
) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """The environment CMake runs in: (variables appended to, variables set).

    - CMAKE_PREFIX_PATH gets the build environment's site-packages holding tvm_ffi, since
      scikit-build-core adds only its own site-packages and pip installs what
      get_requires_for_build_* asks for (apache-tvm-ffi) into another one;
    - CFLAGS and CXXFLAGS get one -ffile-prefix-map per entry of ``prefix_map`` (path to
      placeholder), and CUDAFLAGS what compiling/cuda.py composes from its own flags and those;
    - with ``python_path``, PYTHONPATH gets ``tvm_ffi_prefix`` too: tvm-ffi's CMake package asks
      Python for its include folder, so the tvm_ffi imported there is the one whose path counts
      (a mirror at a stable path, stable_source.py);
    - with cuda.toolkit = pip, CUDACXX and CUDAToolkit_ROOT point at NVIDIA's toolkit wheels
      (plan_cuda refuses a CUDACXX the user set), and LIBRARY_PATH gets their lib folder.
    """
    host_flags = reproducible_flags(prefix_map)
    appended = {
        "CMAKE_PREFIX_PATH": (os.pathsep, str(tvm_ffi_prefix)),
        # A command-line fragment that CMake's generators hand to a shell: quoted for it.
        "CFLAGS": (" ", shlex.join(host_flags)),
        "CXXFLAGS": (" ", shlex.join(host_flags)),
        "CUDAFLAGS": (" ", cuda.cuda_flags(host_flags)),
    }
    if python_path:
        appended["PYTHONPATH"] = (os.pathsep, str(tvm_ffi_prefix))
    if cuda.library_path is not None:
        appended["LIBRARY_PATH"] = (os.pathsep, cuda.library_path)
    return appended, dict(cuda.toolkit_environment)


def cmake_string(value: str | Path) -> str:
    """``value`` as one quoted CMake argument that stands for itself: a path with a quote,
    a backslash or a `$` (no variable reference) included. (A `;` stays as it is: in a
    quoted argument it divides nothing, and `\\;` would keep its backslash.)"""
    escaped = str(value)
    for special in ("\\", '"', "$"):
        escaped = escaped.replace(special, "\\" + special)
    return f'"{escaped}"'


def reproducible_flags(prefix_map: Mapping[Path, str]) -> list[str]:
    """Map the paths that differ between two builds of the same source out of the binaries.

    tvm-ffi's headers put __FILE__ into error messages, and an isolated build environment
    has a new path every time; so does a project copied elsewhere. Without this, two builds
    of the same source differ in those strings and in the build ID computed from them.
    """
    # Not resolved: a path may be a link on purpose (stable_source.py), and the compilers see it as given.
    return [f"-ffile-prefix-map={path}={placeholder}" for path, placeholder in prefix_map.items()]
