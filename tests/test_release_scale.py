"""A wheel shaped like a large kernel release (benchmarks/release_wheel.py, smaller here):
every member read once, on every core, with the facts of reading each binary alone; a
report and a log that say each thing once."""

from __future__ import annotations

import collections
import subprocess
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, only_wheel, run
from tvmffi_wheel.commands.check import judge_wheel, read_wheel, render_text
from tvmffi_wheel.inspecting import wheel as inspecting_wheel
from tvmffi_wheel.inspecting.elf import read_elf_facts
from tvmffi_wheel.inspecting.wheel_reader import WheelArchive

LIBRARIES = 60


def release_wheel(backend_venv, out: Path, *options: str) -> Path:
    """The benchmark's generator, run where apache-tvm-ffi is installed (its libraries link to libtvm_ffi)."""
    run([backend_venv.python, REPO / "benchmarks" / "release_wheel.py", out, "--libraries", str(LIBRARIES),
         "--megabytes", "0.25", *options], env=backend_venv.env)
    return only_wheel(out)


@pytest.fixture(scope="module")
def release(tmp_path_factory, backend_venv) -> Path:
    return release_wheel(backend_venv, tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def release_without_run_paths(tmp_path_factory, backend_venv) -> Path:
    return release_wheel(backend_venv, tmp_path_factory.mktemp("release-plain"), "--no-run-path")


def test_check_reads_every_member_once_and_says_each_thing_once(release, monkeypatch):
    streamed: collections.Counter[str] = collections.Counter()
    original = WheelArchive.stream

    def counting(self, info, **kwargs):
        streamed[info.filename] += 1
        return original(self, info, **kwargs)

    monkeypatch.setattr(WheelArchive, "stream", counting)
    contents = read_wheel(release)
    with zipfile.ZipFile(release) as archive:
        members = [n for n in archive.namelist() if not n.endswith("/RECORD")]
    assert dict(streamed) == dict.fromkeys(members, 1)
    assert len(contents.binaries) == LIBRARIES
    text = render_text(judge_wheel(contents, (), frozenset()))
    assert f"  {LIBRARIES} libraries like manykern/k0/libk0.so:\n    needs     libtvm_ffi.so  tvm-ffi\n" in text
    assert len(text.splitlines()) < 20, text


def test_facts_read_on_every_core_equal_those_of_each_binary_read_alone(release, tmp_path, monkeypatch):
    together = {b.path: b.facts for b in read_wheel(release).binaries}
    monkeypatch.setattr(inspecting_wheel, "usable_cores", lambda: 1)
    assert {b.path: b.facts for b in read_wheel(release).binaries} == together
    with zipfile.ZipFile(release) as archive:
        for name in together:
            alone = tmp_path / name.replace("/", "_")
            alone.write_bytes(archive.read(name))
            assert read_elf_facts(alone, name) == together[name], name


def test_repair_patches_every_library_logs_it_once_and_check_groups_the_problem(
        command, release_without_run_paths, tmp_path):
    before = command("check", release_without_run_paths, ok=False).stdout
    problems = [line for line in before.splitlines() if line.startswith("  problem:")]
    assert any(f"and {LIBRARIES - 1} more alike, e.g. manykern/k1/libk1.so" in line for line in problems), before
    assert len(problems) <= 3, before
    result = command("repair", "-w", tmp_path / "out", release_without_run_paths)
    log = result.stdout
    run_path_lines = [line for line in log.splitlines() if "run path of" in line]
    assert run_path_lines == [f"tvmffi-wheel: run path of {LIBRARIES} binaries like manykern/k0/libk0.so set to "
                              "$ORIGIN/../../tvm_ffi/lib"], log
    repaired = only_wheel(tmp_path / "out")
    with zipfile.ZipFile(repaired) as archive:  # judged by readelf, not by our reader
        for index in (0, LIBRARIES // 2, LIBRARIES - 1):
            library = tmp_path / f"libk{index}.so"
            library.write_bytes(archive.read(f"manykern/k{index}/libk{index}.so"))
            dynamic = subprocess.run(["readelf", "-d", library], capture_output=True, text=True, check=True).stdout
            assert "[$ORIGIN/../../tvm_ffi/lib]" in dynamic and f"[libk{index}.so]" in dynamic
    assert command("check", repaired).returncode == 0
