"""One path for the sources in every build on this machine, so a compiler cache hits.

pip and `python -m build` (which builds from the sdist, unpacked into a new temporary
folder) and a second checkout each put the sources at a new path, and so does every
isolated build environment for tvm-ffi's headers; CMake hands the compilers absolute paths.
Some of them reach the arguments, which a cache hashes as they are: nvcc passes the
source's path to cudafe++ and cicc twice, as given (`--orig_src_file_name`) and resolved
(`--orig_src_path_name`), and the backend's `-ffile-prefix-map` names the project and the
build environment. Every compile was then a miss, or a hit that kept the first build's
paths in `__FILE__` strings.

So CMake compiles mirrors of the project and of the tvm_ffi package, in a slot
`<cache folder>/sources/<n>`: their folders are made anew and their files hard-linked, not
symbolically linked, since compilers resolve symbolic links (nvcc for the source's
`--orig_src_path_name`, GCC for headers found through -isystem). Where a hard link cannot
be made (another file system), the file is copied, up to COPY_LIMIT in all; `.git` is a
symbolic link. Each build compiles the same paths, and the prefix maps map them out of the
binaries. `<n>` is the first slot no other build holds (a lock on `<n>.lock`), so builds
running at the same time each get their own. Where no mirror can be made (Windows, no
links, too much to copy), the build uses the original paths.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

from tvmffi_wheel.errors import info

_SLOTS = 16  # builds of this machine at the same time that can share the cache's paths
COPY_LIMIT = 256 << 20  # bytes copied where hard links fail, beyond which the build keeps its paths
_LINKED_WHOLE = (".git", ".hg", ".svn")  # version control folders: linked, not walked


@dataclasses.dataclass(frozen=True)
class Mirrors:
    project: Path
    site_packages: Path  # holds only the tvm_ffi mirror: CMake's prefix, and on Python's path


@contextlib.contextmanager
def mirrors_for_build(project: Path, tvm_ffi_prefix: Path, cache_folder: Path) -> Iterator[Mirrors | None]:
    """The project and the tvm_ffi package (from the site-packages ``tvm_ffi_prefix``) mirrored."""
    trees = {"project": project, "site-packages/tvm_ffi": tvm_ffi_prefix / "tvm_ffi"}
    with mirrored(trees, cache_folder) as made:
        yield None if made is None else Mirrors(made["project"], made["site-packages/tvm_ffi"].parent)


@contextlib.contextmanager
def mirrored(trees: Mapping[str, Path], cache_folder: Path) -> Iterator[dict[str, Path] | None]:
    """Each of ``trees`` (a relative path in the slot -> the folder to mirror there) mirrored
    into one slot while the build runs: where each mirror is; None where none can be made."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield None
        return
    folder = cache_folder / "sources"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        yield None
        return
    for slot in range(_SLOTS):
        try:
            lock = os.open(folder / f"{slot}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            break
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another build holds this slot
            os.close(lock)
            continue
        try:
            mirrors = {name: folder / str(slot) / name for name in trees}
            _clear(folder / str(slot))
            for name, original in trees.items():
                mirrors[name].parent.mkdir(parents=True, exist_ok=True)
                _mirror(original, mirrors[name], folder.resolve())
        except OSError as err:
            os.close(lock)
            info(f"the compiler cache sees this build's own paths ({err}): it hits only for builds from this folder")
            break
        try:
            yield mirrors
        finally:
            os.close(lock)  # releases the lock; the next build in this slot clears the mirrors
        return
    yield None


def _clear(mirror: Path) -> None:
    if mirror.is_symlink() or mirror.is_file():
        mirror.unlink()
    elif mirror.exists():
        shutil.rmtree(mirror)  # links only: the originals are not touched


class _TooMuchToCopy(OSError):
    pass


def _mirror(original: Path, mirror: Path, mirrors_folder: Path) -> None:
    copied = 0
    for root_text, folders, files in os.walk(original):
        root = Path(root_text)
        target = mirror / root.relative_to(original)
        target.mkdir()
        for name in list(folders):
            if root / name == mirrors_folder:  # a cache folder inside the project: not mirrored into itself
                folders.remove(name)
            elif name in _LINKED_WHOLE or (root / name).is_symlink():
                (target / name).symlink_to(root / name, target_is_directory=True)
                folders.remove(name)
        for name in files:
            if (root / name).is_symlink():  # where it leads is resolved anyway
                (target / name).symlink_to(root / name)
                continue
            try:
                os.link(root / name, target / name)
            except OSError:
                copied += (root / name).stat().st_size
                if copied > COPY_LIMIT:
                    raise _TooMuchToCopy(f"more than {COPY_LIMIT >> 20} MiB to copy") from None
                shutil.copy2(root / name, target / name)
