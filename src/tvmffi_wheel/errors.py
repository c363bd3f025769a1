"""The one error type for problems a user can fix, how every entry point ends, and warnings."""

from __future__ import annotations

import contextlib
import contextvars
import errno
import sys
from collections.abc import Iterator


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


# What the machine, not the project or tvmffi-wheel, got wrong: each with its fix.
_ENVIRONMENT_ERRORS = {
    errno.ENOSPC: "free space on that disk (or point TMPDIR at a larger one), then build again",
    errno.EDQUOT: "free space within your disk quota, then build again",
    errno.EACCES: "make the folder writable for this user, or build somewhere else",
    errno.EPERM: "make the folder writable for this user, or build somewhere else",
    errno.EROFS: "build on a writable file system",
    errno.EMFILE: "raise the limit of open files (ulimit -n), then build again",
}


def environment_problem(err: OSError) -> TvmFfiWheelError | None:
    """The user's message for an error of the machine (a full disk, a folder not writable);
    None for any other OSError, which is ours to explain."""
    fix = _ENVIRONMENT_ERRORS.get(err.errno or 0)
    if fix is None:
        return None
    where = f": {err.filename}" if err.filename else ""
    return TvmFfiWheelError(f"{err.strerror or err}{where}", fix)


@contextlib.contextmanager
def reporting() -> Iterator[None]:
    """How every entry point ends: a mistake of the user's or of the machine in one message
    and exit status 1, Ctrl-C quietly with 130, anything else as our bug, with its traceback."""
    try:
        yield
    except TvmFfiWheelError as err:
        report_user_error(err)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        print("tvmffi-wheel: interrupted", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    except OSError as err:
        problem = environment_problem(err)
        if problem is None:
            report_internal_error(err)
            raise
        report_user_error(problem)
        raise SystemExit(1) from None
    except Exception as err:
        report_internal_error(err)
        raise


def info(message: str) -> None:
    """One line of build-log output, marked so users can tell our steps from CMake's."""
    print(f"tvmffi-wheel: {message}", file=sys.stderr, flush=True)


_collected: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("warnings", default=None)


def warn(message: str) -> None:
    """A warning: printed with the build log, and kept for the wheel's build facts, since
    pip shows a backend's output only with -v (`check` shows what a wheel recorded)."""
    info(f"warning: {message}")
    collected = _collected.get()
    if collected is not None and message not in collected:
        collected.append(message)


def warnings_so_far() -> tuple[str, ...]:
    """What `warn` has said inside the current `collecting_warnings` block."""
    return tuple(_collected.get() or ())


@contextlib.contextmanager
def collecting_warnings() -> Iterator[list[str]]:
    """Every `warn` inside the block, in order, once each."""
    collected: list[str] = []
    token = _collected.set(collected)
    try:
        yield collected
    finally:
        _collected.reset(token)
