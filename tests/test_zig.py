"""toolchain = "zig": manylinux_2_17 and aarch64 wheels from this host, without a container."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from conftest import (
    EXAMPLE,
    PROJECTS,
    assert_refused,
    copy_project,
    deserved_platform,
    elf_members,
    linked_runtimes,
    only_wheel,
    pip_wheel,
    run,
    sbom_of,
    version_references,
    wheel_text,
    zig_venv_build,
)
from tvmffi_wheel.compiling.toolchain import host_architecture

HOST = host_architecture()
LIBRARY = "example_kernels/lib/libexample_kernels.so"
ZIG = ["-C", "tvmffi-wheel.toolchain=zig"]
AARCH64_SYSROOT = Path("/usr/aarch64-linux-gnu")  # Debian's libc6-arm64-cross, libstdc++6-arm64-cross

pytestmark = pytest.mark.skipif(HOST != "x86_64", reason="the aarch64 cross build is tested from x86_64")


def zig_build(tmp_path_factory, build_env, name: str, *options: str) -> tuple[Path, str]:
    project = copy_project(EXAMPLE, tmp_path_factory.mktemp(name) / "example_project")
    out = tmp_path_factory.mktemp(f"{name}-dist")
    result = pip_wheel(project, out, build_env, *ZIG, *options)
    return only_wheel(out), result.stdout


@pytest.fixture(scope="session")
def zig_wheel(tmp_path_factory, build_env) -> tuple[Path, str]:
    return zig_build(tmp_path_factory, build_env, "zig-x86_64")


@pytest.fixture(scope="session")
def aarch64_wheel(tmp_path_factory, build_env) -> tuple[Path, str]:
    return zig_build(tmp_path_factory, build_env, "zig-aarch64", "-C", "tvmffi-wheel.arch=aarch64")


def needed(library: Path) -> list[str]:
    dump = run(["objdump", "-p", library]).stdout
    return [line.split()[1] for line in dump.splitlines() if line.strip().startswith("NEEDED")]


def check_report(command, wheel: Path) -> dict:
    (report,) = json.loads(command("check", "--json", wheel).stdout)["wheels"]
    return report


# --------------------------------------------------------------------------- x86_64, glibc 2.17


def test_zig_wheel_is_manylinux_2_17_by_its_symbols(zig_wheel, tmp_path):
    wheel, log = zig_wheel
    assert "toolchain = zig: x86_64-linux-gnu.2.17" in log
    platform = deserved_platform(wheel, tmp_path / "elf")  # objdump + auditwheel's table
    assert platform.startswith("manylinux_2_17_x86_64")
    assert wheel.name == f"example_kernels-0.1.0-py3-none-{platform}.whl"
    for library in elf_members(wheel, tmp_path / "elf2"):
        glibc = [tuple(map(int, v.split("_")[1].split(".")))
                 for versions in version_references(library).values() for v in versions if v.startswith("GLIBC_")]
        assert max(glibc) <= (2, 17), library
        assert not [n for n in needed(library) if n.startswith(("libstdc++", "libgcc_s"))], needed(library)


def test_zig_wheel_exports_nothing_of_its_cxx_runtime_and_is_pinned(zig_wheel, command, tmp_path):
    wheel, _ = zig_wheel
    report = check_report(command, wheel)
    assert report["sound"], report["problems"]
    (binary,) = report["binaries"]
    assert binary["leaked_exports"] == []
    assert {d["soname"] for d in binary["needed"]} >= {"libtvm_ffi.so"}
    assert binary["run_paths"] == ["$ORIGIN/../../tvm_ffi/lib"]
    assert report["tvm_ffi_requirement"].startswith("apache-tvm-ffi<0.2,>=")


def test_zig_wheels_list_the_runtime_their_link_put_in(zig_wheel, zig_venv, tmp_path):
    """The example has CUDA sources, so its default zig link takes GCC's runtime (nvcc's host
    compiler probe needs it); asking for libc++ gives zig's runtimes and no shim."""
    zig_version = run([zig_venv.python, "-m", "ziglang", "version"]).stdout.strip()
    gcc = run(["gcc", "-dumpfullversion"]).stdout.strip()
    shim_version = run([zig_venv.python, "-c", "import tvmffi_wheel; print(tvmffi_wheel.__version__)"]).stdout.strip()
    assert linked_runtimes(sbom_of(zig_wheel[0])) == {
        ("libstdc++", gcc), ("libunwind", zig_version), ("tvmffi-wheel glibc shim", shim_version)}
    project = copy_project(EXAMPLE, tmp_path / "example_project")
    zig_venv_build(zig_venv, project, tmp_path / "dist", *LIBCXX_RUNTIME)
    assert linked_runtimes(sbom_of(only_wheel(tmp_path / "dist"))) == {
        ("libc++", zig_version), ("libunwind", zig_version)}


