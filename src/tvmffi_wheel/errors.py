"""The one error type for problems a user can fix, and how every entry point reports it."""

from __future__ import annotations

import sys


class TvmFfiWheelError(Exception):
    """A problem in the user's input or environment.

    ``problem`` names what is wrong (the file, key, library or symbol); ``fix`` says
    what to do about it. Entry points print both and exit non-zero, without a traceback.
    """

    def __init__(self, problem: str, fix: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix

    def __str__(self) -> str:
        if self.fix:
            return f"{self.problem}\n  fix: {self.fix}"
        return self.problem


def report_user_error(err: TvmFfiWheelError) -> None:
    print(f"tvmffi-wheel: error: {err}", file=sys.stderr, flush=True)


def report_internal_error(err: BaseException) -> None:
    print(
        f"tvmffi-wheel: internal error ({type(err).__name__}: {err}). This is a bug in "
        "tvmffi-wheel, not in your project; please report it on tvmffi-wheel's issue tracker "
        "with the traceback below, the command you ran and `tvmffi-wheel --version`.",
        file=sys.stderr,
        flush=True,
    )


def info(message: str) -> None:
    """One line of build-log output, marked so users can tell our steps from CMake's."""
    print(f"tvmffi-wheel: {message}", file=sys.stderr, flush=True)
