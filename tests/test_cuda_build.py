"""CUDA wheels built with nvcc (no GPU needed): runtimes, device code, refusals."""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from pathlib import Path

import pytest

from conftest import (
    CUDA_ARCHS,
    EXAMPLE,
    PROJECTS,
    assert_independently_valid,
    assert_refused,
    copy_project,
    cuda_example,
    linked_runtimes,
    only_wheel,
    pip_wheel,
    requires_dist,
    run,
    sbom_of,
    wheel_text,
)
from tvmffi_wheel.compiling.cuda import find_nvcc
from tvmffi_wheel.inspecting.elf import read_elf_facts

pytestmark = pytest.mark.skipif(find_nvcc(os.environ) is None, reason="needs nvcc")

LIBRARY = "example_kernels/lib/libexample_kernels.so"


def library_facts(wheel: Path, tmp_path: Path):
    with zipfile.ZipFile(wheel) as archive:
        return read_elf_facts(Path(archive.extract(LIBRARY, tmp_path)), LIBRARY)


def test_static_runtime_needs_no_libcudart_and_has_the_declared_device_code(static_build, tmp_path):
    wheel, log = static_build
    facts = library_facts(wheel, tmp_path)
    assert not [n for n in facts.needed if n.startswith("libcudart")]
    assert {(i.kind, i.arch) for i in facts.device_code} == {("sass", 75), ("ptx", 90)}
    assert all(i.compressed for i in facts.device_code)  # compression is on by default
    assert f"device code of {LIBRARY}: PTX compute_90" in log
    with zipfile.ZipFile(wheel) as archive:
        assert not [n for n in archive.namelist() if "libcudart" in n or ".libs/" in n]
    recorded = json.loads(wheel_text(wheel, ".dist-info/tvmffi_wheel.json"))
    assert recorded["cuda"] == {
        "architectures": CUDA_ARCHS, "runtime": "static", "toolkit": "13.0", "toolkit_source": "system",
        "variant": "none",
    }
    assert recorded["device_code"] == ["PTX compute_90", "SASS sm_75"]
    assert recorded["tvm_ffi_version"] and recorded["platform"].startswith("manylinux_")


def test_check_reports_the_device_code(static_build, backend_venv):

    result = run([backend_venv.path / "bin" / "tvmffi-wheel", "check", static_build[0]], env=backend_venv.env)
    assert "device    PTX compute_90" in result.stdout and "SASS sm_75" in result.stdout
    assert "\n  sound" in result.stdout


def test_shared_runtime_depends_on_nvidias_wheel_and_loads_from_it(shared_build, tmp_path, fresh_venv):
    wheel, _ = shared_build
    assert "nvidia-cuda-runtime>=13.0,<14" in requires_dist(wheel)
    facts = library_facts(wheel, tmp_path)
    assert "libcudart.so.13" in facts.needed
    assert "$ORIGIN/../../nvidia/cu13/lib" in facts.run_paths
    environment = fresh_venv("cuda-shared")
    environment.pip_install(wheel)
    code = (
        "import ctypes, importlib.util, pathlib, sys\n"
        "spec = importlib.util.find_spec('example_kernels')\n"
        f"ctypes.CDLL(str(pathlib.Path(spec.submodule_search_locations[0]).parent / {LIBRARY!r}))\n"
        "assert 'tvm_ffi' not in sys.modules; print('loaded')\n"
    )
    assert environment.run("-c", code).stdout.strip() == "loaded"


def test_runtime_none_links_no_cuda_runtime(tmp_path_factory, build_env, tmp_path):
    wheel, _ = cuda_example(tmp_path_factory, build_env, "none")
    facts = library_facts(wheel, tmp_path)
    assert not [n for n in facts.needed if "cudart" in n]
    assert not [r for r in requires_dist(wheel) if r.startswith("nvidia")]


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("archs", "message"),
    [
        ("75-rael", "`75-rael` in the CUDA architectures"),
        ("native", "`native` describe this build machine's GPU"),
        ("70-real", "CUDA 13.0 cannot build sm_70"),
        ("all", "cuda.allow-all-architectures"),
    ],
)
def test_bad_architectures_stop_before_compiling(tmp_path, build_env, archs, message):
    project = copy_project(EXAMPLE, tmp_path / "example")
    result = pip_wheel(
        project, tmp_path / "dist", build_env,
        "-C", "cmake.define.EXAMPLE_KERNELS_CUDA=ON", "-C", f"tvmffi-wheel.cuda.architectures={archs}",
        ok=False,
    )
    assert_refused(result, tmp_path / "dist", message)
    assert "Building CUDA object" not in result.stdout