def test_zig_wheel_passes_the_example_tests_in_a_fresh_venv(zig_wheel, fresh_venv, tmp_path):
    environment = fresh_venv("zig-example")
    environment.pip_install(zig_wheel[0], "numpy", "pytest")
    result = environment.run("-m", "pytest", "-q", "-p", "no:cacheprovider", EXAMPLE / "tests", cwd=tmp_path)
    assert "6 passed" in result.stdout


@pytest.mark.parametrize(
    ("runtime", "described"),
    [("libc++", "LLVM's libc++ (zig's, static)"), ("libstdc++", "GCC's libstdc++ (libstdc++.a, static)")],
)
def test_cxx_symbols_from_libtvm_ffi_are_refused_with_zig(tmp_path, zig_venv, runtime, described):
    project = copy_project(PROJECTS / "json_kernel", tmp_path / "json_kernel")
    result = zig_venv_build(zig_venv, project, tmp_path / "dist", "-C", f"tvmffi-wheel.cxx-runtime={runtime}", ok=False)
    assert_refused(
        result, tmp_path / "dist",
        f"json_kernel/libjson_kernel.so, linked by zig with its own C++ runtime, {described}, "
        "imports C++ symbols from libtvm_ffi.so",
        "_ZN3tvm3ffi4json9Stringify",  # its exact name depends on the apache-tvm-ffi version
        'or build with toolchain = "system"',
    )


# --------------------------------------------------------------------------- cxx-runtime = libstdc++

GCC_RUNTIME = ["-C", "tvmffi-wheel.cxx-runtime=libstdc++"]


