"""Facts read from a stream keep only a few byte ranges, and must equal a full read."""

import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tvmffi_wheel.common._auditwheel import system_library_dirs
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


def _device_code_blob() -> bytes:
    """A fatbin container with one sm_90 cubin entry, then a bare cubin's ELF header (sm_80)."""
    entry = bytearray(64)
    struct.pack_into("<HHIQ", entry, 0, 2, 0x0101, 64, 16)  # kind 2 (cubin), header size, payload size
    struct.pack_into("<I", entry, 28, 90)
    fatbin = struct.pack("<IHHQ", 0xBA55ED50, 1, 16, 64 + 16) + bytes(entry) + bytes(16)
    cubin = bytearray(64)
    cubin[:9] = b"\x7fELF\x02\x01\x013\x08"  # 64-bit, little-endian, CUDA's OS/ABI, ABI version 8
    struct.pack_into("<H", cubin, 18, 190)  # EM_CUDA
    struct.pack_into("<I", cubin, 48, 80 << 8)
    return b"\x11" * 5 + fatbin + b"\x22" * 3 + bytes(cubin)


def test_device_code_is_found_wherever_a_chunk_boundary_cuts_its_header(tmp_path):
    # Past the first 64 KiB, which the stream reader takes in one piece whatever the chunks.
    (tmp_path / "blob.bin").write_bytes(bytes(100_000) + _device_code_blob())
    (tmp_path / "d.c").write_text(
        '__asm__(".section .rodata.blob,\\"a\\"\\n.incbin \\"blob.bin\\"\\n.previous\\n");\n'
        "int f(void) { return 1; }\n"
    )
    library = tmp_path / "libd.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", library, "d.c"], check=True, cwd=tmp_path)
    data = library.read_bytes()
    whole = read_elf_facts(library, "libd.so")
    assert sorted((i.kind, i.arch) for i in whole.device_code) == [("sass", 80), ("sass", 90)]
    for needle in (b"P\xedU\xba", b"\x7fELF\x02\x01\x013"):
        start = data.index(needle, 64 << 10)
        for cut in range(start + 1, start + 9):  # each byte of the needle on either side of a boundary
            streamed = read_streamed_facts(iter([data[:cut], data[cut:]]), "libd.so")
            assert streamed is not None and streamed.device_code == whole.device_code, (needle, cut - start)
