"""The project's own files the hooks read before anything builds: pyproject.toml, and the
readme and license that go into METADATA."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tvmffi_wheel.errors import TvmFfiWheelError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_pyproject() -> dict[str, Any]:
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
    except UnicodeDecodeError as err:
        raise _not_utf8("pyproject.toml", err) from None


def _not_utf8(name: str, err: UnicodeDecodeError) -> TvmFfiWheelError:
    return TvmFfiWheelError(
        f"{name} is not UTF-8 text (byte {err.start} cannot be read as UTF-8)",
        f"save {name} as UTF-8: the wheel's metadata is UTF-8",
    )


def check_metadata_files(pyproject: dict[str, Any]) -> None:
    """The readme and license files go into METADATA: scikit-build-core reads them as UTF-8
    and otherwise fails with an error that names no file (`_skbuild.call` catches that one
    for any other file)."""
    project = pyproject.get("project", {})
    readme, license_ = project.get("readme"), project.get("license")
    names = [readme.get("file") if isinstance(readme, dict) else readme,
             license_.get("file") if isinstance(license_, dict) else None]
    for name in names:
        if not isinstance(name, str):
            continue
        try:
            Path(name).read_bytes().decode("utf-8")
        except UnicodeDecodeError as err:
            raise _not_utf8(name, err) from None
        except OSError:
            continue  # a missing file is scikit-build-core's to report
