"""Compiles spread over sccache-dist's build servers (a cluster on the loopback, started
by tests/sccache_cluster.py): they run there, the log counts them, the library is the one a
local build makes, and a dead server, a scheduler that does not answer or one that refuses
the token leave the build to this machine, said in one line."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import zipfile
from pathlib import Path

import pytest

import sccache_cluster
from conftest import EXAMPLE, assert_refused, copy_project, only_wheel, pip_wheel
from tvmffi_wheel.compiling.cuda import find_nvcc

WHY_NO_CLUSTER = sccache_cluster.why_no_cluster()
needs_cluster = pytest.mark.skipif(WHY_NO_CLUSTER is not None, reason=WHY_NO_CLUSTER or "")

CUDA = ("-C", "cmake.define.EXAMPLE_KERNELS_CUDA=ON", "-C", "tvmffi-wheel.cuda.architectures=75-real;80-real;90-real",
        "-C", "tvmffi-wheel.cache=sccache")
LIBRARY = "example_kernels/lib/libexample_kernels.so"
DISTRIBUTED = re.compile(r"sccache: (\d+) compile requests, \d+ cache hits, (\d+) misses.*?, (\d+) compiled on build "
                         r"servers, (\d+) ran here")
needs_nvcc = pytest.mark.skipif(find_nvcc(os.environ) is None, reason="needs nvcc")


@pytest.fixture(scope="module")
def loopback_cluster(tmp_path_factory):
    with sccache_cluster.cluster(tmp_path_factory.mktemp("sccache-dist")) as cluster:
        yield cluster


def build(tmp_path: Path, build_env, config: Path | None, *options: str, name: str):
    """pip wheel of a fresh copy of the example with a compile cache of its own (so nothing
    hits): (the log, the library's bytes)."""
    env = {**build_env, "SCCACHE_DIR": str(tmp_path / f"{name}-cache"), "SOURCE_DATE_EPOCH": "1700000000"}
    env.pop("SCCACHE_CONF", None)
    if config is not None:
        env["SCCACHE_CONF"] = str(config)
    out = tmp_path / f"{name}-dist"
    result = pip_wheel(copy_project(EXAMPLE, tmp_path / name), out, env, *options)
    with zipfile.ZipFile(only_wheel(out)) as wheel:
        return result.stdout, wheel.read(LIBRARY)


@pytest.mark.skipif(sccache_cluster.sccache_dist() is None, reason=sccache_cluster.NO_SCCACHE_DIST)
def test_a_secret_key_that_begins_with_a_hyphen_still_gives_a_server_token():
    """sccache-dist's keys are base64url: one in 64 begins with "-", which once made the
    cluster fail to start (it was read as an option)."""
    dist = sccache_cluster.sccache_dist()
    assert dist is not None
    key = "-" + sccache_cluster.new_secret_key(dist)[1:]
    token = sccache_cluster.server_token(dist, key, "127.0.0.1:4567")

    def unpadded(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    header, claims, signature = token.split(".")
    assert json.loads(unpadded(claims))["server_id"] == "127.0.0.1:4567"
    expected = hmac.new(unpadded(key), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    assert unpadded(signature) == expected


@needs_cluster
@needs_nvcc
def test_cuda_compiles_run_on_the_build_servers_and_give_the_local_library(loopback_cluster, tmp_path, build_env):
    jobs_before = loopback_cluster.jobs()
    log, distributed = build(tmp_path, build_env, loopback_cluster.client_config, *CUDA, name="distributed")
    found = DISTRIBUTED.search(log)
    assert found, log[-3000:]
    _, misses, remote, here = map(int, found.groups())
    assert remote > 0 and remote + here == misses, found.group(0)
    assert loopback_cluster.jobs() - jobs_before >= remote  # the scheduler saw them complete
    _, local = build(tmp_path, build_env, None, *CUDA, name="local")
    assert distributed == local


@needs_cluster
@needs_nvcc
def test_a_build_server_killed_before_the_build_leaves_its_compiles_to_the_others(tmp_path, build_env):
    with sccache_cluster.cluster(tmp_path / "cluster") as cluster:
        cluster.servers[0].kill()  # the scheduler still lists it
        log, distributed = build(tmp_path, build_env, cluster.client_config, *CUDA, name="one-dead")
    found = DISTRIBUTED.search(log)
    assert found, log[-3000:]
    print(found.group(0))  # where the compiles went: the live server, or here after the dead one failed them
    _, local = build(tmp_path, build_env, None, *CUDA, name="local")
    assert distributed == local


def test_a_scheduler_that_refuses_connections_leaves_every_compile_here(tmp_path, build_env):
    config = sccache_cluster.write_client_config(tmp_path / "client.conf",
                                                 f"http://127.0.0.1:{sccache_cluster.free_port()}")
    log, _ = build(tmp_path, build_env, config, "-C", "tvmffi-wheel.cache=sccache", name="refused")
    lines = [line for line in log.splitlines() if "sccache-dist:" in line]
    assert len(lines) == 1 and "does not answer" in lines[0] and "every compile of this build runs here" in lines[0]
    assert "compiled on build servers" not in log


@needs_cluster
def test_a_token_the_scheduler_refuses_leaves_every_compile_here(loopback_cluster, tmp_path, build_env):
    config = sccache_cluster.write_client_config(tmp_path / "client.conf", loopback_cluster.scheduler_url,
                                                 token="not-the-token")
    log, _ = build(tmp_path, build_env, config, "-C", "tvmffi-wheel.cache=sccache", name="bad-token")
    lines = [line for line in log.splitlines() if "sccache-dist:" in line]
    assert len(lines) == 1 and "refused a compile" in lines[0] and "401" in lines[0], log[-3000:]
    assert "every compile of this build runs here" in lines[0]


def test_a_client_configuration_that_is_not_toml_stops_the_build_with_one_message(tmp_path, build_env):
    config = tmp_path / "client.conf"
    config.write_text('[dist\nscheduler_url = "http://127.0.0.1:10600"\n')
    out = tmp_path / "dist"
    result = pip_wheel(copy_project(EXAMPLE, tmp_path / "project"), out, {**build_env, "SCCACHE_CONF": str(config)},
                       "-C", "tvmffi-wheel.cache=sccache", ok=False)
    assert_refused(result, out, f"sccache's client configuration {config} is not TOML", "fix the file")
