"""macOS and Windows decisions on synthetic facts: classification, tags, run paths, the
signature check, the DLL folders block, the MSVC mangling; no compiler, no download."""

from __future__ import annotations

import dataclasses
import hashlib
import struct

import pytest
from synthetic import facts

from tvmffi_wheel.common.tvm_ffi_releases import tvm_ffi_symbol_abi
from tvmffi_wheel.deciding.classify import Classifier, Kind, is_never_vendored
from tvmffi_wheel.deciding.plan import plan_repair
from tvmffi_wheel.deciding.platforms import LINUX, MACOS, WINDOWS, check_architecture
from tvmffi_wheel.deciding.platforms.macos import macos_platform_tag, tag_version
from tvmffi_wheel.deciding.runpath import planned_run_path
from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting.binary import binary_format
from tvmffi_wheel.inspecting.facts import CodeSignature
from tvmffi_wheel.inspecting.library_finder import LibraryFinder
from tvmffi_wheel.inspecting.macho import code_signature
from tvmffi_wheel.inspecting.wheel import WheelBinary
from tvmffi_wheel.writing.dll_folders import dll_folder_block, with_dll_folders

SIGNED = CodeSignature(ad_hoc=True)


def macho(path: str, needed: tuple[str, ...] = ("@rpath/libtvm_ffi.dylib", "/usr/lib/libSystem.B.dylib"),
          **changes: object) -> WheelBinary:
    base = dataclasses.replace(facts(needed=needed), format="macho", architecture="arm64",
                               minimum_os="11.0", code_signature=SIGNED)
    return WheelBinary(path, dataclasses.replace(base, **changes))  # type: ignore[arg-type]


def pe(path: str, needed: tuple[str, ...] = ("tvm_ffi.dll", "KERNEL32.dll"), **changes: object) -> WheelBinary:
    base = dataclasses.replace(facts(needed=needed), format="pe", architecture="amd64")
    return WheelBinary(path, dataclasses.replace(base, **changes))  # type: ignore[arg-type]


def classifier_for(*binaries: WheelBinary) -> Classifier:
    return Classifier.for_wheel([(b.path, b.facts) for b in binaries], distribution="pkg", excludes=())


@pytest.mark.parametrize(("name", "kind"), [
    ("@rpath/libtvm_ffi.dylib", Kind.TVM_FFI),
    ("/usr/lib/libc++.1.dylib", Kind.SYSTEM),
    ("/System/Library/Frameworks/Accelerate.framework/Versions/A/Accelerate", Kind.SYSTEM),
    ("@rpath/libgreeting.dylib", Kind.NOT_PROVIDED),
    ("/opt/homebrew/lib/libomp.dylib", Kind.NOT_PROVIDED),
])
def test_macos_names(name: str, kind: Kind) -> None:
    assert classifier_for(macho("pkg/libk.dylib")).kind(name) is kind


@pytest.mark.parametrize(("name", "kind"), [
    ("tvm_ffi.dll", Kind.TVM_FFI),
    ("TVM_FFI.DLL", Kind.TVM_FFI),
    ("KERNEL32.dll", Kind.SYSTEM),
    ("api-ms-win-crt-runtime-l1-1-0.dll", Kind.SYSTEM),
    ("VCRUNTIME140_1.dll", Kind.SYSTEM),  # CPython ships it
    ("MSVCP140.dll", Kind.NOT_PROVIDED),  # CPython does not: vendored, as apache-tvm-ffi does
    ("nvcuda.dll", Kind.CUDA_DRIVER),
    ("cudart64_13.dll", Kind.CUDA_DRIVER),
    ("python313.dll", Kind.PYTHON),
])
def test_windows_names(name: str, kind: Kind) -> None:
    assert classifier_for(pe("pkg/k.dll")).kind(name) is kind


def test_windows_finds_wheel_members_whatever_the_case() -> None:
    classifier = classifier_for(pe("pkg/k.dll", needed=("HELPER.dll",)), pe("pkg/helper.dll", needed=()))
    assert classifier.kind("HELPER.dll") is Kind.IN_WHEEL


@pytest.mark.parametrize("name", ["libtvm_ffi.dylib", "tvm_ffi.dll", "nvcuda.dll", "cublasLt64_13.dll"])
def test_never_vendored_on_every_system(name: str) -> None:
    assert is_never_vendored(name)


