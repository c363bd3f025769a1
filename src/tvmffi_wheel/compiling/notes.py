"""What happens inside CMake that the backend must report: lines in a file of the build's.

The compiler wrappers (zig_wrappers.py) and the CMake code tvmffi-wheel generates (tvm_ffi.py)
append a line to the file `$TVMFFI_WHEEL_NOTES` names; after CMake ran, the backend turns each
into one message of its own, which CMake's output would otherwise bury.
"""

from __future__ import annotations

from pathlib import Path

NOTES_VARIABLE = "TVMFFI_WHEEL_NOTES"
# The CUDA host compiler of a build that cannot build CUDA was asked to compile.
CUDA_REFUSED = "cuda-refused"
# tvm_ffi_configure_target(<target> STUB_DIR <dir> ...) ran without its stub step: `stub-skipped <target> <dir>`.
STUB_SKIPPED = "stub-skipped"


def read_notes(path: Path) -> list[tuple[str, ...]]:
    """The notes, each as its words; none if nothing was noted."""
    try:
        text = path.read_text("utf-8", errors="replace")
    except FileNotFoundError:
        return []
    return [tuple(line.split(" ", 2)) for line in text.splitlines() if line.strip()]
