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
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tvmffi_wheel.common.modes import CompilerCache
from tvmffi_wheel.compiling.settings import CacheSettings
from tvmffi_wheel.errors import TvmFfiWheelError, info, warn

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SCCACHE_REQUIREMENT = "sccache>=0.16"
LANGUAGES = ("C", "CXX", "CUDA")


@dataclasses.dataclass(frozen=True)
class Distribution:
    """sccache-dist, as sccache's own client configuration names it."""

    config_file: Path
    scheduler_url: str


@dataclasses.dataclass(frozen=True)
class CachePlan:
    tool: CompilerCache
    executable: str
    defines: dict[str, str]  # CMAKE_<LANG>_COMPILER_LAUNCHER the user did not set
    environment: dict[str, str]  # set while CMake runs
    distribution: Distribution | None = None  # compiles spread over sccache-dist's build servers


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
    return CachePlan(cache, executable, defines, environment, read_distribution(environ))


def sccache_config_file(environ: Mapping[str, str]) -> Path:
    """Where sccache reads its client configuration: SCCACHE_CONF, else its file in the
    user's configuration folder (as the `directories` crate finds it on Linux)."""
    if environ.get("SCCACHE_CONF"):
        return Path(environ["SCCACHE_CONF"])
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    return Path(environ.get("XDG_CONFIG_HOME") or home / ".config") / "sccache" / "config"


def read_distribution(environ: Mapping[str, str]) -> Distribution | None:
    """The scheduler sccache's client configuration names in its [dist] table; None for none.

    sccache itself reads the file (its server inherits SCCACHE_CONF): this reads it first so
    that a file sccache would reject, or a scheduler address that cannot work, stops the
    build with one message instead of a server that does not start."""
    path = sccache_config_file(environ)
    if not path.is_file():
        if environ.get("SCCACHE_CONF"):
            raise TvmFfiWheelError(f"SCCACHE_CONF is {path}, which is not a file",
                                   "point SCCACHE_CONF at sccache's client configuration, or unset it")
        return None
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8", errors="replace"))
    except tomllib.TOMLDecodeError as err:
        raise TvmFfiWheelError(f"sccache's client configuration {path} is not TOML ({err})",
                               "fix the file (sccache's docs/Configuration.md shows its tables), or point "
                               "SCCACHE_CONF at another") from None
    dist = config.get("dist")
    url = dist.get("scheduler_url") if isinstance(dist, dict) else None
    if url is None:
        return None
    if not _reachable_form(url):
        raise TvmFfiWheelError(f"scheduler_url = {url!r} in {path} is not an address sccache can connect to",
                               'write it as "http://HOST:PORT", e.g. "http://10.0.0.5:10600" (the port the '
                               "scheduler's public_addr names)")
    return Distribution(path, url)


