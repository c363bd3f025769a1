"""Run-path arithmetic: where members install, and `$ORIGIN` entries between folders.

Every path here is relative to site-packages, the root an installed wheel's files land in.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from tvmffi_wheel.errors import TvmFfiWheelError


def install_path(member: str) -> str | None:
    """Where an archive member lands, relative to site-packages (None: outside it)."""
    parts = member.split("/")
    if parts[0].endswith(".data"):
        if len(parts) > 2 and parts[1] in ("purelib", "platlib"):
            return "/".join(parts[2:])
        return None
    return member


def origin_entry(file_install_path: str, target_dir: str, origin: str = "$ORIGIN") -> str:
    """The run path entry from a file to a folder, relative to ``origin`` (`$ORIGIN` on
    Linux, `@loader_path` on macOS)."""
    relative = posixpath.relpath(target_dir, posixpath.dirname(file_install_path) or ".")
    return origin if relative == "." else f"{origin}/{relative}"


def origin_target(entry: str, file_install_path: str) -> str | None:
    """The folder an `$ORIGIN` (`@loader_path`) entry points to; None if the entry is not relative."""
    for token in ("${ORIGIN}", "$ORIGIN", "@loader_path"):
        if entry == token or entry.startswith(token + "/"):
            rest = entry[len(token) :].lstrip("/")
            base = posixpath.dirname(file_install_path)
            return posixpath.normpath(posixpath.join(base, rest)) if rest or base else "."
    return None


def reached_folders(member: str, run_paths: Sequence[str]) -> set[str | None]:
    """The folders a member's run path reaches once installed."""
    location = install_path(member) or ""
    return {origin_target(entry, location) for entry in run_paths}


def planned_run_path(
    binary_path: str, current: Sequence[str], wanted_dirs: Sequence[str], origin: str = "$ORIGIN"
) -> tuple[str, ...]:
    """Keep the relative entries, drop absolute ones (a build tree), add what is missing."""
    location = install_path(binary_path)
    if location is None:
        if wanted_dirs:
            raise TvmFfiWheelError(
                f"{binary_path} is installed outside site-packages, so it cannot be given a "
                f"run path to {', '.join(wanted_dirs)}",
                "install the library into your package folder instead of a .data folder",
            )
        return tuple(e for e in current if origin_target(e, "") is not None)
    kept = [entry for entry in current if origin_target(entry, location) is not None]
    reached = {origin_target(entry, location) for entry in kept}
    for directory in wanted_dirs:
        if posixpath.normpath(directory) not in reached:
            kept.append(origin_entry(location, directory, origin))
            reached.add(posixpath.normpath(directory))
    return tuple(dict.fromkeys(kept))
