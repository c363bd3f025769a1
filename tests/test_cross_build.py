"""The backend cross-builds example_project for macOS arm64 and Windows amd64 from Linux
(os = macos | windows, toolchain = zig), from a folder with a space in its path. Judged with
LLVM's tools, pefile and the tests' own signature check; the Windows wheel is installed into
a Windows CPython under wine, whose import of the package goes through the generated loader."""

from __future__ import annotations

import json
import subprocess
import zipfile

import pefile
import pytest

from conftest import EXAMPLE, assert_refused, copy_project, linked_runtimes, only_wheel, run, sbom_of, zig_venv_build
from macho_tools import linked_libraries, llvm_tool, load_commands, rpaths, signature_is_valid, undefined_symbols
from windows_python import DLPACK_HELPERS, requires_wine, windows_python

KERNELS = ("add_one", "axpy", "total")


def _cross_built(tmp_path_factory, zig_venv, os_name: str):
    """example_project, copied to a path with a space, built by the backend for ``os_name``."""
    project = copy_project(EXAMPLE, tmp_path_factory.mktemp(f"cross {os_name}") / "example project")
    out = project.parent / "dist"
    zig_venv_build(zig_venv, project, out, "-C", f"tvmffi-wheel.os={os_name}")
    return only_wheel(out)


@pytest.fixture(scope="module")
def macos_wheel(tmp_path_factory, zig_venv):
    return _cross_built(tmp_path_factory, zig_venv, "macos")


@pytest.fixture(scope="module")
def windows_wheel(tmp_path_factory, zig_venv):
    return _cross_built(tmp_path_factory, zig_venv, "windows")


def test_macos_wheel(command, macos_wheel, tmp_path):
    assert macos_wheel.name == "example_kernels-0.1.0-py3-none-macosx_11_0_arm64.whl"
    zipfile.ZipFile(macos_wheel).extractall(tmp_path)
    library = tmp_path / "example_kernels" / "lib" / "libexample_kernels.dylib"
    build = next(c for c in load_commands(library) if c["cmd"] == "LC_BUILD_VERSION")
    assert (build["platform"], build["minos"]) == ("macos", "11.0")
    assert linked_libraries(library)[0] == "@rpath/libexample_kernels.dylib"  # its own install name
    assert "@rpath/libtvm_ffi.dylib" in linked_libraries(library)
    assert rpaths(library) == ["@loader_path/../../tvm_ffi/lib"]  # linked in, not patched
    assert signature_is_valid(library)
    from_tvm_ffi = [s for s, source in undefined_symbols(library).items() if source == "libtvm_ffi"]
    assert from_tvm_ffi and all(s.startswith("_TVMFFI") for s in from_tvm_ffi), from_tvm_ffi
    # Nothing of the libc++ linked in is exported (operator new and delete included), though zig's
    # Mach-O linker ignores the exported symbols list: only the entry points and the linker's own.
    exports = set(_exports(library))
    assert exports == {f"___tvm_ffi_{k}" for k in KERNELS} | {"___dso_handle", "__mh_dylib_header"}
    report = json.loads(command("check", "--json", macos_wheel).stdout)["wheels"][0]
    assert report["sound"], report["problems"]
    assert {name for name, _ in linked_runtimes(sbom_of(macos_wheel))} == {"libc++"}


def _exports(library) -> list[str]:
    output = subprocess.run([llvm_tool("llvm-nm"), "-g", "-j", "--defined-only", str(library)], check=True,
                            capture_output=True, text=True).stdout
    return output.split()


