"""Reproducible wheels, atomic outputs under interrupts and concurrency."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from conftest import EXAMPLE, PROJECTS, copy_project, only_wheel, pip_wheel
from tvmffi_wheel.compiling.cuda import find_nvcc


@pytest.mark.parametrize("project", [EXAMPLE, PROJECTS / "openmp"], ids=["example", "openmp"])
def test_same_source_gives_byte_identical_wheels(tmp_path, build_env, project):
    env = dict(build_env, SOURCE_DATE_EPOCH="1700000000")
    wheels = []
    for place in ("first/deeper/copy", "second"):  # different source and build directories
        source = copy_project(project, tmp_path / place / project.name)
        pip_wheel(source, tmp_path / place / "dist", env)
        wheels.append(only_wheel(tmp_path / place / "dist"))
    assert wheels[0].name == wheels[1].name
    assert wheels[0].read_bytes() == wheels[1].read_bytes()
    with zipfile.ZipFile(wheels[0]) as archive:  # the SBOM is among the bytes compared
        assert any(n.endswith(".dist-info/sboms/tvmffi-wheel.cdx.json") for n in archive.namelist())


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def default_sigint() -> None:
    """For a child that a test interrupts: Ctrl-C as a user's shell has it. A suite started
    in the background by a non-interactive shell inherits SIGINT ignored, and Python keeps
    it ignored, so without this the interrupt tests depended on how the suite was started."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_interrupted_build_leaves_nothing(tmp_path, backend_venv):
    """SIGINT while the compiler runs: no wheel, no temporary file in the output folder."""
    project = copy_project(EXAMPLE, tmp_path / "example")
    # A source that takes the compiler a while: the interrupt lands mid-compilation.
    (project / "src" / "kernels.cc").write_text(
        (project / "src" / "kernels.cc").read_text()
        + "\ntemplate <int N> struct Slow { static constexpr long v = Slow<N - 1>::v + N; };\n"
        "template <> struct Slow<0> { static constexpr long v = 0; };\n"
        "long slow_value() { return Slow<900>::v; }\n"
    )
    out = tmp_path / "dist"
    out.mkdir()
    code = "import os, sys; os.chdir(sys.argv[1]); from tvmffi_wheel.build import build_wheel; build_wheel(sys.argv[2])"
    process = subprocess.Popen(
        [backend_venv.python, "-c", code, project, out], env=backend_venv.env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        preexec_fn=default_sigint,
    )
    deadline = time.monotonic() + 120
    seen = ""
    while "Building CXX object" not in seen and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen += line
    # The claim is about an interrupt during compilation: a backend that died at start-up
    # (or a build that never reached the compiler) must not pass for one.
    assert "Building CXX object" in seen, f"compilation never started:\n{seen[-3000:]}"
    assert process.poll() is None, f"the build ended before the interrupt:\n{seen[-3000:]}"
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode != 0, f"the build finished despite the interrupt:\n{output[-3000:]}"
    assert leftovers(out) == []


@pytest.mark.skipif(find_nvcc(os.environ) is None, reason="needs nvcc")
def test_interrupted_cuda_build_ends_quietly_and_leaves_no_temporary_files(tmp_path, backend_venv):
    """Ctrl-C while nvcc runs: exit status 130, one line instead of a traceback, and none of
    nvcc's tmpxft_* files left in TMPDIR."""
    project = copy_project(EXAMPLE, tmp_path / "example")
    out, tmpdir = tmp_path / "dist", tmp_path / "tmp"
    out.mkdir()
    tmpdir.mkdir()
    config = {"cmake.define.EXAMPLE_KERNELS_CUDA": "ON", "tvmffi-wheel.cuda.architectures": "75-real;90-real"}
    code = ("import os, sys; os.chdir(sys.argv[1]); from tvmffi_wheel.build import build_wheel; "
            f"build_wheel(sys.argv[2], {config!r})")
    log = tmp_path / "build.log"
    with log.open("w") as sink:  # a file, not a pipe nobody reads while the build runs
        process = subprocess.Popen(
            [backend_venv.python, "-c", code, project, out], env={**backend_venv.env, "TMPDIR": str(tmpdir)},
            stdout=sink, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=default_sigint,
        )
    # nvcc names its files after the source: these are the project's compile, not CMake's check.
    deadline = time.monotonic() + 240
    while not [n for n in nvcc_temporaries(tmpdir) if "add_one_cuda" in n] and process.poll() is None:
        assert time.monotonic() < deadline, "nvcc never compiled the project's kernel"
        time.sleep(0.01)
    assert process.poll() is None, f"the build ended before the interrupt:\n{log.read_text()[-3000:]}"
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=120)
    output = log.read_text()
    assert process.returncode == 130, output[-3000:]
    assert "tvmffi-wheel: interrupted" in output and "Traceback" not in output, output[-3000:]
    assert leftovers(out) == []
    assert nvcc_temporaries(tmpdir) == []


def nvcc_temporaries(folder: Path) -> list[str]:
    """nvcc's tmpxft_* files anywhere below ``folder``; os.walk passes over folders that a
    running build removes meanwhile."""
    return sorted(name for _, _, files in os.walk(folder) for name in files if name.startswith("tmpxft"))


def test_interrupted_repair_leaves_nothing(tmp_path, backend_venv, example_wheel):
    """SIGINT while the new wheel is being written: no wheel, no temporary file.

    The repair signals itself when it starts to finish the new wheel (its temporary file is
    there, unchanged members are being copied into it): waiting from outside for that file
    to appear raced with a repair that now takes a fraction of a second."""
    from test_bad_wheels import add, rewrite

    big = rewrite(example_wheel, tmp_path / example_wheel.name,
                  add("example_kernels/data.bin", os.urandom(48 << 20)))
    out = tmp_path / "out"
    out.mkdir()
    code = (
        "import os, signal, sys\n"
        "from tvmffi_wheel.writing.wheel_writer import WheelWriter\n"
        "finish = WheelWriter.finish\n"
        "def interrupted(self, changes):\n"
        "    assert self.temp_path is not None and self.temp_path.exists(), 'no temporary wheel yet'\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    return finish(self, changes)\n"
        "WheelWriter.finish = interrupted\n"
        "from tvmffi_wheel.commands.cli import main\n"
        "raise SystemExit(main(sys.argv[1:]))\n"
    )
    result = subprocess.run(
        [backend_venv.python, "-c", code, "repair", "-w", out, big], env=backend_venv.env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120, preexec_fn=default_sigint,
    )
    assert result.returncode == 130, result.stdout
    assert "tvmffi-wheel: interrupted" in result.stdout and "Traceback" not in result.stdout, result.stdout
    assert leftovers(out) == []


def test_concurrent_repairs_into_one_folder(tmp_path, backend_venv, example_wheel, openmp_wheel, cpython_ext_build):
    out = tmp_path / "out"
    out.mkdir()
    script = backend_venv.path / "bin" / "tvmffi-wheel"
    inputs = [example_wheel, openmp_wheel, cpython_ext_build[0], example_wheel]
    processes = [
        subprocess.Popen([script, "repair", "-w", out, wheel], env=backend_venv.env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for wheel in inputs
    ]
    for process in processes:
        assert process.wait(timeout=120) == 0, process.stdout.read()
    assert leftovers(out) == sorted({w.name for w in inputs})
    for wheel in {w.name for w in inputs}:
        subprocess.run([sys.executable, "-m", "zipfile", "-t", out / wheel], check=True,
                       stdout=subprocess.DEVNULL)
