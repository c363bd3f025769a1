"""Whether a project builds CUDA, read from its sources before CMake runs.

zig's C++ runtime must be chosen before CMake configures (it decides the compilers), and CUDA
needs GCC's (nvcc does not take zig's clang, and CUDA's headers refuse libc++). A project
need not declare its architectures to tvmffi-wheel: tvm-ffi's quickstart declares `LANGUAGES
CXX` and calls `enable_language(CUDA)` later. So the project's CMake files are read for what
makes a build use CUDA, and its tree for CUDA sources. It is a reading of text, not of what
CMake will do: a CUDA language enabled only under an option still counts, which costs such a
project's CPU build nothing but the choice of GCC's runtime.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

# Folders that hold no project sources: version control, build trees, environments.
_SKIPPED = {"build", "dist", "node_modules", "__pycache__", "venv", "site-packages"}
_CMAKE_COMMANDS = re.compile(
    r"\b(?P<command>enable_language|project|check_language)\s*\((?P<arguments>[^)]*)\)", re.IGNORECASE
)
_CUDA_WORDS = re.compile(r"\b(CMAKE_CUDA_ARCHITECTURES|CUDA_ARCHITECTURES|CUDAToolkit)\b")
_MAX_READ = 1 << 20  # a CMake file larger than this is generated, not written


def _files(root: Path) -> Iterator[Path]:
    for folder, folders, files in os.walk(root):
        if "CMakeCache.txt" in files:  # a CMake build tree inside the project
            folders[:] = []
            continue
        folders[:] = sorted(f for f in folders if not f.startswith(".") and f not in _SKIPPED)
        for name in sorted(files):
            yield Path(folder) / name


def _without_comments(text: str) -> str:
    return re.sub(r"#[^\n]*", "", text)


def _cmake_reason(path: Path, shown: str) -> str | None:
    try:
        if path.stat().st_size > _MAX_READ:
            return None
        text = _without_comments(path.read_text("utf-8", errors="replace"))
    except OSError:
        return None
    for match in _CMAKE_COMMANDS.finditer(text):
        if "CUDA" in re.split(r"[\s;\"]+", match.group("arguments").upper()):
            line = text.count("\n", 0, match.start()) + 1
            return f"{shown}:{line} calls {match.group('command')}({' '.join(match.group('arguments').split())})"
    word = _CUDA_WORDS.search(text)
    if word is not None:
        line = text.count("\n", 0, word.start()) + 1
        return f"{shown}:{line} names {word.group(1)}"
    return None


def project_cuda(source_dir: Path) -> str | None:
    """Why the project at ``source_dir`` builds CUDA, e.g. `CMakeLists.txt:62 calls
    enable_language(CUDA)` or `src/add.cu is a CUDA source`; None when nothing says so."""
    for path in _files(source_dir):
        shown = path.relative_to(source_dir).as_posix()
        if path.suffix == ".cu":
            return f"{shown} is a CUDA source"
        if path.name == "CMakeLists.txt" or path.suffix == ".cmake":
            reason = _cmake_reason(path, shown)
            if reason is not None:
                return reason
    return None