def test_cpu_kernels_compiled_by_gcc_fit_glibc_2_17_with_gccs_runtime_inside(zig_venv, tmp_path):
    """(test_old_glibc.py loads this wheel in Debian bullseye, with every other wheel tagged for it.)"""
    project = copy_project(EXAMPLE, tmp_path / "example_project")
    log = zig_venv_build(zig_venv, project, tmp_path / "dist", *GCC_RUNTIME).stdout
    wheel = only_wheel(tmp_path / "dist")
    assert "toolchain = zig: x86_64-linux-gnu.2.17, GCC's libstdc++ (libstdc++.a, static)" in log
    assert wheel.name.endswith("-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
    assert deserved_platform(wheel, tmp_path / "judged") == "manylinux_2_17_x86_64.manylinux2014_x86_64"
    (library,) = elf_members(wheel, tmp_path / "elf")
    versions = [v for needed in version_references(library).values() for v in needed]
    assert not [v for v in versions if v.startswith(("GLIBCXX_", "CXXABI_", "GCC_"))], versions
    assert not [n for n in needed(library) if n.startswith(("libstdc++", "libgcc_s"))]


def test_the_shared_cxx_runtime_linked_on_purpose_is_refused(tmp_path, zig_venv):
    project = copy_project(PROJECTS / "json_kernel", tmp_path / "json_kernel")
    cmake = project / "CMakeLists.txt"
    cmake.write_text(cmake.read_text() + "\ntarget_link_libraries(json_kernel PRIVATE stdc++)\n")
    result = zig_venv_build(zig_venv, project, tmp_path / "dist", *GCC_RUNTIME, ok=False)
    assert_refused(
        result, tmp_path / "dist",
        "tvmffi-wheel: the link of libjson_kernel.so asks for the shared C++ runtime (-lstdc++)",
        "remove it from the project's link options",
    )


def _without_our_helper(project: Path) -> Path:
    cmake = project / "CMakeLists.txt"
    cmake.write_text(re.sub(r"tvmffi_wheel_configure_target\([^)]*\)", "", cmake.read_text()))
    return cmake


LIBCXX_RUNTIME = ["-C", "tvmffi-wheel.cxx-runtime=libc++"]


@pytest.mark.parametrize("runtime", [GCC_RUNTIME, LIBCXX_RUNTIME], ids=["libstdc++", "libc++"])
def test_a_library_without_our_helper_keeps_its_private_runtime_inside(tmp_path, zig_venv, runtime):
    """tvm-ffi's recipe alone (tvm_ffi_configure_target): the backend owns the link and hides the runtime."""
    project = copy_project(PROJECTS / "json_kernel", tmp_path / "json_kernel")
    _without_our_helper(project)
    out = tmp_path / "dist"
    zig_venv_build(zig_venv, project, out, *runtime, "-C", "cmake.define.JSON_KERNEL_STRINGIFY=OFF")
    (library,) = elf_members(only_wheel(out), tmp_path / "elf")
    exports = {line.split()[-1] for line in run(["nm", "-D", "--defined-only", library]).stdout.splitlines()}
    assert exports == {"__tvm_ffi_pair_to_json"}


@pytest.mark.parametrize(("change", "message", "fix"), [
    # The project's own version script exports everything: its decision, which cannot be made right.
    ("version-script", "symbols of the C++ runtime it carries (GCC's libstdc++ (libstdc++.a, static))",
     "end it with `local: *;`"),
    # A C++ function marked for export on purpose: an interface no caller with another runtime can use.
    ("cxx-api", "exports C++ symbols: _ZN11json_kernel3apiEi", 'export C functions instead (extern "C"'),
], ids=["own-version-script", "own-cxx-api"])
def test_what_a_project_exports_on_purpose_from_a_private_runtime_is_refused(tmp_path, zig_venv, change, message,
                                                                              fix):
    project = copy_project(PROJECTS / "json_kernel", tmp_path / "json_kernel")
    cmake = _without_our_helper(project)
    if change == "version-script":
        (project / "everything.map").write_text("{ global: *; };\n")
        cmake.write_text(cmake.read_text() + 'target_link_options(json_kernel PRIVATE '
                         '"LINKER:--version-script=${CMAKE_CURRENT_SOURCE_DIR}/everything.map")\n')
    else:
        source = project / "src" / "kernel.cc"
        source.write_text(source.read_text() + '\nnamespace json_kernel {\n__attribute__((visibility("default"))) '
                          "int api(int x) { return x; }\n}\n")
    result = zig_venv_build(zig_venv, project, tmp_path / "dist", *GCC_RUNTIME,
                            "-C", "cmake.define.JSON_KERNEL_STRINGIFY=OFF", ok=False)
    assert_refused(result, tmp_path / "dist", message, fix)


# --------------------------------------------------------------------------- aarch64


def test_aarch64_wheel_is_aarch64_through_and_through(aarch64_wheel, command, tmp_path):
    wheel, log = aarch64_wheel
    assert "linking libtvm_ffi.so from apache_tvm_ffi-" in log and "_aarch64" in log
    platform = deserved_platform(wheel, tmp_path / "elf", arch="aarch64")
    assert platform.startswith("manylinux_2_17_aarch64")
    assert wheel.name == f"example_kernels-0.1.0-py3-none-{platform}.whl"
    members = elf_members(wheel, tmp_path / "elf2")
    assert members
    for library in members:
        with library.open("rb") as stream:
            assert ELFFile(stream)["e_machine"] == "EM_AARCH64", library
    report = check_report(command, wheel)
    assert report["sound"], report["problems"]
    assert report["binaries"][0]["leaked_exports"] == []


@pytest.mark.skipif(
    shutil.which("qemu-aarch64") is None or not (AARCH64_SYSROOT / "lib" / "libstdc++.so.6").is_file(),
    reason="needs qemu-user, libc6-arm64-cross and libstdc++6-arm64-cross (.ci/run installs them)",
)
def test_aarch64_library_runs_under_qemu_from_a_c_host(aarch64_wheel, zig_venv, tmp_path):
    """A C program built with zig for aarch64 loads the library (and with it the aarch64
    libtvm_ffi.so from apache-tvm-ffi's own wheel) and calls `total` through the C ABI."""
    wheel, _ = aarch64_wheel
    version = json.loads(wheel_text(wheel, ".dist-info/tvmffi_wheel.json"))["tvm_ffi_version"]
    downloads = tmp_path / "downloads"
    run([zig_venv.python, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         "--platform", "manylinux_2_28_aarch64", "--dest", downloads, f"apache-tvm-ffi=={version}"], env=zig_venv.env)
    site = tmp_path / "site-packages"  # the wheel and apache-tvm-ffi, as pip would install them
    for archive_path in [wheel, only_wheel(downloads)]:
        with zipfile.ZipFile(archive_path) as archive:
            archive.extractall(site)
    host = tmp_path / "call_total"
    run([zig_venv.python, "-m", "ziglang", "cc", "-target", "aarch64-linux-gnu.2.17", "-O2",
         "-I", site / "tvm_ffi" / "include", PROJECTS / "c_host" / "call_total.c", "-o", host, "-ldl"])
    with host.open("rb") as stream:
        assert ELFFile(stream)["e_machine"] == "EM_AARCH64"
    result = run(["qemu-aarch64", "-L", AARCH64_SYSROOT, host, site / LIBRARY])
    assert result.stdout.splitlines() == ["total = 11", "int32 input: raised (-1)"]


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["-C", "tvmffi-wheel.arch=riscv64"], "must be one of x86_64, aarch64; got 'riscv64'"),
        (["-C", "tvmffi-wheel.arch=aarch64"], "arch = 'aarch64' on this x86_64 machine needs toolchain = \"zig\""),
        ([*ZIG, "-C", "tvmffi-wheel.glibc=2.12"], "glibc = '2.12' is older than 2.17"),
        ([*ZIG, "-C", "tvmffi-wheel.glibc=2.99"], "glibc = '2.99': zig cannot target it"),
        ([*ZIG, "-C", "tvmffi-wheel.cxx-runtime=libc++", "-C", "cmake.define.EXAMPLE_KERNELS_CUDA=ON",
          "-C", "tvmffi-wheel.cuda.architectures=75-real"], 'cxx-runtime = "libc++" cannot build CUDA'),
        ([*ZIG, "-C", "tvmffi-wheel.glibc=2.16", "-C", "cmake.define.EXAMPLE_KERNELS_CUDA=ON",
          "-C", "tvmffi-wheel.cuda.architectures=75-real"], "and the oldest CUDA's static runtime binds to"),
        ([*ZIG, "-C", "tvmffi-wheel.cxx-runtime=libstdc++", "-C", "tvmffi-wheel.arch=aarch64"],
         'cxx-runtime = "libstdc++" compiles with this machine\'s gcc and nvcc'),
    ],
)
def test_bad_toolchain_settings_are_refused(tmp_path, build_env, options, message):
    project = copy_project(EXAMPLE, tmp_path / "example_project")
    result = pip_wheel(project, tmp_path / "dist", build_env, *options, ok=False)
    assert_refused(result, tmp_path / "dist", message)
    assert "Building CXX object" not in result.stdout


def test_no_aarch64_apache_tvm_ffi_wheel_is_refused(tmp_path, zig_venv):
    project = copy_project(EXAMPLE, tmp_path / "example_project")
    nowhere = tmp_path / "empty-index"
    nowhere.mkdir()
    env = {**zig_venv.env, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(nowhere)}
    result = run(
        [zig_venv.python, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-v", "-w", tmp_path / "dist",
         *ZIG, "-C", "tvmffi-wheel.arch=aarch64", project],
        env=env, ok=False,
    )
    version = run([zig_venv.python, "-c", "import importlib.metadata as m; print(m.version('apache-tvm-ffi'))"]).stdout
    assert_refused(
        result, tmp_path / "dist",
        f"no aarch64 wheel of apache-tvm-ffi {version.strip()} could be downloaded",
    )
