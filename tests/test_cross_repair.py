"""`repair` on kernel wheels cross-compiled for macOS and Windows by zig (cross_kernels.py),
each linking a second, non-system library that the repair vendors from --lib-path. The
macOS result is judged with LLVM's tools and the tests' own page-hash check; the Windows
one is installed into a Windows CPython under wine, which imports it and calls its kernels."""

from __future__ import annotations

import json
import zipfile

from cross_kernels import CrossWheel
from macho_tools import linked_libraries, rpaths, signature_is_valid, undefined_symbols
from windows_python import DLPACK_HELPERS, requires_wine, windows_python


def _repaired(command, built: CrossWheel, out, platform: str, helper: str) -> tuple:
    """The repaired wheel and its members, checked for its tag and its one vendored library
    (``helper``: the start of its file name) in example_kernels.libs/."""
    command("repair", "-w", out, "--lib-path", built.helper_dir, built.wheel)
    wheel = next(out.glob("*.whl"))
    assert wheel.name.endswith(f"-py3-none-{platform}.whl")
    names = zipfile.ZipFile(wheel).namelist()
    vendored = [n for n in names if n.startswith("example_kernels.libs/")]
    assert len(vendored) == 1 and vendored[0].startswith(f"example_kernels.libs/{helper}-"), names
    return wheel, names, vendored[0]


def test_repair_vendors_a_dylib_on_macos(command, macos_cross_wheels, tmp_path):
    built = macos_cross_wheels[1]  # with the helper library
    wheel, _, vendored = _repaired(command, built, tmp_path / "out", "macosx_11_0_arm64", "libgreeting")
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(wheel).extractall(unpacked)
    kernel, helper = unpacked / built.library_member, unpacked / vendored
    new_name = "@rpath/" + vendored.split("/")[1]
    assert new_name in linked_libraries(kernel) and "@rpath/libtvm_ffi.dylib" in linked_libraries(kernel)
    assert linked_libraries(helper)[0] == new_name  # its own install name
    assert sorted(rpaths(kernel)) == ["@loader_path/../example_kernels.libs", "@loader_path/../tvm_ffi/lib"]
    assert signature_is_valid(kernel) and signature_is_valid(helper)
    from_tvm_ffi = [s for s, library in undefined_symbols(kernel).items() if library == "libtvm_ffi"]
    assert from_tvm_ffi and all(s.startswith("_TVMFFI") for s in from_tvm_ffi), from_tvm_ffi
    report = json.loads(command("check", "--json", wheel).stdout)["wheels"][0]
    assert report["sound"] and report["deserved_platform"] == "macosx_11_0_arm64"
    command("repair", "-w", tmp_path / "again", wheel)
    assert (tmp_path / "again" / wheel.name).read_bytes() == wheel.read_bytes()


CALL_KERNELS = DLPACK_HELPERS + r'''
import example_kernels

x, read_x = make_vector([1.0, 2.0, 3.0])
out, read_out = make_vector([0.0, 0.0, 0.0])
example_kernels.add_one(x, out)
print("add_one", read_out())
print("total", example_kernels.total(x))
print("greeting_scale", example_kernels.greeting_scale(2))
'''


@requires_wine
def test_repaired_windows_wheel_runs_under_wine(command, windows_cross_wheels, tmp_path):
    built = windows_cross_wheels[1]  # with the helper library
    wheel, names, _ = _repaired(command, built, tmp_path / "out", "win_amd64", "greeting")
    assert not [n for n in names if n.lower().endswith("tvm_ffi.dll")]
    command("check", wheel)
    python = windows_python(tvm_ffi_version=built.tvm_ffi_version)
    site = python.install(wheel, tmp_path / "site")
    result = python.run(CALL_KERNELS, site)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"
    assert result.stdout.splitlines() == ["add_one [2.0, 3.0, 4.0]", "total 6.0", "greeting_scale 84.0"], (
        result.stderr[-4000:]
    )