def _reachable_form(url: object) -> bool:
    if not isinstance(url, str):
        return False
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    # sccache needs the port of an http:// address; https:// defaults to 443.
    return bool(parts.hostname) and (parts.scheme == "https" or (parts.scheme == "http" and port is not None))


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
    socket = Path(plan.environment["SCCACHE_SERVER_UDS"])
    socket.unlink(missing_ok=True)  # a stopped server's: the next one listens there
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen([plan.executable], env=environment, stdin=subprocess.DEVNULL,
                                  stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + _SERVER_START_SECONDS
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
    """While the build runs: a private sccache server, stopped afterwards, its hits logged.

    With sccache-dist configured, the scheduler is asked first whether it answers and takes
    this machine's token; where it does not, the build goes on with every compile here, and
    the log says why in one line."""
    if plan is None or plan.tool != "sccache":
        yield
        return
    with contextlib.ExitStack() as stack:
        stack.enter_context(_server(plan))
        if plan.distribution is not None and (reason := _distribution_problem(plan)) is not None:
            warn(f"sccache-dist: {reason}: every compile of this build runs here")
            stack.close()  # the server that would ask the scheduler for every compile
            plan = _without_distribution(plan, Path(plan.environment["SCCACHE_SERVER_UDS"]).parent)
            stack.enter_context(_server(plan))
        yield
        stats = _sccache(plan, "--show-stats", "--stats-format", "json")
        info(describe_stats(stats.stdout, distributed=plan.distribution is not None))


def _distribution_problem(plan: CachePlan) -> str | None:
    """Why the scheduler will not take this build's compiles, or None where it will."""
    assert plan.distribution is not None
    url = plan.distribution.scheduler_url
    try:
        status = json.loads(_sccache(plan, "--dist-status").stdout)
    except ValueError:
        return f"sccache could not say whether the scheduler at {url} answers"
    if "NotConnected" in status:
        return f"the scheduler at {url} does not answer ({status['NotConnected'][-1]})"
    if "SchedulerStatus" not in status:
        return f"sccache does not use the scheduler at {url} ({next(iter(status), 'no status')})"
    if not status["SchedulerStatus"][-1].get("num_servers"):
        return f"the scheduler at {url} has no build servers"
    # The status does not check the token, and a refused token fails the compile instead of
    # falling back: one small compile asks the scheduler for a job as the build would.
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    with tempfile.TemporaryDirectory(prefix="tvmffi-wheel-dist-probe-") as folder:
        source = Path(folder) / "probe.c"
        source.write_text("int tvmffi_wheel_probe(int x) { return x + 1; }\n")
        probe = subprocess.run([plan.executable, compiler, "-c", str(source), "-o", str(source.with_suffix(".o"))],
                               env={**os.environ, **plan.environment}, capture_output=True, text=True, check=False)
    _sccache(plan, "--zero-stats")
    if probe.returncode != 0:
        said = " ".join((probe.stderr or probe.stdout).split())[:200] or f"exit status {probe.returncode}"
        return f"the scheduler at {url} refused a compile ({said})"
    return None


def _without_distribution(plan: CachePlan, folder: Path) -> CachePlan:
    """The plan with sccache's client configuration less its [dist] tables (its other
    settings, the storage among them, kept), in ``folder``."""
    assert plan.distribution is not None
    kept, skipping = [], False
    for line in plan.distribution.config_file.read_text(encoding="utf-8", errors="replace").splitlines():
        header = line.strip()
        if header.startswith("["):
            name = header.strip("[]").strip()
            skipping = name == "dist" or name.startswith("dist.")
        if not skipping:
            kept.append(line)
    config = folder / "sccache-without-dist.conf"
    config.write_text("\n".join(kept) + "\n", encoding="utf-8")
    # The same socket: the compiles' sccache clients know that one.
    return dataclasses.replace(plan, environment={**plan.environment, "SCCACHE_CONF": str(config)}, distribution=None)


def describe_stats(text: str, *, distributed: bool = False) -> str:
    """`sccache: 4 compile requests, 10 cache hits, 0 misses (...)`, from its JSON statistics;
    with sccache-dist, how many compiles ran on build servers and how many here."""
    try:
        stats = json.loads(text)["stats"]
        hits = sum(stats["cache_hits"]["counts"].values())
        missed = stats["cache_misses"]["adv_counts"] or stats["cache_misses"]["counts"]
        requests = stats["compile_requests"]
        remote = sum(stats.get("dist_compiles", {}).values())
        failed = stats.get("dist_errors", 0)
    except (ValueError, KeyError, TypeError, AttributeError):
        return "sccache: no statistics"
    misses = sum(missed.values())
    detail = f" ({', '.join(f'{kind} {n}' for kind, n in sorted(missed.items()))})" if misses else ""
    line = f"sccache: {requests} compile requests, {hits} cache hits, {misses} misses{detail}"
    if distributed:
        line += f", {remote} compiled on build servers, {max(misses - remote, 0)} ran here"
        if failed:
            line += f" ({failed} after a build server failed them)"
    return line
