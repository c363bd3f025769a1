"""The shared-library link of `toolchain = "zig"` with GCC's C++ runtime (`cxx-runtime = "libstdc++"`).

gcc and nvcc compile as usual; CMake's compiler is a wrapper (toolchain.py) that hands every
other call to the real compiler and a shared-library link to this script, which links with
zig against the glibc stubs of the target release instead of this machine's glibc:

- GCC's libstdc++.a goes in privately, with zig's libunwind in place of libgcc_eh.a (GCC
  12's needs `_dl_find_object`, glibc 2.35), and no NEEDED libstdc++ or libgcc_s;
- the shim (data/glibc_shim.c) supplies what libstdc++.a and libcudart_static.a use from
  newer glibc releases;
- `-z defs`: a symbol that is in no stub of the target release, nor in libtvm_ffi, fails the
  link here instead of the import on an older system.

It runs as a script with the build environment's Python (no import of tvmffi_wheel, so that
each link costs one interpreter start), reading the recipe from $TVMFFI_LINK_RECIPE: JSON
with zig, target, glibc, libstdcxx, shim and version_script.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence

# The environment the compiler wrappers (toolchain.py) hand a link over with.
RECIPE_VARIABLE = "TVMFFI_LINK_RECIPE"
PYTHON_VARIABLE = "TVMFFI_LINK_PYTHON"
SCRIPT_VARIABLE = "TVMFFI_LINK_SCRIPT"

# Options of a link that zig's linker refuses, or that stand for the runtime linked here.
_DROPPED_OPTIONS = ("-static-libstdc++", "-static-libgcc")
# zig's linker refuses --exclude-libs; a version script hides the static runtime's symbols
# instead: the project's own (tvmffi_wheel_configure_target's), else the recipe's (zig_wrappers.py).
_DROPPED_LINKER_OPTIONS = re.compile(r"^-Wl,--exclude-libs[,=].*$")
# libraries of glibc that the host's system folders hold as empty archives (glibc 2.34+ moved
# them into libc); FindCUDAToolkit links librt.a by its path. zig's stubs stand for them.
_HOST_GLIBC_ARCHIVE = re.compile(r"^/(usr/)?lib(64)?/(.*/)?lib(rt|dl|pthread|util|m)\.a$")
_SHARED_RUNTIME = re.compile(r"^(-l(stdc\+\+|gcc_s)|.*/?lib(stdc\+\+|gcc_s)\.so(\.[0-9.]*)?)$")
# Symbols the C++ runtime needs from a glibc newer than 2.17 that the shim does not stand in for.
_GLIBC_RELEASE_OF = {"__cxa_thread_atexit_impl": "2.18"}


class LinkRefused(Exception):
    """A link this recipe cannot do, with the fix."""


def expand_response_files(arguments: Sequence[str]) -> list[str]:
    """`@file` arguments replaced by the arguments the file holds."""
    expanded: list[str] = []
    for argument in arguments:
        if argument.startswith("@") and os.path.isfile(argument[1:]):
            with open(argument[1:], encoding="utf-8") as stream:
                expanded += shlex.split(stream.read())
        else:
            expanded.append(argument)
    return expanded


def output_of(arguments: Sequence[str]) -> str:
    for index, argument in enumerate(arguments):
        if argument == "-o" and index + 1 < len(arguments):
            return arguments[index + 1]
        if argument.startswith("-o") and len(argument) > 2:
            return argument[2:]
    return "a.out"


def link_command(arguments: Sequence[str], recipe: Mapping[str, str]) -> list[str]:
    """zig's command for the link that the compiler driver was asked for with ``arguments``."""
    arguments = expand_response_files(arguments)
    shared_runtime = [a for a in arguments if _SHARED_RUNTIME.match(a)]
    if shared_runtime:
        raise LinkRefused(
            f"the link of {output_of(arguments)} asks for the shared C++ runtime ({', '.join(shared_runtime)}), "
            f'but toolchain = "zig" links GCC\'s libstdc++ into the library for glibc {recipe["glibc"]}: '
            "the system's libstdc++.so needs the GLIBCXX versions of this machine's GCC, which older "
            "systems lack; remove it from the project's link options (target_link_libraries, "
            'CMAKE_SHARED_LINKER_FLAGS), or set toolchain = "system"'
        )
    kept = [
        a for a in arguments
        if a not in _DROPPED_OPTIONS and not _DROPPED_LINKER_OPTIONS.match(a) and not _HOST_GLIBC_ARCHIVE.match(a)
        # zig warns about each missing folder: CMake adds CUDA's stubs folder whether it exists or not
        and not (a.startswith("-L") and len(a) > 2 and not os.path.isdir(a[2:]))
    ]
    # The project's own version script is its decision; without one, the runtime stays inside.
    own_exports = any("-version-script" in a for a in kept)
    return [
        recipe["zig"], "cc", "-target", recipe["target"], *kept,
        recipe["shim"], recipe["libstdcxx"], "-lunwind", "-lm",
        "-Wl,-z,defs", "-Wl,--gc-sections",
        *([] if own_exports else [f"-Wl,--version-script={recipe['version_script']}"]),
    ]


def explain_failure(output: str, glibc: str) -> str:
    """A hint for the undefined symbols of a failed link; empty when none are named."""
    symbols = sorted(set(re.findall(r"undefined symbol: (\S+)", output)))
    if not symbols:
        return ""
    releases = {s: _GLIBC_RELEASE_OF[s] for s in symbols if s in _GLIBC_RELEASE_OF}
    lines = [
        f"tvmffi-wheel: these symbols are neither in glibc {glibc} nor in the libraries linked: "
        f"{', '.join(symbols[:10])}{' ...' if len(symbols) > 10 else ''}."
    ]
    for symbol, release in releases.items():
        lines.append(f"tvmffi-wheel: {symbol} is in glibc {release} and later: set glibc = \"{release}\" or newer.")
    lines.append(
        "tvmffi-wheel: a glibc function newer than the glibc setting needs a newer glibc setting; "
        "a function of another library needs that library in target_link_libraries."
    )
    return "\n".join(lines)


def main(arguments: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    arguments = sys.argv[1:] if arguments is None else list(arguments)
    environ = os.environ if environ is None else environ
    with open(environ[RECIPE_VARIABLE], encoding="utf-8") as stream:
        recipe = json.load(stream)
    try:
        command = link_command(arguments, recipe)
    except LinkRefused as refusal:
        print(f"tvmffi-wheel: {refusal}", file=sys.stderr)
        return 1
    result = subprocess.run(command, stderr=subprocess.PIPE, text=True, check=False)
    sys.stderr.write(result.stderr)
    if result.returncode != 0:
        hint = explain_failure(result.stderr, recipe["glibc"])
        if hint:
            print(hint, file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
