"""A Debian bullseye root file system (glibc 2.31, Python 3.9), made with debootstrap from
Debian's packages, to load wheels on an older glibc than this machine's.

The root is made once and kept under ~/.cache/tvmffi-wheel-tests (it takes about a minute
and 270 MB); conftest starts making it in the background as soon as the collected tests
need it, so the download overlaps the builds. Entering it takes root (chroot, mounts);
each run is in a mount namespace of its own (`unshare`), so /proc and /dev are unmounted
with the process however it ends, and a host folder is bind-mounted at /host.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

SUITE = "bullseye"
MIRROR = "http://deb.debian.org/debian"
# python3-venv for the user's view (a venv and pip); the rest is minbase's.
PACKAGES = "python3,python3-venv"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tvmffi-wheel-tests"
ROOT = CACHE / f"debian-{SUITE}"
LOG = CACHE / f"debian-{SUITE}.log"
GLIBC = (2, 31)
PYTHON = "3.9"


def missing_requirement() -> str | None:
    """Why no root can be made or entered here (None: it can)."""
    if os.geteuid() != 0:
        return "making and entering a Debian root file system takes root (debootstrap, chroot)"
    for tool in ("unshare", "chroot", "mount"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    if not (ROOT / ".complete").is_file() and shutil.which("debootstrap") is None:
        return "needs debootstrap (Debian: apt-get install debootstrap; .ci/run installs it)"
    return None


@dataclass(frozen=True)
class Making:
    """A debootstrap under way, into ``partial``."""

    process: subprocess.Popen[bytes]
    partial: Path


def start_making() -> Making | None:
    """Start debootstrap into a temporary folder beside the root (None: the root exists)."""
    if (ROOT / ".complete").is_file():
        return None
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".debian-{SUITE}-", dir=CACHE))
    command = ["debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE, str(partial), MIRROR]
    with LOG.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Making(process, partial)


def finish_making(making: Making | None) -> str | None:
    """Wait for ``making``; move its root into place. None when the root is there, else why not."""
    if making is not None:
        process, partial = making.process, making.partial
        if process.wait() == 0:
            (partial / ".complete").write_text("made by tests/old_glibc.py\n")
            if not (ROOT / ".complete").is_file():
                shutil.rmtree(ROOT, ignore_errors=True)
                os.rename(partial, ROOT)
        shutil.rmtree(partial, ignore_errors=True)
    if (ROOT / ".complete").is_file():
        return None
    tail = LOG.read_text(errors="replace").strip().splitlines()[-3:] if LOG.is_file() else []
    return f"debootstrap {SUITE} failed (log: {LOG}): {' | '.join(tail)}"


@dataclass(frozen=True)
class DebianRoot:
    path: Path

    def run(
        self, script: str, host_folder: Path, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the shell ``script`` inside the root, with ``host_folder`` at /host, in a clean
        environment; output captured together."""
        mount_point = self.path / "host"
        mount_point.mkdir(exist_ok=True)
        environment = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/host", "LANG": "C.UTF-8", **(env or {})}
        inner = shlex.join(["chroot", str(self.path), "env", "-i",
                            *(f"{k}={v}" for k, v in environment.items()), "/bin/sh", "-c", script])
        root = shlex.quote(str(self.path))
        outer = (f"mount -t proc proc {root}/proc && mount --rbind /dev {root}/dev && "
                 f"mount --bind {shlex.quote(str(host_folder))} {root}/host && exec {inner}")
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", outer],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


# Run inside the root by load_wheels: each wheel in a process of its own, with LD_BIND_NOW=1,
# so that a symbol or version the root's glibc lacks fails the load itself.
_LOADER = r"""
import json, os, subprocess, sys
PROBE = '''
import ctypes, os, sys
for path in %r:
    ctypes.CDLL(path, os.RTLD_NOW | os.RTLD_GLOBAL)
import tvm_ffi
for kind, path in %r:
    if kind == "kernel":
        tvm_ffi.load_module(path)
    else:
        ctypes.CDLL(path, os.RTLD_NOW)
    print("loaded", path)
'''
results = {}
for site, (preload, libraries) in json.load(open(sys.argv[1])).items():
    env = dict(os.environ, PYTHONPATH=site, LD_BIND_NOW="1")
    run = subprocess.run([sys.executable, "-c", PROBE % (preload, libraries)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    results[site] = [run.returncode, run.stdout[-3000:]]
json.dump(results, open(sys.argv[2], "w"))
"""


