"""The one module that calls scikit-build-core, and the one thing it adjusts.

We compile through scikit-build-core's own PEP 517 hooks, so `[tool.scikit-build]`
keeps its meaning. One setting cannot work unchanged behind our backend: tvm-ffi's
documented recipe says `minimum-version = "build-system.requires"`, which makes
scikit-build-core look for its own name in `[build-system] requires`; once that names
`tvmffi-wheel` instead, it stops. There is no option to change where it looks, so while
our hooks run, that lookup also consults the scikit-build-core requirement tvmffi-wheel
itself declares. pyproject.toml pins scikit-build-core to the 1.1 series.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata as importlib_metadata
from types import ModuleType
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from scikit_build_core.settings import skbuild_read_settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SKBUILD = "scikit-build-core"


@functools.lru_cache(maxsize=1)
def _our_skbuild_requirement() -> tuple[str, ...]:
    try:
        declared = importlib_metadata.requires("tvmffi-wheel") or []
    except importlib_metadata.PackageNotFoundError:
        return ()
    return tuple(r for r in declared if canonicalize_name(Requirement(r).name) == SKBUILD)


@contextlib.contextmanager
def _minimum_version_from_our_requirement() -> Iterator[None]:
    original = skbuild_read_settings.get_min_requires

    def get_min_requires(package: str, reqlist: Any) -> Any:
        found = original(package, reqlist)
        if found is None and canonicalize_name(package) == SKBUILD:
            found = original(package, _our_skbuild_requirement())
        return found

    skbuild_read_settings.get_min_requires = get_min_requires
    try:
        yield
    finally:
        skbuild_read_settings.get_min_requires = original


def _hooks() -> ModuleType:
    # Imported on use: scikit-build-core parses pyproject.toml while importing its hooks,
    # and a broken file must reach the user as our message, not as a traceback.
    import scikit_build_core.build

    return scikit_build_core.build


def call(hook_name: str, *args: Any) -> Any:
    """Run scikit-build-core's PEP 517 hook ``hook_name``."""
    hook: Callable[..., Any] = getattr(_hooks(), hook_name)
    with _minimum_version_from_our_requirement():
        return hook(*args)


def has_prepare_metadata() -> bool:
    """scikit-build-core leaves these hooks out when an override retries on failure."""
    try:
        return hasattr(_hooks(), "prepare_metadata_for_build_wheel")
    except tomllib.TOMLDecodeError:
        return True  # our hooks report the broken pyproject.toml when called


def _define_pairs(args: list[str]) -> dict[str, str]:
    """`-DNAME=VALUE` and `-DNAME:TYPE=VALUE` from a list of CMake arguments."""
    defines = {}
    for argument in args:
        if argument.startswith("-D") and "=" in argument:
            name, value = argument[2:].split("=", 1)
            defines[name.split(":", 1)[0]] = value
    return defines


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value)


def user_cmake_defines(
    pyproject: Mapping[str, Any], config_settings: Mapping[str, Any], environ: Mapping[str, str]
) -> dict[str, str]:
    """The CMake variables the user set through scikit-build-core's own channels.

    Read so that what we pass (the CUDA runtime and architectures) never overrides them:
    [tool.scikit-build] cmake.define and cmake.args, -C cmake.define.X / cmake.args, and the
    SKBUILD_CMAKE_DEFINE, SKBUILD_CMAKE_ARGS and CMAKE_ARGS environment variables.
    """
    cmake = pyproject.get("tool", {}).get("scikit-build", {}).get("cmake", {})
    defines = {k: _as_text(v) for k, v in cmake.get("define", {}).items()}
    defines.update(_define_pairs(list(cmake.get("args", []))))
    for key, value in config_settings.items():
        if key.startswith("cmake.define."):
            defines[key[len("cmake.define.") :]] = _as_text(value)
        elif key == "cmake.args":
            items = value if isinstance(value, list) else str(value).split(";")
            defines.update(_define_pairs(items))
    for item in environ.get("SKBUILD_CMAKE_DEFINE", "").split(";"):
        if "=" in item:
            name, value = item.split("=", 1)
            defines[name.split(":", 1)[0]] = value
    defines.update(_define_pairs(environ.get("SKBUILD_CMAKE_ARGS", "").split(";")))
    defines.update(_define_pairs(environ.get("CMAKE_ARGS", "").split()))
    return defines