def test_linked_cuda_library_without_its_wheel_is_refused(tmp_path, build_env):
    project = copy_project(PROJECTS / "cudart_linked", tmp_path / "linked")
    result = pip_wheel(project, tmp_path / "dist", build_env, ok=False)
    assert_refused(
        result, tmp_path / "dist", "needs libcudart.so.13, which tvmffi-wheel never vendors",
        "add 'nvidia-cuda-runtime' to [project] dependencies",
        "CUDA::cudart_static instead of CUDA::cudart in target_link_libraries",
    )


def test_device_code_missing_from_a_binary_is_refused(tmp_path, build_env):
    project = copy_project(PROJECTS / "cuda_fixed_arch", tmp_path / "fixed")
    result = pip_wheel(
        project, tmp_path / "dist", build_env, "-C", "tvmffi-wheel.cuda.architectures=75-real;80", ok=False
    )
    assert_refused(result, tmp_path / "dist", "lacks device code for SASS sm_80, PTX compute_80")


def test_host_compiler_that_nvcc_rejects(tmp_path, build_env):
    project = copy_project(EXAMPLE, tmp_path / "example")
    env = dict(build_env, CUDAHOSTCXX="/bin/false")
    result = pip_wheel(
        project, tmp_path / "dist", env,
        "-C", "cmake.define.EXAMPLE_KERNELS_CUDA=ON", "-C", f"tvmffi-wheel.cuda.architectures={CUDA_ARCHS}",
        ok=False,
    )
    assert_refused(result, tmp_path / "dist", "CMake Error", "CUDA")


def test_pip_toolkit_builds_without_the_systems_cuda(tmp_path, build_env):
    project = copy_project(EXAMPLE, tmp_path / "example")
    # No nvcc on PATH: the build must take NVIDIA's wheels, not /usr/local/bin/nvcc.
    path = os.pathsep.join(p for p in build_env["PATH"].split(os.pathsep) if not (Path(p) / "nvcc").exists())
    env = {**build_env, "PATH": path}
    env.pop("CUDA_HOME", None)
    result = pip_wheel(
        project, tmp_path / "dist", env,
        "-C", "cmake.define.EXAMPLE_KERNELS_CUDA=ON",
        "-C", f"tvmffi-wheel.cuda.architectures={CUDA_ARCHS}",
        "-C", "tvmffi-wheel.cuda.toolkit=pip",
    )
    assert "nvidia-cuda-nvcc" in result.stdout  # installed into the build environment
    assert "/nvidia/cu13/bin/nvcc" in result.stdout
    wheel = only_wheel(tmp_path / "dist")
    recorded = json.loads(wheel_text(wheel, ".dist-info/tvmffi_wheel.json"))
    assert recorded["cuda"]["toolkit_source"] == "pip"
    assert recorded["device_code"] == ["PTX compute_90", "SASS sm_75"]


@pytest.mark.parametrize("fixture", ["static_build", "shared_build"])
def test_cuda_wheels_pass_independent_validators(request, tmp_path, fixture):
    assert_independently_valid(request.getfixturevalue(fixture)[0], tmp_path)


def test_the_sbom_lists_the_static_cuda_runtime_with_the_toolkit_nvcc_reports(static_build, shared_build,
                                                                                  backend_venv):
    release = re.search(r"release (\d+\.\d+)", run([find_nvcc(os.environ), "--version"]).stdout)
    assert release is not None
    static = sbom_of(static_build[0])
    assert linked_runtimes(static) == {("CUDA runtime", release.group(1))}
    (binary,) = [c for c in static["components"] if c.get("components")]
    assert binary["evidence"]["occurrences"] == [{"location": LIBRARY}]
    with zipfile.ZipFile(static_build[0]) as archive:
        assert binary["hashes"][0]["content"] == hashlib.sha256(archive.read(LIBRARY)).hexdigest()
    tools = {t["name"]: t.get("version") for t in static["metadata"]["tools"]["components"]}
    assert tools["nvcc"] == release.group(1)
    # The shared runtime is NVIDIA's wheel: a dependency, not something the wheel carries.
    shared = sbom_of(shared_build[0])
    assert linked_runtimes(shared) == set()
    assert "nvidia-cuda-runtime" in {c["name"] for c in shared["components"] if c.get("scope") == "required"}
    checked = run([backend_venv.path / "bin" / "tvmffi-wheel", "check", static_build[0]], env=backend_venv.env)
    assert f"  sbom      1 component: CUDA runtime {release.group(1)} (static); schema" in checked.stdout