def _cuda_runtime(wheel: Path) -> str | None:
    """The CUDA runtime the wheel's build facts record (None: no CUDA, or no facts)."""
    with zipfile.ZipFile(wheel) as archive:
        facts = [n for n in archive.namelist() if n.endswith(".dist-info/tvmffi_wheel.json")]
        cuda = json.loads(archive.read(facts[0])).get("cuda") if facts else None
    return cuda.get("runtime") if cuda else None


def unpack(wheel: Path, site: Path) -> list[tuple[str, str]]:
    """Unpack ``wheel`` into ``site`` (as pip would, for what loading needs); the libraries
    to load: (kind, path inside the root), kernel libraries through tvm_ffi.load_module."""
    libraries = []
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
        for name in archive.namelist():
            if not name.endswith(".so") or ".libs/" in name or ".data/" in name:
                continue
            kind = "kernel" if b"__tvm_ffi_" in archive.read(name) else "library"
            libraries.append((kind, name))
    return libraries


def download_dependencies(folder: Path, tvm_ffi_version: str, python: str) -> list[Path]:
    """apache-tvm-ffi ``tvm_ffi_version`` (with its dependencies) and NVIDIA's CUDA 13 runtime,
    for Python 3.9 on manylinux_2_28 x86_64: downloaded here, since the root's pip does not
    trust this machine's certificates."""
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [python, "-m", "pip", "download", "-q", "--only-binary=:all:", "--python-version", PYTHON,
         # pip takes each --platform as it is, without the older manylinux tags it implies
         *(f"--platform={tag}_x86_64" for tag in ("manylinux_2_28", "manylinux_2_17", "manylinux2014")),
         "-d", str(folder), f"apache-tvm-ffi=={tvm_ffi_version}", "nvidia-cuda-runtime>=13,<14"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    if result.returncode != 0:
        raise AssertionError(f"pip download failed:\n{result.stdout[-3000:]}")
    return sorted(folder.glob("*.whl"))


def load_wheels(
    root: DebianRoot, wheels: list[Path], dependencies: list[Path], scratch: Path
) -> dict[Path, tuple[int, str]]:
    """Load every library of each wheel in the root, with LD_BIND_NOW=1, from a site folder
    that holds the wheel and ``dependencies`` (wheels) unpacked: exit status and output per wheel."""
    scratch.mkdir(parents=True, exist_ok=True)
    shared = scratch / "dependencies"
    if not shared.is_dir():
        for dependency in dependencies:
            with zipfile.ZipFile(dependency) as archive:
                archive.extractall(shared)
    plan: dict[str, tuple[list[str], list[tuple[str, str]]]] = {}
    sites = {}
    for index, wheel in enumerate(wheels):
        site = scratch / f"site-{index}"
        shutil.rmtree(site, ignore_errors=True)
        shutil.copytree(shared, site, copy_function=os.link)
        inside = f"/host/{site.name}"
        libraries = [(kind, f"{inside}/{name}") for kind, name in unpack(wheel, site)]
        # cuda.runtime = "none": the process is to bring the runtime (PyTorch's, say); NVIDIA's does here.
        preload = [f"{inside}/{p.relative_to(site)}" for p in site.glob("nvidia/cu*/lib/libcudart.so.*")]
        plan[inside] = (preload if _cuda_runtime(wheel) == "none" else [], libraries)
        sites[inside] = wheel
    (scratch / "plan.json").write_text(json.dumps(plan))
    (scratch / "loader.py").write_text(_LOADER)
    result = root.run("python3 /host/loader.py /host/plan.json /host/results.json", scratch)
    if result.returncode != 0:
        raise AssertionError(f"the loader failed in the {SUITE} root:\n{result.stdout[-3000:]}")
    results = json.loads((scratch / "results.json").read_text())
    return {sites[site]: (status, output) for site, (status, output) in results.items()}
