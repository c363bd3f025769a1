"""Facts read from a stream keep only a few byte ranges, and must equal a full read."""

import random
import subprocess
import sys
from pathlib import Path

import pytest

from tvmffi_wheel.deciding._auditwheel import system_library_dirs
from tvmffi_wheel.inspecting import elf_stream
from tvmffi_wheel.inspecting.elf import read_elf_facts
from tvmffi_wheel.inspecting.elf_stream import read_streamed_facts


def chunks_of(path: Path, size: int):
    with path.open("rb") as stream:
        while block := stream.read(size):
            yield block


def system_library(name: str) -> Path:
    for directory in system_library_dirs():
        if (Path(directory) / name).is_file():
            return (Path(directory) / name).resolve()
    pytest.skip(f"{name} not found")


@pytest.fixture(scope="module")
def built_library(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("lib")
    (folder / "k.c").write_text(
        "#include <string.h>\n#include <math.h>\n"
        "const char blob[3 << 20] = {1};  /* exported: kept, and 3 MB of .rodata */\n"
        "double f(double x, char* o) { memcpy(o, blob, 8); return sqrt(x); }\n"
    )
    library = folder / "libk.so"
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-O2", "-o", library, folder / "k.c", "-lm",
         "-Wl,-rpath,$ORIGIN/../tvm_ffi/lib", "-Wl,-soname,libk.so.1"],
        check=True,
    )
    return library


@pytest.mark.parametrize("chunk", [997, 1 << 20])
@pytest.mark.parametrize("which", ["built", "libc.so.6", "libstdc++.so.6", "python"])
def test_streamed_facts_equal_a_full_read(built_library, which, chunk):
    path = {
        "built": lambda: built_library,
        "python": lambda: Path(sys.executable).resolve(),
    }.get(which, lambda: system_library(which))()
    streamed = read_streamed_facts(chunks_of(path, chunk), str(path))
    assert streamed is not None, "this ordinary layout should not need the fallback"
    assert streamed == read_elf_facts(path, str(path))


def test_a_range_that_was_not_kept_means_fallback(built_library, monkeypatch):
    # With no window after the loaded segments, .comment is not kept.
    monkeypatch.setattr(elf_stream, "_WINDOW", 0)
    assert read_streamed_facts(chunks_of(built_library, 4096), "libk.so") is None


def test_not_elf_is_none():
    assert read_streamed_facts([b"#!/bin/sh\necho hi\n"], "script") is None


def test_sparse_file_reads_only_kept_ranges():
    sparse = elf_stream.SparseFile({0: b"abcdef", 10: b"xyz"}, 13)
    sparse.seek(2)
    assert sparse.read(3) == b"cde"
    sparse.seek(11)
    assert sparse.read(2) == b"yz"
    sparse.seek(5)
    with pytest.raises(elf_stream.NotCaptured):
        sparse.read(6)
    assert sparse.missed


@pytest.mark.parametrize("use_memmem", [True, False], ids=["memmem", "bytes.find"])
def test_magic_search_finds_every_occurrence_with_and_without_memmem(
    monkeypatch: pytest.MonkeyPatch, use_memmem: bool
) -> None:
    from tvmffi_wheel.inspecting import _memsearch

    if use_memmem and _memsearch._MEMMEM is None:
        pytest.skip("this C library has no memmem")
    if not use_memmem:
        monkeypatch.setattr(_memsearch, "_MEMMEM", None)
    rng = random.Random(7)
    buffer = bytearray(rng.randbytes(1 << 16))
    for at in (0, 5, 9, 4000, len(buffer) - 4):  # 5 and 9 overlap
        buffer[at : at + 4] = b"\x7fELF"
    buffer[100:104] = b"P\xedU\xba"
    data = bytes(buffer)
    for needle in (b"\x7fELF", b"P\xedU\xba", b"\x00"):
        expected = [i for i in range(len(data) - len(needle) + 1) if data.startswith(needle, i)]
        assert _memsearch.find_all(data, needle) == expected
    assert _memsearch.find_all(b"", b"\x7fELF") == []
