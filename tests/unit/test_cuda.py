"""CUDA decisions, and fatbin inventories of libraries compiled here with nvcc."""

import re
import subprocess
from pathlib import Path

import pytest
from packaging.version import Version

from tvmffi_wheel.common.cuda import Architecture, parse_architectures
from tvmffi_wheel.compiling.cuda import Toolkit, find_nvcc, plan_cuda, validate_architectures
from tvmffi_wheel.compiling.settings import CudaSettings
from tvmffi_wheel.deciding.device_checks import check_built_device_code
from tvmffi_wheel.deciding.device_inventory import missing_device_code, stray_device_code
from tvmffi_wheel.deciding.nvidia import (
    cuda_build_requirements,
    library_folder,
    nvidia_library,
    runtime_requirement,
    wheel_for,
)
from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting.device_code import DeviceImage
from tvmffi_wheel.inspecting.elf import read_elf_facts

CUDA13 = Toolkit(Path("nvcc"), Version("13.0"), frozenset({75, 80, 86, 89, 90, 100, 103, 110, 120, 121}))
CUDA128 = Toolkit(Path("nvcc"), Version("12.8"), frozenset({50, 75, 80, 90, 100, 120}))


def test_parse_cmake_syntax():
    parsed = parse_architectures("75-real;80;90a-real;100f-real;120-virtual")
    assert [str(a) for a in parsed] == ["75-real", "80", "90a-real", "100f-real", "120-virtual"]
    assert parsed[1] == Architecture(80, "", sass=True, ptx=True)


@pytest.mark.parametrize("typo", ["80-rael", "sm_80", "80;;x", "compute_90"])
def test_typos_are_refused_with_the_syntax(typo):
    with pytest.raises(TvmFfiWheelError, match="is not an architecture"):
        parse_architectures(typo)


def test_native_is_refused():
    with pytest.raises(TvmFfiWheelError, match="`native` describe this build machine"):
        validate_architectures("native", CUDA13, allow_all=False)


@pytest.mark.parametrize("special", ["all", "all-major"])
def test_all_needs_confirmation(special):
    with pytest.raises(TvmFfiWheelError, match=r"cuda\.allow-all-architectures"):
        validate_architectures(special, CUDA13, allow_all=False)
    assert validate_architectures(special, CUDA13, allow_all=True) == (None, [])


def test_architecture_the_toolkit_cannot_build_names_the_version():
    with pytest.raises(TvmFfiWheelError, match=r"CUDA 13.0 cannot build sm_70"):
        validate_architectures("70-real;80-real", CUDA13, allow_all=False)


def test_family_targets_need_cuda_12_9():
    with pytest.raises(TvmFfiWheelError, match=r"need CUDA 12.9 .* this is CUDA 12.8"):
        validate_architectures("100f-real", CUDA128, allow_all=False)
    entries, _ = validate_architectures("100f-real;120-virtual", CUDA13, allow_all=False)
    assert [str(e) for e in entries] == ["100f-real", "120-virtual"]


def test_missing_ptx_is_a_warning():
    _, warnings = validate_architectures("75-real;90-real", CUDA13, allow_all=False)
    assert any("no PTX target" in w and "90-virtual" in w for w in warnings)
    assert validate_architectures("75-real;90", CUDA13, allow_all=False)[1] == []


def test_missing_device_code():
    declared = parse_architectures("75-real;90a-real;120-virtual")
    inventory = [DeviceImage("sass", 75, "", 10, False), DeviceImage("sass", 90, "", 10, False)]
    assert missing_device_code(declared, inventory) == ["SASS sm_90a", "PTX compute_120"]


def test_stray_device_code_such_as_a_device_links_sm_52():
    declared = parse_architectures("75-real;90-virtual")
    inventory = [DeviceImage("sass", 75, "", 10, False), DeviceImage("ptx", 90, "", 10, False),
                 DeviceImage("sass", 52, "", 10, False), DeviceImage("sass", 90, "", 10, False),
                 DeviceImage("ptx", 75, "", 10, False)]
    # SASS sm_90 is stray although PTX compute_90 is declared, and the other way round for 75.
    assert stray_device_code(declared, inventory) == ["PTX compute_75", "SASS sm_52", "SASS sm_90"]


