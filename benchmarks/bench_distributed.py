"""CUDA compiles through sccache-dist against the same build compiled here, alternately.

Starts a scheduler and build servers on the loopback (tests/sccache_cluster.py: root and
bubblewrap), then builds bench_cuda.py's generated CUDA project in isolated `pip wheel`
builds with `cache = "sccache"` and an empty cache each time (so every compile misses):
locally, and with SCCACHE_CONF naming the scheduler. On one machine the build servers share
its cores, so this measures what distribution costs, not what it gains; it prints the jobs
that went out, from which the gain on N machines can be reckoned. The libraries of the two
kinds of build are compared byte for byte (SOURCE_DATE_EPOCH fixed).

    python benchmarks/bench_distributed.py [--rounds 2] [--kernels 24] [--servers 2]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from _common import REPO, backend_wheel, isolated_build, machine, median
from bench_cuda import ARCHITECTURES, write_project

sys.path.insert(0, str(REPO / "tests"))
import sccache_cluster  # the tests' cluster, started the same way

STATS_LINE = re.compile(r"sccache: \d+ compile requests.*")
REMOTE = re.compile(r"(\d+) compiled on build servers, (\d+) ran here")
LIBRARY = "bench_kernels/libbench_kernels.so"


def library(out: Path) -> bytes:
    with zipfile.ZipFile(next(out.glob("*.whl"))) as wheel:
        return wheel.read(LIBRARY)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--kernels", type=int, default=24, help="kernel instantiations (default 24)")
    parser.add_argument("--servers", type=int, default=2)
    args = parser.parse_args()
    why_not = sccache_cluster.why_no_cluster()
    if why_not is not None:
        sys.exit(f"bench_distributed needs a loopback cluster: {why_not}")
    if shutil.which("nvcc") is None:
        sys.exit("bench_distributed needs nvcc on PATH")
    print(f"machine: {machine()}; build servers on the loopback: {args.servers}")
    print(f"project: {args.kernels} kernel instantiations in one .cu file, architectures {ARCHITECTURES}")
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp_text:
        tmp = Path(tmp_text)
        project = write_project(tmp / "project", args.kernels)
        env = dict(os.environ, PIP_FIND_LINKS=str(backend_wheel(tmp / "backend")), PIP_DISABLE_PIP_VERSION_CHECK="1",
                   SOURCE_DATE_EPOCH="1700000000")
        env.pop("SCCACHE_CONF", None)
        out = tmp / "dist"
        with sccache_cluster.cluster(tmp / "cluster", servers=args.servers) as cluster:
            distributed_env = dict(env, SCCACHE_CONF=str(cluster.client_config))
            # The first distributed build packages the toolchain for the servers (once per machine,
            # kept in the client's cache_dir); pip's downloads are warmed too. Neither is counted.
            isolated_build(project, out, dict(distributed_env, SCCACHE_DIR=str(tmp / "warm")),
                           "-C", "tvmffi-wheel.cache=sccache")
            local: list[float] = []
            distributed: list[float] = []
            libraries: set[bytes] = set()
            remote_compiles = 0
            for round_ in range(args.rounds):
                for kind, kind_env, times in (("local", env, local), ("distributed", distributed_env, distributed)):
                    jobs_before = cluster.jobs()
                    cache = str(tmp / f"{kind}-{round_}")
                    seconds, output = isolated_build(project, out, dict(kind_env, SCCACHE_DIR=cache),
                                                     "-C", "tvmffi-wheel.cache=sccache")
                    times.append(seconds)
                    libraries.add(library(out))
                    stats = STATS_LINE.search(output)
                    print(f"  round {round_ + 1}: {kind:<11} {seconds:6.1f} s; "
                          f"scheduler jobs {cluster.jobs() - jobs_before}; "
                          f"{stats.group(0) if stats else 'no sccache statistics'}")
                    if kind == "distributed" and (remote := REMOTE.search(output)) is not None:
                        remote_compiles = int(remote.group(1))
        ratio = median(distributed) / median(local)
        print(f"local {median(local):.1f} s, distributed {median(distributed):.1f} s: {ratio:.2f}x; "
              f"{remote_compiles} compiles went to the build servers; "
              f"the same library from every build: {len(libraries) == 1}")


if __name__ == "__main__":
    main()