def test_mixed_systems_are_refused() -> None:
    with pytest.raises(TvmFfiWheelError, match="mixes binaries for several operating systems"):
        classifier_for(macho("pkg/a.dylib"), pe("pkg/b.dll"))


@pytest.mark.parametrize(("minimum", "tag"), [("11.0", "macosx_11_0_arm64"), ("11.3", "macosx_12_0_arm64"),
                                              ("14.0", "macosx_14_0_arm64")])
def test_macos_tag_from_the_highest_minimum(minimum: str, tag: str) -> None:
    binaries = [macho("pkg/a.dylib"), macho("pkg/b.dylib", minimum_os=minimum)]
    assert macos_platform_tag(binaries, "arm64", None)[0] == tag


def test_deployment_target_raises_but_never_lowers() -> None:
    binaries = [macho("pkg/a.dylib", minimum_os="12.0")]
    assert macos_platform_tag(binaries, "arm64", "13.0")[0] == "macosx_13_0_arm64"
    lowered = r"MACOSX_DEPLOYMENT_TARGET is 11.0, but pkg/a.dylib .* needs macOS 12.0"
    with pytest.raises(TvmFfiWheelError, match=lowered):
        macos_platform_tag(binaries, "arm64", "11.0")
    assert tag_version((10, 15)) == (10, 15)


def test_macos_binary_problems() -> None:
    assert MACOS.binary_problems("a", macho("a").facts) == []
    unsigned = macho("a", code_signature=None).facts
    assert "no code signature" in MACOS.binary_problems("a", unsigned)[0]
    broken = macho("a", code_signature=CodeSignature(True, "the hash of page 3 does not match")).facts
    assert "signature is broken (the hash of page 3" in MACOS.binary_problems("a", broken)[0]
    absolute = macho("a", needed=("/Users/me/venv/tvm_ffi/lib/libtvm_ffi.dylib",)).facts
    assert "links libtvm_ffi by the path /Users/me/venv" in MACOS.binary_problems("a", absolute)[0]


def test_macos_run_paths_use_loader_path() -> None:
    assert planned_run_path("pkg/sub/libk.dylib", (), ["tvm_ffi/lib"], "@loader_path") == (
        "@loader_path/../../tvm_ffi/lib",)
    kept = planned_run_path("pkg/libk.dylib", ("@loader_path/../tvm_ffi/lib", "/Users/me/build"),
                            ["tvm_ffi/lib"], "@loader_path")
    assert kept == ("@loader_path/../tvm_ffi/lib",)


def test_a_repair_plan_on_macos_and_windows() -> None:
    finder = LibraryFinder([])
    kernel = macho("pkg/libk.dylib")
    plan = plan_repair([kernel], classifier_for(kernel), plat="", finder=finder)
    assert plan.platform_tags == ("macosx_11_0_arm64",)
    assert plan.run_paths == {"pkg/libk.dylib": ("@loader_path/../tvm_ffi/lib",)}
    dll = pe("pkg/k.dll")
    plan = plan_repair([dll], classifier_for(dll), plat="", finder=finder)
    assert (plan.platform_tags, plan.run_paths, plan.dll_folders) == (("win_amd64",), {}, ("tvm_ffi/lib",))
    with pytest.raises(TvmFfiWheelError, match="`plat` is 'win32'"):
        plan_repair([dll], classifier_for(dll), plat="win32", finder=finder)


def test_a_missing_library_names_where_it_was_searched() -> None:
    kernel = macho("pkg/libk.dylib", needed=("@rpath/libgreeting.dylib",))
    searched = r"libgreeting.dylib, which cannot be found .*searched its run paths and install names"
    with pytest.raises(TvmFfiWheelError, match=searched):
        plan_repair([kernel], classifier_for(kernel), plat="", finder=LibraryFinder([]))


def test_vendored_names_keep_the_suffix() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    short = digest[:8]
    assert MACOS.vendored_names("@rpath/libgreeting.dylib", digest) == (
        f"libgreeting-{short}.dylib", f"@rpath/libgreeting-{short}.dylib")
    assert WINDOWS.vendored_names("greeting.dll", digest) == (f"greeting-{short}.dll", f"greeting-{short}.dll")
    assert LINUX.vendored_names("libgomp.so.1", digest) == (f"libgomp-{short}.so.1", f"libgomp-{short}.so.1")


