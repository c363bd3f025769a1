"""The `tvmffi-wheel` command (also `python -m tvmffi_wheel`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import resources

from tvmffi_wheel import __version__
from tvmffi_wheel.errors import TvmFfiWheelError, report_internal_error, report_user_error
from tvmffi_wheel.settings import reference_markdown


def _cmake_dir() -> str:
    return str(resources.files("tvmffi_wheel") / "cmake")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tvmffi-wheel",
        description="Build, repair, tag and pin wheels of tvm-ffi kernel libraries. As a "
        'build backend: build-backend = "tvmffi_wheel.build" in pyproject.toml.',
    )
    parser.add_argument("--version", action="version", version=f"tvmffi-wheel {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser("settings", help="print the configuration reference (Markdown)")
    commands.add_parser("cmake-dir", help="print the folder holding TvmFfiWheel.cmake")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "settings":
            sys.stdout.write(reference_markdown())
        elif args.command == "cmake-dir":
            print(_cmake_dir())
    except TvmFfiWheelError as err:
        report_user_error(err)
        return 1
    except Exception as err:
        report_internal_error(err)
        raise
    return 0