def test_windows_wheel(command, windows_wheel, tmp_path):
    assert windows_wheel.name == "example_kernels-0.1.0-py3-none-win_amd64.whl"
    names = zipfile.ZipFile(windows_wheel).namelist()
    assert not [n for n in names if n.endswith((".pdb", ".lib", ".a"))], names
    zipfile.ZipFile(windows_wheel).extractall(tmp_path)
    with pefile.PE(str(tmp_path / "example_kernels" / "lib" / "example_kernels.dll"), fast_load=False) as image:
        assert (image.FILE_HEADER.Machine, image.OPTIONAL_HEADER.Magic) == (0x8664, 0x20B)  # x86-64, PE32+
        imports = {e.dll.decode().lower(): [i.name.decode() for i in e.imports if i.name]
                   for e in image.DIRECTORY_ENTRY_IMPORT}
        exports = {s.name.decode() for s in image.DIRECTORY_ENTRY_EXPORT.symbols if s.name}
    assert imports["tvm_ffi.dll"] and all(s.startswith("TVMFFI") for s in imports["tvm_ffi.dll"])
    assert exports == {f"__tvm_ffi_{k}" for k in KERNELS}
    report = json.loads(command("check", "--json", windows_wheel).stdout)["wheels"][0]
    assert report["sound"], report["problems"]
    assert {name for name, _ in linked_runtimes(sbom_of(windows_wheel))} == {"libc++", "libunwind"}


RUN_KERNELS = DLPACK_HELPERS + r'''
import example_kernels

x, read_x = make_vector([1.0, 2.0, 3.0])
y, read_y = make_vector([10.0, 20.0, 30.0])
out, read_out = make_vector([0.0, 0.0, 0.0])
example_kernels.add_one(x, out)
print("add_one", read_out())
example_kernels.axpy(2.0, x, y, out)
print("axpy", read_out())
print("total", example_kernels.total(x))
print("platform", example_kernels.BUILD["platform"])
'''


@requires_wine
def test_windows_wheel_runs_under_wine(windows_wheel, tmp_path):
    facts = json.loads(zipfile.ZipFile(windows_wheel).read("example_kernels-0.1.0.dist-info/tvmffi_wheel.json"))
    python = windows_python(tvm_ffi_version=facts["tvm_ffi_version"])
    site = python.install(windows_wheel, tmp_path / "site")
    result = python.run(RUN_KERNELS, site)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"
    assert result.stdout.splitlines() == [
        "add_one [2.0, 3.0, 4.0]", "axpy [12.0, 24.0, 36.0]", "total 6.0", "platform win_amd64",
    ], result.stderr[-4000:]


@pytest.mark.parametrize("os_name", ["macos", "windows"])
def test_a_cross_build_gives_the_same_binaries_again(tmp_path_factory, zig_venv, os_name, request):
    """From another folder, so another temporary build folder: the linker must not hash the
    object files' paths into the binary (LC_UUID on macOS, the PDB's GUID and timestamps on Windows)."""
    first = request.getfixturevalue(f"{os_name}_wheel")
    again = _cross_built(tmp_path_factory, zig_venv, os_name)

    def binaries(wheel):
        with zipfile.ZipFile(wheel) as archive:
            return {n: archive.read(n) for n in archive.namelist() if n.endswith((".dylib", ".dll"))}

    built, rebuilt = binaries(first), binaries(again)
    assert built and built.keys() == rebuilt.keys()
    assert [n for n in built if built[n] != rebuilt[n]] == []


@pytest.mark.parametrize(("options", "message"), [
    (("-C", "tvmffi-wheel.os=macos"), 'os = "macos" on this Linux machine needs toolchain = "zig"'),
    (("-C", "tvmffi-wheel.toolchain=zig", "-C", "tvmffi-wheel.os=macos", "-C", "tvmffi-wheel.arch=x86_64"),
     "apache-tvm-ffi publishes macOS wheels for arm64 only"),
    (("-C", "tvmffi-wheel.toolchain=zig", "-C", "tvmffi-wheel.os=windows",
      "-C", "tvmffi-wheel.cuda.architectures=75-real"), 'os = "windows" cannot build CUDA'),
])
def test_bad_cross_settings_are_refused(zig_venv, tmp_path, options, message):
    project = copy_project(EXAMPLE, tmp_path / "example")
    out = tmp_path / "dist"
    result = run([zig_venv.python, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-w", out, *options,
                  project], env=zig_venv.env, ok=False)
    assert_refused(result, out, message)
