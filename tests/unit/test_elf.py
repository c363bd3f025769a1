"""ELF facts read from small libraries compiled on the spot with the system compiler."""

import subprocess
import sysconfig
from pathlib import Path

import pytest

from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting.elf import read_elf_facts


def compile_library(tmp_path: Path, source: str, *flags: str, name="libdemo.so") -> Path:
    source_file = tmp_path / "demo.c"
    source_file.write_text(source)
    output = tmp_path / name
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-o", str(output), str(source_file), *flags], check=True
    )
    return output


def test_needed_soname_runpath_and_symbol_versions(tmp_path):
    library = compile_library(
        tmp_path,
        "#include <string.h>\n#include <math.h>\n"
        "void copy(char* d, const char* s, size_t n) { memcpy(d, s, n); }\n"
        "double root(double x) { return sqrt(x); }\n",
        "-Wl,-soname,libdemo.so.1",
        "-Wl,-rpath,$ORIGIN/../lib:/abs/dir",
        "-lm",
    )
    facts = read_elf_facts(library, "libdemo.so")
    assert facts.install_name == "libdemo.so.1"
    assert "libc.so.6" in facts.needed
    assert facts.run_paths == ("$ORIGIN/../lib", "/abs/dir")
    assert (facts.format, facts.architecture) == ("elf", "x86_64")
    memcpy = [n for n in facts.import_versions if "memcpy" in n.symbols]
    assert memcpy and memcpy[0].library == "libc.so.6"
    assert memcpy[0].version.startswith("GLIBC_2.")
    assert facts.python_c_api == ()


def test_python_c_api_imports_are_found(tmp_path):
    include = sysconfig.get_paths()["include"]
    library = compile_library(
        tmp_path,
        "#include <Python.h>\nPyObject* f(long x) { return PyLong_FromLong(x); }\n",
        f"-I{include}",
    )
    assert read_elf_facts(library, "ext.so").python_c_api == ("PyLong_FromLong",)


def test_damaged_elf_is_a_clear_error(tmp_path):
    damaged = tmp_path / "bad.so"
    damaged.write_bytes(b"\x7fELF" + b"\x02\x01\x01" + b"\x00" * 20)
    with pytest.raises(TvmFfiWheelError, match=r"bad\.so looks like an ELF file but cannot be read"):
        read_elf_facts(damaged, "bad.so")