@pytest.mark.parametrize(("tag", "binary", "message"), [
    ("manylinux_2_28_x86_64", macho("pkg/a.dylib"), "a Linux platform, but its binaries are Mach-O files for macOS"),
    ("win_amd64", macho("pkg/a.dylib"), "a Windows platform, but its binaries are Mach-O files for macOS"),
    ("macosx_11_0_universal2", macho("pkg/a.dylib"),
     "tagged macosx_11_0_universal2, but its binaries are built for arm64"),
    ("win_amd64", pe("pkg/a.dll", architecture="x86"), "tagged win_amd64, but its binaries are built for x86"),
])
def test_tag_against_binaries(tag: str, binary: WheelBinary, message: str) -> None:
    with pytest.raises(TvmFfiWheelError, match=message):
        check_architecture((tag,), [binary])


def test_formats_by_their_first_bytes() -> None:
    pe_head = bytearray(256)
    pe_head[:2] = b"MZ"
    pe_head[0x3C:0x40] = struct.pack("<I", 0x80)
    pe_head[0x80:0x84] = b"PE\0\0"
    assert binary_format(bytes(pe_head)) == "pe"
    assert binary_format(b"\xcf\xfa\xed\xfe" + bytes(28)) == "macho"
    assert binary_format(b"\xca\xfe\xba\xbe\x00\x00\x00\x02") == "macho"  # fat
    assert binary_format(b"\xca\xfe\xba\xbe\x00\x00\x00\x34") is None  # a Java class file
    assert binary_format(b"MZ" + bytes(100)) is None


def test_msvc_and_macos_symbols() -> None:
    assert tvm_ffi_symbol_abi("?Stringify@json@ffi@tvm@@YA?AVString@23@AEBVAny@23@@Z") == "c++"
    assert tvm_ffi_symbol_abi("??0Error@ffi@tvm@@QEAA@XZ") == "c++"
    assert tvm_ffi_symbol_abi("?other@ns@@YAXXZ") is None
    assert tvm_ffi_symbol_abi("TVMFFIFunctionCall") == "c"
    assert (LINUX.abi_table_key("x86_64"), MACOS.abi_table_key("arm64")) == ("x86_64", "macos-arm64")


def _signed(code: bytes, page_log2: int = 12) -> bytes:
    """``code`` followed by an ad hoc signature over it, as a linker writes one."""
    page = 1 << page_log2
    hashes = b"".join(hashlib.sha256(code[i : i + page]).digest() for i in range(0, len(code), page))
    identifier = b"k\0"
    header = 44
    directory = struct.pack(">IIIIIIIIIBBBBI", 0xFADE0C02, header + len(identifier) + len(hashes), 0x20400,
                            0x20002, header + len(identifier), header, 0, len(hashes) // 32, len(code), 32, 2,
                            0, page_log2, 0) + identifier + hashes
    superblob = struct.pack(">III", 0xFADE0CC0, 20 + len(directory), 1) + struct.pack(">II", 0, 20)
    return code + superblob + directory


def test_code_signature_pages_are_checked() -> None:
    code = bytes(range(256)) * 40  # 10240 bytes: three pages, the last one short
    data = _signed(code)
    assert code_signature(data, len(code), len(data) - len(code)) == CodeSignature(True)
    changed = bytearray(data)
    changed[5000] ^= 1
    signature = code_signature(bytes(changed), len(code), len(data) - len(code))
    assert signature.problem.startswith("the hash of page 1 (bytes 4096 to 8192)")
    assert "outside the file" in code_signature(data, len(data), 100).problem


def test_dll_folders_block_is_replaced_not_repeated() -> None:
    block = dll_folder_block("pkg", ("tvm_ffi/lib", "pkg.libs"), "tvm_ffi/lib")
    assert "('../pkg.libs',)" in block and "if True:" in block
    source = "from __future__ import annotations\nimport os\n"
    once = with_dll_folders(source, block)
    assert once.startswith("from __future__ import annotations\n# begin tvmffi-wheel")
    assert with_dll_folders(once, block) == once
    compile(once, "__init__.py", "exec")


def test_systems_spell_names() -> None:
    assert MACOS.file_name("@rpath/libtvm_ffi.dylib") == "libtvm_ffi.dylib"
    assert WINDOWS.key_of("KERNEL32.dll") == "kernel32.dll"
