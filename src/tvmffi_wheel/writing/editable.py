"""Editable installs: copies of the compiled libraries next to the package sources.

scikit-build-core's redirect mode imports a package's Python files from the source tree
and installs its compiled files into site-packages, so a loader that looks next to
`__file__` finds nothing. As setuptools' `develop` always did, every editable build
therefore copies the editable wheel's compiled libraries next to the sources, at the
place they have inside the package, and its vendored `<name>.libs` beside the package
folder, so that the `$ORIGIN` run paths between them hold in the source tree too.
(A symbolic link would not do: the loader takes `$ORIGIN` from the path a library was
opened by, not from where the link points.)

The copies are listed in MANIFEST in the project folder, so the next editable build
refreshes them and removes those no longer built; git's `info/exclude` lists them so
`git status` stays clean, and the backend excludes them from sdists and wheels.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

from tvmffi_wheel.deciding.classify import libs_folder
from tvmffi_wheel.errors import TvmFfiWheelError, info
from tvmffi_wheel.inspecting.elf import is_elf_header
from tvmffi_wheel.inspecting.wheel_reader import WheelArchive

MANIFEST = ".tvmffi-wheel-editable"
_MANIFEST_HEADER = (
    "# Compiled libraries that tvmffi-wheel's editable builds copied next to the sources.\n"
    "# The next editable build rewrites this list; see the README, 'Editable installs'.\n"
)


def _package_root(wheel_folder: str, source_folder: str) -> PurePosixPath:
    """The source folder that plays site-packages for a package: its source folder less
    as many levels as the package is deep in the wheel."""
    root = PurePosixPath(source_folder)
    for _ in PurePosixPath(wheel_folder).parts:
        root = root.parent
    return root


def planned_copies(members: Iterable[str], packages: Mapping[str, str], distribution: str) -> dict[str, str]:
    """Wheel member -> project-relative path of its copy, for members inside a package
    served from the source tree and for vendored libraries."""
    by_depth = sorted(packages.items(), key=lambda item: -len(PurePosixPath(item[0]).parts))
    roots = sorted({str(_package_root(folder, source)) for folder, source in packages.items()})
    vendored = libs_folder(distribution) + "/"
    copies: dict[str, str] = {}
    for member in members:
        if member.startswith(vendored):
            for root in roots:
                copies.setdefault(member, posixpath.normpath(posixpath.join(root, member)))
            continue
        for folder, source in by_depth:
            if member.startswith(folder.rstrip("/") + "/"):
                copies[member] = posixpath.normpath(posixpath.join(source, member[len(folder) + 1 :]))
                break
    return copies


def _binary_members(archive: WheelArchive) -> list[str]:
    found = []
    for member in archive.members:
        if member.is_dir():
            continue
        with archive.open_member(member) as stream:
            if is_elf_header(stream.read(4)):
                found.append(member.filename)
    return found


def _write_atomically(archive: WheelArchive, member: str, target: Path) -> None:
    """A new file under the final name: a process that has the old one loaded keeps it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(descriptor, "wb") as sink, archive.open_member(archive.info(member)) as source:
            shutil.copyfileobj(source, sink, 1 << 20)
        os.chmod(temporary, 0o755)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_manifest(project: Path) -> list[str]:
    """The project-relative paths the last editable build copied ([] if none)."""
    try:
        text = (project / MANIFEST).read_text("utf-8")
    except FileNotFoundError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _remove_stale(project: Path, stale: Iterable[str]) -> None:
    for relative in stale:
        path = project / relative
        with contextlib.suppress(OSError):
            with path.open("rb") as stream:  # only what we wrote: a library, never a source file
                if not is_elf_header(stream.read(4)):
                    continue
            path.unlink()
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # only if now empty


def place_beside_sources(
    wheel: Path, project: Path, packages: Mapping[str, str], distribution: str
) -> list[str]:
    """Copy the compiled libraries of an editable wheel next to the package sources.

    Returns the project-relative paths written; the manifest and git's exclude list are
    updated, and copies an earlier build wrote that this one no longer has are removed.
    """
    with WheelArchive(wheel) as archive:
        copies = planned_copies(_binary_members(archive), packages, distribution)
        for member, relative in copies.items():
            try:
                _write_atomically(archive, member, project / relative)
            except OSError as err:
                raise TvmFfiWheelError(
                    f"cannot copy {member} next to the sources, to {relative} ({err.strerror})",
                    "make the package's source folder writable; editable installs put the compiled "
                    "libraries there",
                ) from None
    written = sorted(set(copies.values()))
    _remove_stale(project, set(read_manifest(project)) - set(written))
    if written:
        (project / MANIFEST).write_text(_MANIFEST_HEADER + "".join(f"{p}\n" for p in written), "utf-8")
        info(f"editable: copied {len(written)} compiled file(s) next to the sources, listed in {MANIFEST}")
    else:
        with contextlib.suppress(FileNotFoundError):
            (project / MANIFEST).unlink()
    _update_git_exclude(project, [MANIFEST, *written] if written else [])
    return written


def excluded_from_distributions(project: Path) -> list[str]:
    """sdist.exclude patterns for the copies and the manifest: never shipped."""
    listed = read_manifest(project)
    return [f"/{relative}" for relative in [MANIFEST, *listed]] if listed else []


def _git(project: Path, *arguments: str) -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(project), *arguments], capture_output=True, text=True, check=False
        )
    except OSError:
        return None  # no git: nothing to keep clean
    return result.stdout.strip() if result.returncode == 0 else None


def _update_git_exclude(project: Path, relatives: list[str]) -> None:
    """List the copies in git's info/exclude, the repository's own untracked ignore list."""
    top = _git(project, "rev-parse", "--show-toplevel")
    exclude = _git(project, "rev-parse", "--git-path", "info/exclude")
    if top is None or exclude is None:
        return
    exclude_path = Path(exclude) if Path(exclude).is_absolute() else project / exclude
    prefix = project.resolve().relative_to(Path(top).resolve()).as_posix()
    begin = f"# >>> tvmffi-wheel editable copies in /{prefix if prefix != '.' else ''}"
    end = "# <<< tvmffi-wheel"
    try:
        lines = exclude_path.read_text("utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    if begin in lines:
        start = lines.index(begin)
        stop = lines.index(end, start) if end in lines[start:] else start
        del lines[start : stop + 1]
    if relatives:
        anchored = [f"/{posixpath.normpath(posixpath.join(prefix, r))}" for r in relatives]
        lines += [begin, *anchored, end]
    exclude_path.parent.mkdir(parents=True, exist_ok=True)
    exclude_path.write_text("\n".join(lines) + "\n", "utf-8")
