"""Fuzzing the readers: any bytes give a result or our error type, never another exception."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import tempfile
import zipfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting.elf import read_elf_facts
from tvmffi_wheel.inspecting.elf_stream import read_streamed_facts
from tvmffi_wheel.inspecting.wheel import inspect_wheel
from tvmffi_wheel.inspecting.wheel_reader import WheelArchive

# A bounded, fixed budget in the suite (the same examples every run, so it cannot pass one
# day and fail the next); FUZZ_EXAMPLES=5000 for a longer, random run by hand.
BUDGET = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "120")),
    derandomize="FUZZ_EXAMPLES" not in os.environ,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _small_library() -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "k.c"
        source.write_text("#include <string.h>\nvoid f(char* d, const char* s) { memcpy(d, s, 8); }\n")
        subprocess.run(["cc", "-shared", "-fPIC", "-o", f"{tmp}/k.so", str(source)], check=True)
        return Path(f"{tmp}/k.so").read_bytes()


LIBRARY = _small_library()


def _wheel_bytes(library: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("demo/libk.so", library)
        archive.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
        archive.writestr("demo-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nTag: py3-none-linux_x86_64\n")
        archive.writestr("demo-1.0.dist-info/RECORD", "")
    return buffer.getvalue()


WHEEL = _wheel_bytes(LIBRARY)


def mutated(original: bytes) -> st.SearchStrategy[bytes]:
    """The original with a few bytes overwritten, cut short, or both."""

    def apply(edits: list[tuple[int, int]], cut: int | None) -> bytes:
        data = bytearray(original)
        for position, value in edits:
            data[position % len(data)] = value
        return bytes(data[:cut] if cut else data)

    return st.builds(
        apply,
        st.lists(st.tuples(st.integers(0, len(original) - 1), st.integers(0, 255)), max_size=12),
        st.one_of(st.none(), st.integers(1, len(original))),
    )


def elf_facts_or_our_error(data: bytes, tmp: Path) -> None:
    path = tmp / "libx.so"
    path.write_bytes(data)
    with contextlib.suppress(TvmFfiWheelError):
        read_elf_facts(path, "libx.so")
    with contextlib.suppress(TvmFfiWheelError):
        read_streamed_facts([data[i : i + 4096] for i in range(0, len(data), 4096)], "libx.so")


@BUDGET
@given(data=mutated(LIBRARY))
def test_elf_reader_on_mutated_libraries(data):
    with tempfile.TemporaryDirectory() as tmp:
        elf_facts_or_our_error(data, Path(tmp))


@BUDGET
@given(data=st.binary(max_size=512).map(lambda tail: b"\x7fELF" + tail))
def test_elf_reader_on_random_bytes_behind_the_magic(data):
    with tempfile.TemporaryDirectory() as tmp:
        elf_facts_or_our_error(data, Path(tmp))


def wheel_or_our_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "demo-1.0-py3-none-linux_x86_64.whl"
        path.write_bytes(data)
        with contextlib.suppress(TvmFfiWheelError), WheelArchive(path) as archive:
            inspect_wheel(archive, Path(tmp) / "scratch", strict=False)


@BUDGET
@given(data=mutated(WHEEL))
def test_wheel_reader_on_mutated_wheels(data):
    wheel_or_our_error(data)


@BUDGET
@given(data=st.binary(max_size=2048))
def test_wheel_reader_on_random_bytes(data):
    wheel_or_our_error(data)


def test_the_unmutated_inputs_are_readable(tmp_path):
    """The inputs the fuzzers mutate are read without any error, ours included: otherwise
    every mutation would be rejected up front and the fuzzing would test nothing."""
    path = tmp_path / "demo-1.0-py3-none-linux_x86_64.whl"
    path.write_bytes(WHEEL)
    with WheelArchive(path) as archive:
        inspection = inspect_wheel(archive, tmp_path / "scratch", strict=False)
    assert [b.path for b in inspection.binaries] == ["demo/libk.so"]
    assert "f" in inspection.binaries[0].facts.exports
    # Its RECORD is empty on purpose, so the RECORD check is fuzzed too.
    assert inspection.record_problems == [
        f"{name} is not listed in RECORD"
        for name in ("demo/libk.so", "demo-1.0.dist-info/METADATA", "demo-1.0.dist-info/WHEEL")
    ]
    library = tmp_path / "libk.so"
    library.write_bytes(LIBRARY)
    assert "f" in read_elf_facts(library, "libk.so").exports
    streamed = read_streamed_facts([LIBRARY[i : i + 4096] for i in range(0, len(LIBRARY), 4096)], "libk.so")
    assert streamed == read_elf_facts(library, "libk.so")
