"""A compiler cache for the build: sccache or ccache as CMake's compiler launcher.

An isolated build gets a new build environment every time, and its path appears in the
compile commands (the tvm-ffi headers' -I, our -ffile-prefix-map), which would make every
compile a cache miss. sccache strips base directories from paths before hashing them
(SCCACHE_BASEDIRS, read when its server starts), so each build runs a server of its own,
on a socket of its own, with the build environment and the project as base directories;
it is stopped, and its statistics logged, when the build ends. sccache 0.16 strips base
directories from the preprocessed source but not from the compiler's arguments, so the
project and tvm_ffi are compiled from mirrors at paths that every build shares
(stable_source.py). Where no mirror is made (an editable build, a persistent build-dir),
the backend leaves out its -ffile-prefix-map for the build environment under sccache,
whose path would make every argument list new (build.py): those cached objects keep, in
the `__FILE__` strings of tvm-ffi's headers, the path of the build that compiled them. ccache has one base
directory only, which cannot cover a build environment that moves, so with ccache isolated
builds hit the cache only where paths repeat (with --no-build-isolation).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tvmffi_wheel.common.modes import CompilerCache
from tvmffi_wheel.compiling.settings import CacheSettings
from tvmffi_wheel.errors import TvmFfiWheelError, info

SCCACHE_REQUIREMENT = "sccache>=0.16"
LANGUAGES = ("C", "CXX", "CUDA")


@dataclasses.dataclass(frozen=True)
class CachePlan:
    tool: CompilerCache
    executable: str
    defines: dict[str, str]  # CMAKE_<LANG>_COMPILER_LAUNCHER the user did not set
    environment: dict[str, str]  # set while CMake runs


def build_requirements(settings: CacheSettings) -> list[str]:
    return [SCCACHE_REQUIREMENT] if settings.tool == "sccache" else []


def cache_home(environ: Mapping[str, str]) -> Path:
    """Where builds keep what outlives them (sccache's objects, zig, the link wrappers):
    outside any build environment, so isolated builds share it."""
    return Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tvmffi-wheel"


def default_sccache_dir(environ: Mapping[str, str]) -> Path:
    return cache_home(environ) / "sccache"


def _find(tool: str, environ: Mapping[str, str]) -> str | None:
    # PyPI's sccache installs beside the interpreter, which need not be on PATH.
    return shutil.which(tool, path=environ.get("PATH")) or shutil.which(tool, path=str(Path(sys.executable).parent))


def plan_cache(
    settings: CacheSettings,
    *,
    environ: Mapping[str, str],
    user_defines: Mapping[str, str],
    base_dirs: Sequence[Path],
    server_socket: Path,
) -> CachePlan | None:
    """The launcher and environment for the cache the settings name; None for "none"."""
    cache = settings.tool
    if cache == "none":
        return None
    executable = _find(cache, environ)
    if executable is None:
        fix = ("build with build isolation, which installs sccache from PyPI, or `pip install sccache`"
               if cache == "sccache" else "install ccache (e.g. `apt-get install ccache`), or set cache = \"sccache\"")
        raise TvmFfiWheelError(f"cache = {cache!r}, but there is no {cache} executable on PATH", fix)
    defines = {
        f"CMAKE_{language}_COMPILER_LAUNCHER": executable
        for language in LANGUAGES
        if f"CMAKE_{language}_COMPILER_LAUNCHER" not in user_defines
        and f"CMAKE_{language}_COMPILER_LAUNCHER" not in environ
    }
    if cache == "ccache":
        return CachePlan(cache, executable, defines, {})
    own = [str(d) for d in base_dirs]
    theirs = [d for d in environ.get("SCCACHE_BASEDIRS", "").split(os.pathsep) if d]
    environment = {
        "SCCACHE_DIR": environ.get("SCCACHE_DIR") or str(default_sccache_dir(environ)),
        "SCCACHE_BASEDIRS": os.pathsep.join(dict.fromkeys([*theirs, *own])),
        "SCCACHE_SERVER_UDS": str(server_socket),
        "SCCACHE_IDLE_TIMEOUT": "3600",  # a server our process could not stop ends by itself
    }
    return CachePlan(cache, executable, defines, environment)


@contextlib.contextmanager
def server_socket() -> Iterator[Path]:
    """A path for a private sccache server's socket, in a folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="tvmffi-wheel-sccache-") as folder:
        yield Path(folder) / "server.sock"


def _sccache(plan: CachePlan, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [plan.executable, *arguments], env={**os.environ, **plan.environment},
        capture_output=True, text=True, check=False,  # stderr apart: SCCACHE_LOG writes there
    )


_SERVER_START_SECONDS = 60.0


def _check_cache_dir(plan: CachePlan) -> None:
    folder = Path(plan.environment["SCCACHE_DIR"])
    if folder.exists() and not folder.is_dir():
        raise TvmFfiWheelError(
            f"SCCACHE_DIR is {folder}, which is a file, not a folder",
            "point SCCACHE_DIR at a folder (sccache creates it), or unset it for ~/.cache/tvmffi-wheel/sccache",
        )


def _start_failure(plan: CachePlan, output: str) -> TvmFfiWheelError:
    """sccache's reason, in our words: its first line, and which storage it could not use."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    reason = next((line for line in lines if "error" in line.lower()), lines[0] if lines else "no output")
    service = re.search(r"service:\s*(\w+)", output)
    storage = f" ({service.group(1)} storage)" if service else ""
    return TvmFfiWheelError(
        f"sccache could not start its server{storage}: {re.sub(r'^(sccache: )?(error: )?', '', reason)[:300]}",
        "check SCCACHE_DIR and sccache's remote storage settings (SCCACHE_REDIS_ENDPOINT, SCCACHE_BUCKET, ...), "
        'or build without a compiler cache: cache = "none"',
    )


@contextlib.contextmanager
def _server(plan: CachePlan) -> Iterator[None]:
    """sccache's server as a child of this process, in the foreground: stopped on every way out,
    Ctrl-C included (a server sccache starts itself keeps running when it fails to start)."""
    _check_cache_dir(plan)
    environment = {**os.environ, **plan.environment, "SCCACHE_START_SERVER": "1", "SCCACHE_NO_DAEMON": "1"}
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen([plan.executable], env=environment, stdin=subprocess.DEVNULL,
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + _SERVER_START_SECONDS
            socket = Path(plan.environment["SCCACHE_SERVER_UDS"])
            while not socket.exists():  # the server listens once its storage answers
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise _start_failure(plan, log.read() or f"no answer in {_SERVER_START_SECONDS:.0f} s")
                time.sleep(0.05)
            yield
        finally:
            if server.poll() is None:
                _sccache(plan, "--stop-server")
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


@contextlib.contextmanager
def running(plan: CachePlan | None) -> Iterator[None]:
    """While the build runs: a private sccache server, stopped afterwards, its hits logged."""
    if plan is None or plan.tool != "sccache":
        yield
        return
    with _server(plan):
        yield
        stats = _sccache(plan, "--show-stats", "--stats-format", "json")
        info(describe_stats(stats.stdout))


def describe_stats(text: str) -> str:
    """`sccache: 4 compile requests, 10 cache hits, 0 misses (...)`, from its JSON statistics."""
    try:
        stats = json.loads(text)["stats"]
        hits = sum(stats["cache_hits"]["counts"].values())
        missed = stats["cache_misses"]["adv_counts"] or stats["cache_misses"]["counts"]
        requests = stats["compile_requests"]
    except (ValueError, KeyError, TypeError, AttributeError):
        return "sccache: no statistics"
    misses = sum(missed.values())
    detail = f" ({', '.join(f'{kind} {n}' for kind, n in sorted(missed.items()))})" if misses else ""
    return f"sccache: {requests} compile requests, {hits} cache hits, {misses} misses{detail}"
