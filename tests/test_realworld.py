"""tvm-ffi's own examples, unchanged but for what a user adopting tvmffi-wheel changes, built in
every mode the backend offers: the default toolchain, zig for glibc 2.28 (CPU, and CUDA for the
quickstart), macOS arm64 and Windows amd64. Each wheel must pass `check`, and tools we did not
write judge it (objdump and auditwheel's policy table, twine, check-wheel-contents, nm, LLVM's
Mach-O tools, pefile); then the example's own code runs wherever this machine can run it: the
python_packaging example's run_example.py and the quickstart's load/load_numpy.py here, and
under wine for the Windows wheels. The Linux wheels are loaded in Debian bullseye too
(test_old_glibc.py takes every wheel the run built)."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import zipfile
from pathlib import Path

import pefile
import pytest

import realworld
from conftest import assert_independently_valid, deserved_platform, only_wheel, pip_wheel, run, zig_venv_build
from macho_tools import linked_libraries, llvm_tool, load_commands, rpaths, signature_is_valid
from tvmffi_wheel.compiling.cuda import find_nvcc
from windows_python import DLPACK_HELPERS, find_wine, windows_path, windows_python

pytestmark = realworld.requires_examples

MODES = {
    "default": (),
    "zig": ("-C", "tvmffi-wheel.glibc=2.28"),
    "macos": ("-C", "tvmffi-wheel.os=macos"),
    "windows": ("-C", "tvmffi-wheel.os=windows"),
}
CASES = [(project, mode) for project in ("python_packaging", "quickstart-cpu") for mode in MODES] + [
    ("quickstart-cuda", "default"), ("quickstart-cuda", "zig"),
]
LIBRARIES = {  # the library each example installs, as its wheel holds it
    "python_packaging": "my_ffi_extension/{prefix}my_ffi_extension.{suffix}",
    "quickstart-cpu": "tvm_ffi_quickstart/add_one_cpu.so",
    "quickstart-cuda": "tvm_ffi_quickstart/add_one_cuda.so",
}
RUN_EXAMPLE_OUTPUT = ["=========== Example 1: add_two ===========", "3", "=========== Example 2: add_one ===========",
                      "4", "=========== Example 3: raise_error ===========",
                      "=========== Example 4: IntPair ===========", "a=1", "b=2", "sum=3"]


def _project(name: str, folder: Path) -> Path:
    if name == "python_packaging":
        return realworld.python_packaging(folder)
    return realworld.quickstart(folder, "compile_cuda" if name == "quickstart-cuda" else "compile_cpu")


def _library_member(name: str, mode: str) -> str:
    prefix, suffix = {"macos": ("lib", "dylib"), "windows": ("", "dll")}.get(mode, ("lib", "so"))
    return LIBRARIES[name].format(prefix=prefix, suffix=suffix)


@pytest.fixture(scope="module")
def built(tmp_path_factory, build_env, zig_venv):
    """(project, mode) -> (the wheel, the project folder it was built from), built once each."""
    wheels: dict[tuple[str, str], tuple[Path, Path]] = {}

    def build(name: str, mode: str) -> tuple[Path, Path]:
        if (name, mode) not in wheels:
            folder = tmp_path_factory.mktemp(f"{name} {mode}")  # a space in every path
            project = _project(name, folder)
            out = folder / "dist"
            if mode == "default":
                pip_wheel(project, out, build_env)  # isolated, as a user's pip wheel runs
            else:
                zig_venv_build(zig_venv, project, out, *MODES[mode])
            wheels[name, mode] = only_wheel(out), project
        return wheels[name, mode]

    return build


def _exports_elf(library: Path) -> set[str]:
    return {line.split()[-1] for line in run(["nm", "-D", "--defined-only", library]).stdout.splitlines()}


def _judge_linux(wheel: Path, library: Path, mode: str, scratch: Path) -> None:
    tag = wheel.name.split("-", 4)[4][: -len(".whl")]
    assert deserved_platform(wheel, scratch / "deserved") == tag
    assert_independently_valid(wheel, scratch / "valid")
    if mode == "zig":  # the backend owned the link: only tvm-ffi's entry points leave the library
        exports = _exports_elf(library)
        assert exports and all(name.startswith("__tvm_ffi_") for name in exports), sorted(exports)[:10]
        needs = run(["objdump", "-p", library]).stdout
        assert "GLIBCXX_" not in needs and "libstdc++" not in needs
        assert max(int(v) for v in re.findall(r"GLIBC_2\.(\d+)", needs)) <= 28


def _judge_macos(library: Path) -> None:
    build = next(c for c in load_commands(library) if c["cmd"] == "LC_BUILD_VERSION")
    assert (build["platform"], build["minos"]) == ("macos", "11.0")
    assert "@rpath/libtvm_ffi.dylib" in linked_libraries(library)
    assert any(path.endswith("/tvm_ffi/lib") for path in rpaths(library)), rpaths(library)
    assert signature_is_valid(library)
    output = subprocess.run([llvm_tool("llvm-nm"), "-g", "-j", "--defined-only", str(library)], check=True,
                            capture_output=True, text=True).stdout.split()
    # No operator new or delete of the libc++ linked in: nothing of the runtime leaves the library.
    assert {s for s in output if not s.startswith("___tvm_ffi_")} <= {"___dso_handle", "__mh_dylib_header"}, output


def _judge_windows(wheel: Path, library: Path, project: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.endswith((".pdb", ".lib", ".a"))], names  # no import library
    with pefile.PE(str(library), fast_load=False) as image:
        assert (image.FILE_HEADER.Machine, image.OPTIONAL_HEADER.Magic) == (0x8664, 0x20B)
        exports = {s.name.decode() for s in image.DIRECTORY_ENTRY_EXPORT.symbols if s.name}
    assert exports and all(name.startswith("__tvm_ffi_") for name in exports), exports
    package = library.relative_to(wheel.parent / "unpacked").parts[0]
    source = project / "python" / package / "__init__.py"
    shipped = (wheel.parent / "unpacked" / package / "__init__.py").read_text()
    if source.is_file():  # the package's docstring stays first, above the DLL folders block
        assert ast.get_docstring(ast.parse(shipped)) == ast.get_docstring(ast.parse(source.read_text()))


@pytest.mark.parametrize(("name", "mode"), CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_tvm_ffi_example_builds_passes_check_and_runs(built, command, fresh_venv, name, mode, tmp_path):
    if name == "quickstart-cuda" and find_nvcc(os.environ) is None:
        pytest.skip("needs nvcc")
    wheel, project = built(name, mode)
    report = json.loads(command("check", "--json", wheel).stdout)["wheels"][0]
    assert report["sound"], report["problems"]
    assert all(not binary["leaked_exports"] for binary in report["binaries"]) or mode == "default"
    member = _library_member(name, mode)
    unpacked = wheel.parent / "unpacked"
    zipfile.ZipFile(wheel).extractall(unpacked)
    library = unpacked / member
    assert library.is_file(), zipfile.ZipFile(wheel).namelist()
    if name == "quickstart-cuda":
        assert any(binary["device_code"] for binary in report["binaries"])
    if mode in ("default", "zig"):
        _judge_linux(wheel, library, mode, tmp_path)
        _run_on_linux(name, wheel, project, fresh_venv, tmp_path)
    elif mode == "macos":
        _judge_macos(library)
    else:
        _judge_windows(wheel, library, project)
        _run_under_wine(name, wheel, project, tmp_path)
    if name == "python_packaging":
        _check_stubs(wheel, project, report, cross=mode in ("macos", "windows"))


def _check_stubs(wheel: Path, project: Path, report: dict, *, cross: bool) -> None:
    """tvm_ffi_configure_target(... STUB_DIR ./python): a native build refreshes the stubs in the
    source folder, as tvm-ffi's recipe does, and ships them; a cross build leaves the step out
    and says so, and ships the stubs as they were."""
    shipped = zipfile.ZipFile(wheel).read("my_ffi_extension/_ffi_api.py")
    source = (project / "python" / "my_ffi_extension" / "_ffi_api.py").read_bytes()
    original = (realworld.EXAMPLES / "python_packaging" / "python" / "my_ffi_extension" / "_ffi_api.py").read_bytes()
    assert shipped == source
    skipped = [w for w in report["warnings"] if "STUB_DIR ./python" in w and "left out" in w]
    assert bool(skipped) == cross
    if cross:
        assert source == original


def _run_on_linux(name: str, wheel: Path, project: Path, fresh_venv, scratch: Path) -> None:
    venv = fresh_venv(f"{name}-venv")
    venv.pip_install(wheel, "numpy")
    if name == "python_packaging":
        output = venv.run(project / "run_example.py", cwd=project).stdout
        lines = [line for line in output.splitlines() if line.startswith(("=", "a=", "b=", "sum=")) or line.isdigit()]
        assert lines == RUN_EXAMPLE_OUTPUT, output
        assert "RuntimeError: This is an error" in output
        return
    site = Path(venv.run("-c", "import sysconfig; print(sysconfig.get_paths()['platlib'])").stdout.strip())
    if name == "quickstart-cpu":
        # load_numpy.py loads build/add_one_cpu.so: run it where build/ is the installed package.
        (scratch / "build").symlink_to(site / "tvm_ffi_quickstart", target_is_directory=True)
        script = project / "quickstart" / "load" / "load_numpy.py"
        assert venv.run(script, cwd=scratch).stdout.strip() == "[2. 3. 4. 5. 6.]"
        return
    # No GPU here: the CUDA kernel's library loads, every symbol bound at once, and its function is there.
    probe = ("import sys, tvm_ffi; module = tvm_ffi.load_module(sys.argv[1]); "
             "print(type(module.add_one_cuda).__name__)")
    loaded = venv.run("-c", probe, site / "tvm_ffi_quickstart" / "add_one_cuda.so", env={"LD_BIND_NOW": "1"})
    assert loaded.stdout.strip() == "Function"


# The quickstart's load_numpy.py without numpy, which does not import under wine: the same
# call on a float32 vector tvm-ffi takes as a tensor.
LOAD_WITHOUT_NUMPY = DLPACK_HELPERS + r'''
import tvm_ffi
mod = tvm_ffi.load_module(LIBRARY)
x, _ = make_vector([1, 2, 3, 4, 5])
y, read_y = make_vector([0, 0, 0, 0, 0])
mod.add_one_cpu(x, y)
print(read_y())
'''


def _run_under_wine(name: str, wheel: Path, project: Path, scratch: Path) -> None:
    if find_wine() is None:
        return  # judged above; running needs wine (Debian: apt-get install wine wine64)
    facts = json.loads(zipfile.ZipFile(wheel).read(
        next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith("tvmffi_wheel.json"))))
    python = windows_python(tvm_ffi_version=facts["tvm_ffi_version"])
    site = python.install(wheel, scratch / "site")
    if name == "python_packaging":
        result = python.run((project / "run_example.py").read_text(), site)
        lines = [line for line in result.stdout.splitlines() if line.startswith(("=", "a=", "b=", "sum="))
                 or line.isdigit()]
        assert lines == RUN_EXAMPLE_OUTPUT, f"{result.stdout}\n{result.stderr[-3000:]}"
        assert "RuntimeError: This is an error" in result.stderr
        return
    script = f"LIBRARY = {windows_path(site / 'tvm_ffi_quickstart' / 'add_one_cpu.so')!r}\n" + LOAD_WITHOUT_NUMPY
    result = python.run(script, site)
    assert result.stdout.strip() == "[2.0, 3.0, 4.0, 5.0, 6.0]", f"{result.stdout}\n{result.stderr[-3000:]}"