def test_a_bare_cubin_counts_for_any_variant_a_fatbin_entry_only_for_its_own():
    declared = parse_architectures("90a-real")
    cubin = DeviceImage("sass", 90, "", 10, False, "file", variant_known=False)
    fatbin_entry = DeviceImage("sass", 90, "", 10, False)
    assert missing_device_code(declared, [cubin]) == [] and stray_device_code(declared, [cubin]) == []
    assert missing_device_code(declared, [fatbin_entry]) == ["SASS sm_90a"]
    assert stray_device_code(declared, [fatbin_entry]) == ["SASS sm_90"]


@pytest.mark.parametrize("strict", [False, True])
def test_stray_architecture_warns_or_with_strict_fails_the_build(capsys, strict):
    from synthetic import binary

    library = binary("pkg/libk.so", device_code=[DeviceImage("sass", 75, "", 10, False),
                                                 DeviceImage("sass", 52, "", 10, False)])
    declared = parse_architectures("75-real")
    expected = "pkg/libk.so has device code for SASS sm_52, which cuda.architectures (75-real) does not declare"
    if strict:
        with pytest.raises(TvmFfiWheelError, match=re.escape(expected)):
            check_built_device_code([library], [], None, declared, strict=True)
    else:
        check_built_device_code([library], [], None, declared, strict=False)
        assert f"warning: {expected}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("soname", "wheel", "folder"),
    [
        ("libcudart.so.13", "nvidia-cuda-runtime", "nvidia/cu13/lib"),
        ("libcudart.so.12", "nvidia-cuda-runtime-cu12", "nvidia/cuda_runtime/lib"),
        ("libcublasLt.so.13", "nvidia-cublas", "nvidia/cu13/lib"),
        ("libnccl.so.2", "nvidia-nccl-cu13", "nvidia/nccl/lib"),
    ],
)
def test_nvidia_wheels(soname, wheel, folder):
    library = nvidia_library(soname)
    major = 13 if "nccl" in soname else int(soname.rsplit(".", 1)[1])
    assert wheel_for(library, major) == wheel
    assert library_folder(library, major) == folder


def test_runtime_requirement_follows_the_toolkit_major():
    assert runtime_requirement(CUDA13.version) == "nvidia-cuda-runtime>=13.0,<14"
    assert runtime_requirement(CUDA128.version) == "nvidia-cuda-runtime-cu12>=12.8,<13"


def plan(**overrides):
    """A plan for the CUDA settings in ``overrides``, on a machine with no toolkit but the ones they name."""
    places = {name: overrides.pop(name) for name in ("search_path", "user_defines", "environ") if name in overrides}
    settings = CudaSettings(**{"toolkit": "system", **overrides})
    return plan_cuda(settings, search_path=places.get("search_path", []), user_defines=places.get("user_defines", {}),
                     environ=places.get("environ", {}), default_roots=())


def test_runtime_is_always_passed_and_static_by_default():
    assert plan().defines == {"CMAKE_CUDA_RUNTIME_LIBRARY": "Static"}
    assert plan(runtime="none").defines == {"CMAKE_CUDA_RUNTIME_LIBRARY": "None"}


def test_the_users_own_cmake_variables_are_not_overridden():
    result = plan(user_defines={"CMAKE_CUDA_RUNTIME_LIBRARY": "Shared"})
    assert "CMAKE_CUDA_RUNTIME_LIBRARY" not in result.defines
    with pytest.raises(TvmFfiWheelError, match="set the runtime in one place"):
        plan(runtime="static", user_defines={"CMAKE_CUDA_RUNTIME_LIBRARY": "Shared"})
    with pytest.raises(TvmFfiWheelError, match="set the architectures in one place"):
        plan(architectures="80-real", user_defines={"CMAKE_CUDA_ARCHITECTURES": "90-real"})


def test_missing_nvcc_is_an_error_when_architectures_are_set():
    with pytest.raises(TvmFfiWheelError, match=r'(?s)nvcc is not found.*cuda\.toolkit = "pip"'):
        plan(architectures="80-real", environ={"PATH": "/nonexistent"})
    assert cuda_build_requirements(plan(environ={"PATH": "/nonexistent"}).facts) == ()


