"""One export rule for every binary format (common/symbols.py): which exported symbols belong to a
C++ runtime, what a library carrying its own runtime may export, and the version script the zig
link applies. Judged on synthetic facts, and on a version script that the system's linker runs."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path
from typing import Literal

import pytest
from synthetic import binary

from tvmffi_wheel.common.symbols import is_cxx_symbol, is_runtime_symbol, runtime_version_script
from tvmffi_wheel.deciding.abi import tvm_ffi_imports
from tvmffi_wheel.deciding.private_runtime import check_private_runtime
from tvmffi_wheel.deciding.verify import leaked_exports
from tvmffi_wheel.errors import TvmFfiWheelError

# Names as the readers give them: ELF's as they are, Mach-O's without their leading underscore.
RUNTIME = [
    "_ZNSt6vectorIlSaIlEE17_M_realloc_insertIJRKlEEEvN9__gnu_cxx17__normal_iteratorIPlS1_EEDpOT_",  # libstdc++
    "_ZNSt3__112basic_stringIcNS_11char_traitsIcEENS_9allocatorIcEEEC2B9nie220108EPKcm",  # libc++ (std::__1)
    "_ZNKSt3__16vectorIiNS_9allocatorIiEEE4sizeEv", "_ZNSs4_Rep10_M_destroyERKSaIcE",
    "_ZNKSbIwSt11char_traitsIwESaIwEE4sizeEv",
    "_ZNSo5flushEv", "_ZTISt9bad_alloc", "_ZTVNSt3__19basic_iosIcNS_11char_traitsIcEEEE", "_ZTTSo",
    "_ZThn16_NSdD1Ev", "_ZTv0_n24_NSiD0Ev", "_ZGVZNSt8ios_base4InitC4EvE20__ioinit_initialized",
    "_ZZNSt3__16vectorIiE12emplace_backEvENKUlvE_clEv", "_ZSt9terminatev",
    "_ZN9__gnu_cxx27__verbose_terminate_handlerEv",
    "_ZN10__cxxabiv117__class_type_infoD2Ev", "_ZGTtNKSt11logic_error4whatEv", "_Z20_txnal_cow_string_D1Pv",
    "_Znwm", "_ZnamSt11align_val_t", "_ZdlPvm", "_ZdaPv",  # operator new and delete (Mach-O: __Znwm ...)
    "__cxa_throw", "__gxx_personality_v0", "_Unwind_Resume", "__unw_getcontext", "__dynamic_cast",
    "__gcclibcxx_demangle_callback",
    "??2@YAPEAX_K@Z", "??3@YAXPEAX@Z", "?_Xlength_error@std@@YAXPEBD@Z",  # MSVC's new, delete, std::
]
OWN = ["__tvm_ffi_add_one", "plain_c_api", "_ZN4mine6helperEi", "_ZNK4mine3StdEv", "_ZN5Stuff1fEv",
       "_ZN3tvm3ffi5ErrorD1Ev", "__dso_handle", "_mh_dylib_header", "?helper@mine@@YAHH@Z"]


@pytest.mark.parametrize("name", RUNTIME)
def test_runtime_symbols_of_every_format(name: str) -> None:
    assert is_runtime_symbol(name)


@pytest.mark.parametrize("name", OWN)
def test_a_librarys_own_symbols_are_not_the_runtimes(name: str) -> None:
    assert not is_runtime_symbol(name)


def test_cxx_names_are_told_from_c_names() -> None:
    assert is_cxx_symbol("_ZN4mine6helperEi") and is_cxx_symbol("?helper@mine@@YAHH@Z")
    assert not is_cxx_symbol("__tvm_ffi_add_one") and not is_cxx_symbol("plain_c_api")


@pytest.mark.parametrize("file_format", ["elf", "macho", "pe"])
def test_check_applies_the_same_rule_to_every_format(file_format: Literal["elf", "macho", "pe"]) -> None:
    kernel = binary("pkg/libk.so", exports=["__tvm_ffi_add_one", "_Znwm", "_ZdlPv", "plain_c_api"])
    facts = dataclasses.replace(kernel.facts, format=file_format)
    assert leaked_exports(facts, frozenset()) == ["_ZdlPv", "_Znwm"]


def _private(exports: list[str], file_format: Literal["elf", "macho", "pe"] = "elf") -> None:
    kernel = binary("pkg/libk.so", exports=exports)
    kernel = dataclasses.replace(kernel, facts=dataclasses.replace(kernel.facts, format=file_format))
    check_private_runtime([kernel], tvm_ffi_imports([kernel]), "LLVM's libc++ (zig's, static)")


@pytest.mark.parametrize("file_format", ["elf", "macho"])
def test_a_private_runtime_allows_entry_points_and_c_functions(file_format: Literal["elf", "macho"]) -> None:
    _private(["__tvm_ffi_add_one", "plain_c_api", "__dso_handle", "_mh_dylib_header"], file_format)


@pytest.mark.parametrize("file_format", ["elf", "macho"])
def test_a_private_runtime_that_leaks_names_the_project_version_script(file_format: Literal["elf", "macho"]) -> None:
    with pytest.raises(TvmFfiWheelError) as refused:
        _private(["__tvm_ffi_add_one", "_Znwm"], file_format)
    assert "exports 1 symbols of the C++ runtime it carries" in refused.value.problem
    assert "local: *;" in (refused.value.fix or "")


def test_a_cxx_interface_of_its_own_cannot_leave_a_private_runtime() -> None:
    with pytest.raises(TvmFfiWheelError) as refused:
        _private(["__tvm_ffi_add_one", "_ZN4mine6helperEi"])
    assert "exports C++ symbols: _ZN4mine6helperEi" in refused.value.problem
    assert 'extern "C"' in (refused.value.fix or "") and 'toolchain = "system"' in (refused.value.fix or "")


def test_the_version_script_hides_the_runtime_and_keeps_the_rest(tmp_path: Path) -> None:
    """The script as the zig link gets it, run by the system's linker (GNU ld takes the same
    globs as lld) on a library whose sources instantiate libstdc++'s templates."""
    script = tmp_path / "runtime.map"
    script.write_text(runtime_version_script())
    source = tmp_path / "k.cc"
    source.write_text('#include <string>\n#include <vector>\n'
                      'extern "C" int __tvm_ffi_k(int n) {\n'
                      '  std::vector<std::string> v(n, "x"); return (int)v.size();\n}\n'
                      'extern "C" int plain_c_api(int x) { return x; }\n'
                      'namespace mine { int helper(int x) { return x; } }\n')
    library = tmp_path / "libk.so"
    subprocess.run(["g++", "-shared", "-fPIC", "-O1", str(source), f"-Wl,--version-script={script}", "-o",
                    str(library)], check=True)
    exports = {line.split()[-1] for line in subprocess.run(["nm", "-D", "--defined-only", str(library)], check=True,
                                                           capture_output=True, text=True).stdout.splitlines()}
    assert {"__tvm_ffi_k", "plain_c_api", "_ZN4mine6helperEi"} <= exports
    assert not [name for name in exports if is_runtime_symbol(name)], sorted(exports)
