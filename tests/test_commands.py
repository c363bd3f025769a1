"""`tvmffi-wheel repair` and `tvmffi-wheel check`, run as cibuildwheel runs them."""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import (
    PROJECTS,
    copy_project,
    deserved_platform,
    elf_members,
    only_wheel,
    pip_wheel,
    run,
    sbom_of,
    version_references,
)


def repaired(command, wheel: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    command("repair", "-w", dest, wheel)  # cibuildwheel: repair -w {dest_dir} {wheel}
    return only_wheel(dest)


def test_check_finds_what_the_plain_recipe_gets_wrong(command, plain_recipe_wheel, tmp_path):
    assert plain_recipe_wheel.name.endswith("-py3-none-linux_x86_64.whl")
    result = command("check", plain_recipe_wheel, ok=False)
    assert result.returncode == 1
    text = result.stdout
    deserved = deserved_platform(plain_recipe_wheel, tmp_path).split(".")[0]
    assert f"deserves  {deserved}" in text
    assert "tagged linux_x86_64" in text
    assert "has no run path to tvm_ffi/lib" in text
    assert "apache-tvm-ffi has no upper bound" in text
    # the documented recipe leaks standard-library symbols: reported, with the fix
    assert "exports" in text and "_ZNSt" in text and "tvmffi_wheel_configure_target" in text


def test_check_json_is_stable_and_complete(command, plain_recipe_wheel, tmp_path):
    result = command("check", "--json", plain_recipe_wheel, ok=False)
    document = json.loads(result.stdout)
    assert document["schema"] == 2
    (wheel,) = document["wheels"]
    assert wheel["sound"] is False and wheel["problems"]
    assert wheel["tag"] == "py3-none-linux_x86_64"
    assert wheel["deserved_platform"] == deserved_platform(plain_recipe_wheel, tmp_path / "elf").split(".")[0]
    assert wheel["tvm_ffi_requirement"] == "apache-tvm-ffi"
    (binary,) = wheel["binaries"]
    assert binary["path"] == "my_ffi_extension/libmy_ffi_extension.so"
    assert {"soname": "libtvm_ffi.so", "satisfied_by": "tvm-ffi"} in binary["needed"]
    assert {"soname": "libc.so.6", "satisfied_by": "system"} in binary["needed"]
    families = {f["family"]: f for f in binary["floors"]}
    (library,) = elf_members(plain_recipe_wheel, tmp_path / "floors")
    newest = max((v.split("_", 1)[1] for v in version_references(library)["libstdc++.so.6"]
                  if v.startswith("GLIBCXX_")), key=lambda v: tuple(map(int, v.split("."))))
    assert families["GLIBCXX"]["version"] == newest
    assert families["GLIBCXX"]["symbols"]
    assert all(s.endswith(f"@GLIBCXX_{newest}") for s in families["GLIBCXX"]["symbols"])
    assert binary["python_c_api"] == []
    assert any(s.startswith("_ZNSt") for s in binary["leaked_exports"])


def test_repair_fixes_the_plain_recipe_and_the_result_loads(command, plain_recipe_wheel, tmp_path, fresh_venv):
    wheel = repaired(command, plain_recipe_wheel, tmp_path / "wheelhouse")
    assert wheel.name == f"my_ffi_extension-0.1.0-py3-none-{deserved_platform(wheel, tmp_path / 'elf')}.whl"
    result = command("check", wheel)  # cibuildwheel: audit-command check {wheel}
    assert "\n  sound" in result.stdout
    environment = fresh_venv("repaired-recipe")
    environment.pip_install(wheel)
    code = (
        "import ctypes, importlib.util, pathlib\n"
        "folder = pathlib.Path(importlib.util.find_spec('my_ffi_extension').submodule_search_locations[0])\n"
        "ctypes.CDLL(str(folder / 'libmy_ffi_extension.so'))\n"
        "import my_ffi_extension; assert my_ffi_extension.add_two(1) == 3; print('ok')\n"
    )
    assert environment.run("-c", code).stdout.strip() == "ok"


@pytest.mark.parametrize("fixture", ["example_wheel", "openmp_wheel", "plain_recipe_wheel", "cpython_ext_build"])
def test_repair_is_idempotent_byte_for_byte(command, request, tmp_path, fixture):
    wheel = request.getfixturevalue(fixture)
    wheel = wheel[0] if isinstance(wheel, tuple) else wheel
    once = repaired(command, wheel, tmp_path / "once")
    twice = repaired(command, once, tmp_path / "twice")
    assert twice.name == once.name
    assert twice.read_bytes() == once.read_bytes()
    if fixture != "plain_recipe_wheel":  # our backend's wheels are already final
        assert once.read_bytes() == wheel.read_bytes()


def test_check_passes_the_backends_wheels(command, example_wheel, openmp_wheel, cpython_ext_build):
    result = command("check", example_wheel, openmp_wheel, cpython_ext_build[0])
    text = result.stdout
    assert text.count("\n  sound") == 3
    assert "libgomp-" in text and "vendored" in text
    assert "PyLong_FromLong" in text
    assert "leaks" not in text.split("openmp_kernels")[0]  # the example exports nothing extra


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("subcommand", ["check", "repair"])
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d, w: (d / "demo-1.0-py3-none-any.whl").write_text("not a zip"), "is not a readable wheel"),
        (lambda d, w: (d / w.name).write_bytes(w.read_bytes()[: len(w.read_bytes()) // 2]), "is not a readable wheel"),
        (lambda d, w: (d / "folder-1.0-py3-none-any.whl").mkdir(), "is not a file"),
        (lambda d, w: shutil.copy(w, d / "oddly_named.whl"), "is not a valid wheel file name"),
    ],
    ids=["not-a-zip", "truncated", "a-folder", "unparseable-name"],
)
def test_bad_wheels_get_one_message_and_nothing_written(command, example_wheel, tmp_path, subcommand, make, message):
    inputs = tmp_path / "in"
    inputs.mkdir()
    make(inputs, example_wheel)
    (target,) = list(inputs.iterdir())
    out = tmp_path / "out"
    out.mkdir()
    args = ["repair", "-w", out, target] if subcommand == "repair" else ["check", target]
    result = command(*args, ok=False)
    assert result.returncode == 1
    assert message in result.stdout and "Traceback" not in result.stdout
    assert list(out.iterdir()) == []


def test_repair_creates_its_output_folder_with_parents(command, example_wheel, tmp_path):
    out = tmp_path / "deeper" / "wheelhouse"
    command("repair", "-w", out, example_wheel)
    assert [p.name for p in out.iterdir()] == [example_wheel.name]


def test_repair_writes_to_wheelhouse_by_default(command, example_wheel, tmp_path):
    command("repair", example_wheel, cwd=tmp_path)
    assert [p.name for p in (tmp_path / "wheelhouse").iterdir()] == [example_wheel.name]


def test_repair_output_folder_that_is_a_file(command, example_wheel, tmp_path):
    out = tmp_path / "out"
    out.write_text("")
    result = command("repair", "-w", out, example_wheel, ok=False)
    assert f"the output folder {out} cannot be created" in result.stdout
    assert "Traceback" not in result.stdout
    assert out.read_text() == ""


def test_an_sbom_auditwheel_wrote_is_kept_beside_ours_and_ours_lists_what_it_grafted(command, build_env, tmp_path):
    """cibuildwheel's default: the backend builds with repair = skip, auditwheel grafts libgomp
    and writes its SBOM; ours, written before the graft, no longer tells the truth until our
    repair writes it anew beside auditwheel's."""
    project = copy_project(PROJECTS / "openmp", tmp_path / "openmp")
    pip_wheel(project, tmp_path / "built", build_env, "-C", "tvmffi-wheel.repair=skip")
    env = {**build_env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{build_env['PATH']}"}
    run([sys.executable, "-m", "auditwheel", "repair", "--exclude", "libtvm_ffi.so*", "-w", tmp_path / "audited",
         only_wheel(tmp_path / "built")], env=env)
    audited = only_wheel(tmp_path / "audited")
    theirs = "openmp_kernels-1.0.0.dist-info/sboms/auditwheel.cdx.json"
    with zipfile.ZipFile(audited) as archive:
        their_sbom = archive.read(theirs)
        (grafted,) = [n for n in archive.namelist() if n.startswith("openmp_kernels.libs/libgomp")]
    stale = command("check", audited, ok=False).stdout
    assert f"{grafted} is vendored, but sboms/tvmffi-wheel.cdx.json does not list it" in stale
    wheel = repaired(command, audited, tmp_path / "ours")
    with zipfile.ZipFile(wheel) as archive:
        sboms = sorted(n for n in archive.namelist() if "/sboms/" in n)
        assert archive.read(theirs) == their_sbom
    assert sboms == [theirs, "openmp_kernels-1.0.0.dist-info/sboms/tvmffi-wheel.cdx.json"]
    (gomp,) = [c for c in sbom_of(wheel)["components"] if c.get("evidence")]  # hashes checked by sbom_of
    assert gomp["name"] == "libgomp" and gomp["evidence"]["occurrences"] == [{"location": grafted}]
    assert "\n  sound" in command("check", wheel).stdout
    again = repaired(command, wheel, tmp_path / "again")
    assert again.read_bytes() == wheel.read_bytes()  # one SBOM of ours, the same bytes