def test_cuda_settings_are_what_scikit_build_core_passes_to_cmake(tmp_path, build_env):
    """Architectures from an env table and the runtime from an `if.env` override: the
    checks judge what CMake got, and the wheel records it."""
    project = copy_project(EXAMPLE, tmp_path / "example")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace("[tool.scikit-build]\n", "")
        .replace('wheel.packages = ["python/example_kernels"]\ncmake.build-type = "Release"\n', "")
        + "\n[tool.scikit-build]\n"
        'wheel.packages = ["python/example_kernels"]\n'
        "[tool.scikit-build.cmake.define]\n"
        "EXAMPLE_KERNELS_CUDA = true\n"
        'CMAKE_CUDA_ARCHITECTURES = {env = "EXAMPLE_ARCHS", default = "90-real"}\n'
        "[[tool.scikit-build.overrides]]\n"
        'if.env.EXAMPLE_SHARED_RUNTIME = "1"\n'
        'inherit.cmake.define = "append"\n'
        'cmake.define.CMAKE_CUDA_RUNTIME_LIBRARY = "Shared"\n'
    )
    env = dict(build_env, EXAMPLE_ARCHS="75-real;90-virtual", EXAMPLE_SHARED_RUNTIME="1")
    pip_wheel(project, tmp_path / "dist", env)
    wheel = only_wheel(tmp_path / "dist")
    recorded = json.loads(wheel_text(wheel, ".dist-info/tvmffi_wheel.json"))
    assert recorded["cuda"]["architectures"] == "75-real;90-virtual"
    assert recorded["cuda"]["runtime"] == "shared"
    assert recorded["device_code"] == ["PTX compute_90", "SASS sm_75"]
    assert "nvidia-cuda-runtime>=13.0,<14" in requires_dist(wheel)
    assert "libcudart.so.13" in library_facts(wheel, tmp_path).needed


# --------------------------------------------------------------------------- the generated loader's GPU check


@pytest.fixture(scope="session")
def stub_driver(tmp_path_factory) -> Path:
    """A folder with a libcuda.so.1 that reports the compute capability in $STUB_CUDA_CC."""
    folder = tmp_path_factory.mktemp("stub-driver")
    run(["cc", "-shared", "-fPIC", "-o", folder / "libcuda.so.1", PROJECTS / "stub_cuda" / "libcuda.c"])
    return folder


@pytest.fixture(scope="session")
def sm80_ptx90_venv(tmp_path_factory, build_env, fresh_venv):
    """The example with the generated loader, SASS for sm_80 and PTX for compute_90, installed."""
    project = copy_project(EXAMPLE, tmp_path_factory.mktemp("gpu-check") / "example")
    out = tmp_path_factory.mktemp("gpu-check-dist")
    pip_wheel(project, out, build_env, "-C", "cmake.define.EXAMPLE_KERNELS_CUDA=ON",
              "-C", "tvmffi-wheel.cuda.architectures=80-real;90-virtual")
    environment = fresh_venv("gpu-check")
    environment.pip_install(only_wheel(out), "numpy")
    return environment


IMPORT = "import example_kernels as k; print('loaded', k.BUILD['libraries']['example_kernels']['device_code'])"


@pytest.mark.parametrize(
    ("capability", "loads", "message"),
    [
        ("6.1", False, "Stub GPU 0 (device 0), sm_61, cannot run libexample_kernels.so: it has device code for "
                       "compute_90, sm_80 only"),
        ("8.6", True, "loaded ['compute_90', 'sm_80']"),  # sm_80 SASS runs on 8.6
        ("12.0", True, "from PTX compute_90 when first used"),  # newer than any SASS: PTX, with a note
    ],
)
def test_the_loader_checks_each_gpu_against_the_device_code(sm80_ptx90_venv, stub_driver, tmp_path, capability,
                                                            loads, message):
    driver = {"LD_LIBRARY_PATH": str(stub_driver), "STUB_CUDA_CC": capability}
    result = sm80_ptx90_venv.run("-c", IMPORT, cwd=tmp_path, ok=loads, env=driver)
    assert message in result.stdout
    if loads:
        assert "loaded" in result.stdout
    else:
        assert "ImportError" in result.stdout


def test_without_a_driver_or_a_gpu_the_loader_does_not_check(sm80_ptx90_venv, stub_driver, tmp_path):
    result = sm80_ptx90_venv.run("-W", "error", "-c", IMPORT, cwd=tmp_path)  # no libcuda.so.1 here
    assert "loaded ['compute_90', 'sm_80']" in result.stdout
    no_gpu = {"LD_LIBRARY_PATH": str(stub_driver), "STUB_CUDA_COUNT": "0", "STUB_CUDA_CC": "6.1"}
    result = sm80_ptx90_venv.run("-W", "error", "-c", IMPORT, cwd=tmp_path, env=no_gpu)
    assert "loaded" in result.stdout
