"""The one module that calls scikit-build-core, and the one thing it adjusts.

We compile through scikit-build-core's own PEP 517 hooks, so `[tool.scikit-build]`
keeps its meaning, and read its settings through its own reader (`read_build_settings`),
so what we check is what CMake gets. One setting cannot work unchanged behind our backend: tvm-ffi's
documented recipe says `minimum-version = "build-system.requires"`, which makes
scikit-build-core look for its own name in `[build-system] requires`; once that names
`tvmffi-wheel` instead, it stops. There is no option to change where it looks, so while
our hooks run, that lookup also consults the scikit-build-core requirement tvmffi-wheel
itself declares. pyproject.toml pins scikit-build-core to the 1.1 series.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata as importlib_metadata
from types import ModuleType
from typing import Any, Literal

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from scikit_build_core.settings import skbuild_read_settings

from tvmffi_wheel.errors import TvmFfiWheelError

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


def tool_versions() -> dict[str, str]:
    """scikit-build-core's version, and the CMake's it builds with (found as it finds it)."""
    from packaging.specifiers import SpecifierSet
    from scikit_build_core.program_search import best_program, get_cmake_programs

    versions = {"scikit-build-core": importlib_metadata.version("scikit-build-core")}
    cmake = best_program(get_cmake_programs(), version=SpecifierSet(">=3.15"))
    if cmake is not None and cmake.version is not None:
        versions["cmake"] = str(cmake.version)
    return versions


def call(hook_name: str, *args: Any) -> Any:
    """Run scikit-build-core's PEP 517 hook ``hook_name``."""
    hook: Callable[..., Any] = getattr(_hooks(), hook_name)
    try:
        with _minimum_version_from_our_requirement():
            return hook(*args)
    except UnicodeDecodeError as err:  # a project file in another encoding that build.py did not check
        raise TvmFfiWheelError(
            f"scikit-build-core read text that is not UTF-8 ({err})",
            "save the project's text files (pyproject.toml, the readme, the license) as UTF-8",
        ) from None


@dataclasses.dataclass(frozen=True)
class BuildSettings:
    """What scikit-build-core will build with, as its own settings reader sees it: env
    tables, overrides, `-C` config-settings and SKBUILD_* variables applied."""

    # Every CMake variable the user sets: cmake.define, then the -D of cmake.args and of
    # $CMAKE_ARGS, in the order scikit-build-core passes them, so the last one wins as in CMake.
    cmake_defines: dict[str, str]
    # The environment CMake runs in: this process's, with [tool.scikit-build.env] applied.
    environment: dict[str, str]
    packages: dict[str, str]  # where each package lands in the wheel -> its source folder
    sdist_exclude: tuple[str, ...]
    editable_mode: str  # "redirect" or "inplace"
    editable_rebuild: bool  # scikit-build-core rebuilds on import, without tvmffi-wheel
    py_api: str = ""  # wheel.py-api: "", "py3", "cp312", ...
    source_dir: str = "."  # cmake.source-dir: where CMakeLists.txt is, relative to the project
    build_dir: str = ""  # build-dir: "" for a new temporary folder each build
    install_dir: str = ""  # wheel.install-dir: where CMake's install prefix is inside the wheel

    def py_api_warning(self, python: tuple[int, int]) -> str | None:
        """scikit-build-core quietly tags a plain cpXY-cpXY wheel when the stable ABI asked
        for (`wheel.py-api = "cp3Y"`) starts after the running Python: say so."""
        match = re.fullmatch(r"cp3(\d+)", self.py_api)
        if match is None or int(match.group(1)) <= python[1]:
            return None
        return (
            f'wheel.py-api = "{self.py_api}" asks for the stable ABI from Python 3.{match.group(1)}, but this '
            f"is Python {python[0]}.{python[1]}, so the wheel is tagged cp{python[0]}{python[1]} for this "
            f"Python only; build with Python 3.{match.group(1)} or newer for an abi3 wheel"
        )


BuildState = Literal["sdist", "wheel", "editable"]


def read_build_settings(
    pyproject: dict[str, Any],
    config_settings: Mapping[str, Any],
    environ: Mapping[str, str],
    state: BuildState,
) -> BuildSettings:
    """scikit-build-core's settings for this build, read by scikit-build-core itself.

    ``config_settings`` must hold scikit-build-core's keys only (ours removed). Env tables
    resolve against os.environ, as scikit-build-core resolves them.
    """
    from scikit_build_core.build._editable import get_packages
    from scikit_build_core.builder.builder import set_environment_from_settings
    from scikit_build_core.builder.cmake_args import iter_cmake_defines
    from scikit_build_core.settings.skbuild_read_settings import SettingsReader

    try:
        with _minimum_version_from_our_requirement():
            reader = SettingsReader(pyproject, dict(config_settings), state=state, env=environ)
    except (ValueError, TypeError, KeyError) as err:
        raise TvmFfiWheelError(
            f"scikit-build-core cannot read [tool.scikit-build] ({type(err).__name__}: {err})",
            "fix the setting it names; scikit-build-core's documentation lists them",
        ) from None
    settings = reader.settings
    defines = {name: str(value) for name, value in settings.cmake.define.items()}
    args = [*settings.cmake.args, *shlex.split(environ.get("CMAKE_ARGS", ""))]
    defines.update({define.name: define.value for define in iter_cmake_defines(args)})
    environment = dict(environ)
    set_environment_from_settings(environment, settings)
    name = str(pyproject.get("project", {}).get("name", ""))
    return BuildSettings(
        cmake_defines=defines,
        environment=environment,
        packages=get_packages(packages=settings.wheel.packages, name=name),
        sdist_exclude=tuple(settings.sdist.exclude),
        editable_mode=settings.editable.mode,
        editable_rebuild=settings.editable.rebuild_on_import,
        py_api=settings.wheel.py_api,
        source_dir=str(settings.cmake.source_dir),
        build_dir=settings.build_dir,
        install_dir=settings.wheel.install_dir,
    )
