"""The zig that builds run: a copy kept at one path per release, outside any build environment.

zig caches what it builds for a target (libc++, libunwind, the C runtime: about 45 s on two
cores) under ~/.cache/zig, keyed on the path zig runs from; an isolated build environment
has a new path every time, so each build would pay it again. The backend therefore runs zig
from a copy kept at one path per ziglang release (hard links where the file system allows),
`~/.cache/tvmffi-wheel/zig/<release>-<size>`. Once that copy exists, isolated builds do not
ask for ziglang at all (kept_zig): pip unpacking it into each build environment (101 MB,
411 MB unpacked) was most of what a warm zig build cost over a gcc one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import InvalidVersion, Version

from tvmffi_wheel.compiling.compiler_cache import cache_home
from tvmffi_wheel.errors import TvmFfiWheelError

# Tested with 0.17; zig's command line changes between minor releases.
ZIG_REQUIREMENT = "ziglang>=0.17,<0.18"


def kept_zig(environ: Mapping[str, str]) -> Path | None:
    """The newest copy of zig that an earlier build kept (stable_zig) and ZIG_REQUIREMENT
    admits: an isolated build that finds one needs no ziglang, which pip would otherwise
    unpack into every build environment (101 MB, 411 MB unpacked; 7 s of a warm build)."""
    admitted = Requirement(ZIG_REQUIREMENT).specifier
    kept: list[tuple[Version, Path]] = []
    with contextlib.suppress(OSError):
        for folder in (cache_home(environ) / "zig").iterdir():
            release = folder.name.rpartition("-")[0]  # <release>-<size>: see stable_zig
            try:
                version = Version(release)
            except InvalidVersion:
                continue  # a partial copy (".<version>-...") or something else
            if version in admitted and (folder / "zig").is_file():
                kept.append((version, folder / "zig"))
    return max(kept)[1] if kept else None


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def stable_zig(zig: Path, environ: Mapping[str, str]) -> Path:
    """``zig`` run from one path per zig release, so that zig's own cache hits across isolated
    builds (see the module's docstring)."""
    try:
        release = subprocess.run([str(zig), "version"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as err:
        raise TvmFfiWheelError(f"{zig} does not run ({err})", "reinstall ziglang") from None
    version = f"{release}-{zig.stat().st_size}"  # the size tells two builds of one release apart
    base = cache_home(environ) / "zig"
    stable = base / version
    if (stable / "zig").is_file():
        return stable / "zig"
    base.mkdir(parents=True, exist_ok=True)
    # Copied under a temporary name and renamed: a concurrent build sees a complete copy or none.
    partial = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=base))
    try:
        shutil.copytree(zig.parent, partial, copy_function=_link_or_copy, dirs_exist_ok=True)
        os.rename(partial, stable)
    except OSError:
        if not (stable / "zig").is_file():  # not lost to a concurrent build that got there first
            raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return stable / "zig"