def test_find_nvcc_order(tmp_path):
    nvcc = tmp_path / "bin" / "nvcc"
    nvcc.parent.mkdir()
    nvcc.write_text("")
    assert find_nvcc({"CUDACXX": "/opt/x/nvcc", "CUDA_HOME": str(tmp_path)}, ()) == Path("/opt/x/nvcc")
    assert find_nvcc({"PATH": "/nonexistent", "CUDA_HOME": str(tmp_path)}, ()) == nvcc


# --------------------------------------------------------------------------- fatbins

nvcc_missing = find_nvcc(__import__("os").environ) is None
KERNEL = "__global__ void k(float* x) { x[threadIdx.x] += 1.0f; }\n"


def compile_cuda(tmp_path, *flags):
    source = tmp_path / "k.cu"
    source.write_text(KERNEL)
    output = tmp_path / "k.so"
    nvcc = str(find_nvcc(__import__("os").environ))
    subprocess.run([nvcc, "-shared", "-Xcompiler", "-fPIC", *flags, "-o", str(output), str(source)], check=True)
    return read_elf_facts(output, "k.so")


@pytest.mark.skipif(nvcc_missing, reason="needs nvcc")
def test_fatbin_inventory_names_sass_and_ptx(tmp_path):
    facts = compile_cuda(
        tmp_path, "-gencode", "arch=compute_75,code=sm_75", "-gencode", "arch=compute_90,code=compute_90"
    )
    kinds = {(i.kind, i.arch, i.variant) for i in facts.device_code}
    assert kinds == {("sass", 75, ""), ("ptx", 90, "")}
    assert all(i.size > 0 for i in facts.device_code)
    assert not [i for i in facts.device_code if i.kind == "sass" and i.compressed]


@pytest.mark.skipif(nvcc_missing, reason="needs nvcc")
def test_fatbin_inventory_sees_compression_and_variants(tmp_path):
    facts = compile_cuda(
        tmp_path,
        "--compress-mode=size",
        "-gencode", "arch=compute_90a,code=sm_90a",
        "-gencode", "arch=compute_100f,code=sm_100f",
    )
    assert {(i.kind, i.arch, i.variant) for i in facts.device_code} == {("sass", 90, "a"), ("sass", 100, "f")}
    assert all(i.compressed for i in facts.device_code)


def test_library_without_device_code_has_an_empty_inventory():
    import sys

    facts = read_elf_facts(Path(sys.executable).resolve(), "python")
    assert facts.device_code == ()


def test_pip_toolkit_wheels_for_cuda_13_and_none_for_12():
    from tvmffi_wheel.compiling.cuda import pip_toolkit_requirements

    assert pip_toolkit_requirements("13.0") == [
        "nvidia-cuda-nvcc==13.0.*", "nvidia-nvvm==13.0.*", "nvidia-cuda-crt==13.0.*",
        "nvidia-cuda-cccl==13.0.*", "nvidia-cuda-runtime==13.0.*",
    ]
    assert pip_toolkit_requirements("13.1")[0] == "nvidia-cuda-nvcc==13.1.*"
    with pytest.raises(TvmFfiWheelError, match="no nvcc for CUDA 12 on PyPI") as refused:
        pip_toolkit_requirements("12.8")
    assert "/usr/local/cuda-12.8/bin/nvcc" in refused.value.fix
    with pytest.raises(TvmFfiWheelError, match="not a CUDA release"):
        pip_toolkit_requirements("thirteen")


def test_pip_toolkit_is_chosen_when_no_nvcc_is_found(tmp_path):
    from tvmffi_wheel.compiling.cuda import uses_pip_toolkit

    assert uses_pip_toolkit("", "80-real", {"PATH": "/nonexistent"}, ())
    assert not uses_pip_toolkit("", "", {"PATH": "/nonexistent"}, ())  # no CUDA declared
    assert not uses_pip_toolkit("system", "80-real", {"PATH": "/nonexistent"}, ())
    with pytest.raises(TvmFfiWheelError, match="toolkit wheels are not installed"):
        plan(architectures="80-real", toolkit="pip", search_path=[str(tmp_path)])
    with pytest.raises(TvmFfiWheelError, match="CUDACXX points at"):
        plan(toolkit="pip", environ={"CUDACXX": "/opt/nvcc"})
