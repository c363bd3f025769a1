"""Independent judges of Mach-O files for the tests: Debian's LLVM tools, and a code
signature check written apart from tvmffi-wheel's reader (it finds the signature with
llvm-otool, then recomputes every page hash)."""

from __future__ import annotations

import glob
import hashlib
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest


def llvm_tool(name: str) -> str:
    """An LLVM tool by its plain name, a versioned one, or in Debian's /usr/lib/llvm-*/bin."""
    found = shutil.which(name) or next(
        (p for p in sorted(glob.glob(f"/usr/lib/llvm-*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        pytest.skip(f"{name} is not installed (Debian: apt install llvm)")
    return found


def otool(*args: str | Path) -> str:
    return subprocess.run([llvm_tool("llvm-otool"), *map(str, args)], check=True, capture_output=True,
                          text=True).stdout


def load_commands(path: Path) -> list[dict[str, str]]:
    """`llvm-otool -l`, one dict of field -> value per load command."""
    commands: list[dict[str, str]] = []
    for line in otool("-l", path).splitlines():
        fields = line.split(None, 1)
        if len(fields) == 2 and fields[0] == "cmd":
            commands.append({"cmd": fields[1]})
        elif len(fields) == 2 and commands:
            commands[-1].setdefault(fields[0], fields[1])
    return commands


def rpaths(path: Path) -> list[str]:
    return [re.sub(r" \(offset \d+\)$", "", c["path"]) for c in load_commands(path) if c["cmd"] == "LC_RPATH"]


def linked_libraries(path: Path) -> list[str]:
    """`llvm-otool -L`: the install names a binary loads (its own id first for a dylib)."""
    return [line.split(" (compatibility")[0].strip() for line in otool("-L", path).splitlines()[1:]]


def minimum_macos(path: Path) -> str:
    return next(c["minos"] for c in load_commands(path) if c["cmd"] == "LC_BUILD_VERSION")


def undefined_symbols(path: Path) -> dict[str, str]:
    """symbol -> the library llvm-nm says it comes from."""
    output = subprocess.run([llvm_tool("llvm-nm"), "-u", "-m", str(path)], check=True, capture_output=True,
                            text=True).stdout
    found = {}
    for line in output.splitlines():
        match = re.match(r"\s*\(undefined\) (?:weak )?external (\S+)(?: \(from (\S+)\))?", line)
        if match:
            found[match.group(1)] = match.group(2) or ""
    return found


def signature_is_valid(path: Path) -> bool:
    """Every code page hash of every CodeDirectory matches the file."""
    command = next((c for c in load_commands(path) if c["cmd"] == "LC_CODE_SIGNATURE"), None)
    if command is None:
        return False
    data = path.read_bytes()
    start = int(command["dataoff"])
    _, _, count = struct.unpack(">III", data[start : start + 12])
    checked = 0
    for index in range(count):
        _, offset = struct.unpack(">II", data[start + 12 + 8 * index : start + 20 + 8 * index])
        blob = start + offset
        if struct.unpack(">I", data[blob : blob + 4])[0] != 0xFADE0C02:
            continue
        fields = struct.unpack(">9I4B", data[blob : blob + 40])
        hash_offset, slots, limit = fields[4], fields[7], fields[8]
        size, kind, page_shift = fields[9], fields[10], fields[12]
        algorithm = {1: "sha1", 2: "sha256"}[kind]
        page = 1 << page_shift
        for slot in range(slots):
            expected = data[blob + hash_offset + slot * size : blob + hash_offset + (slot + 1) * size]
            piece = data[slot * page : min((slot + 1) * page, limit)]
            if hashlib.new(algorithm, piece).digest()[:size] != expected:
                return False
        checked += 1
    return checked > 0
