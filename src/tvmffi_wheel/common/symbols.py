"""Which exported symbols belong to a C++ runtime, and which a kernel library means to export.

One rule for every stage: the zig link hides what it matches (zig_wrappers.py writes it into a
linker version script), and `check` and the repair report what a finished binary still
exports (deciding/verify.py, deciding/private_runtime.py), on ELF, Mach-O and PE alike.
Names are as the platform's C compiler spells them (facts.py): a Mach-O symbol without its
leading underscore, so `__Znwm` in the file is `_Znwm` here, as on ELF.
"""

from __future__ import annotations

import fnmatch
import re

# tvm-ffi's entry points: what TVM_FFI_DLL_EXPORT_TYPED_FUNC and its siblings export.
TVM_FFI_ENTRY_PREFIX = "__tvm_ffi_"

# Itanium encodings of names in the runtime's namespaces, as shell patterns (a version script's
# globs and fnmatch's alike): std, with its abbreviations (`St` std::, `Sa` allocator, `Sb`
# basic_string, `Ss` string, `Si`/`So`/`Sd` istream/ostream/iostream), __gnu_cxx and __cxxabiv1,
# nested (`N`) with a member function's qualifiers; local entities inside their functions (`Z`),
# their type info, names, vtables and VTTs (`TI`, `TS`, `TV`, `TT`), guard variables (`GV`),
# libstdc++'s transactional clones (`GTt`) and the thunks to their members (`Th`, `Tv`, `Tc`).
_STD = "S[abdiost]"
_QUALIFIERS = ("", "[KROV]", "[KROV][KROV]")
_NAMES = (_STD, *(f"N{q}{name}" for name in (_STD, "9__gnu_cxx", "10__cxxabiv1") for q in _QUALIFIERS))
_ENCODINGS = ("_Z", "_ZZ", "_ZTI", "_ZTS", "_ZTV", "_ZTT", "_ZGV", "_ZGVZ", "_ZGTt", "_ZTh*_", "_ZTv*_", "_ZTc*_")
RUNTIME_PATTERNS = (
    *(f"{encoding}{name}*" for encoding in _ENCODINGS for name in _NAMES),
    # The replaceable allocation functions (operator new, new[], delete, delete[]), libstdc++'s
    # transactional-memory helpers, and the C names of the runtime's support code: the C++ ABI,
    # the personality routines, the unwinder, the demangler.
    "_Znw*", "_Zna*", "_Zdl*", "_Zda*", "_Z[0-9]*_txnal_*",
    "__cxa_*", "__gxx_personality*", "__gcc_personality*", "_Unwind_*", "__unw_*", "__libunwind_*",
    "__dynamic_cast", "__gcclibcxx_*",
    # MSVC's manglings of operator new (`??2@`), delete (`??3@`), their array forms, members of std.
    "[?][?]2@*", "[?][?]3@*", "[?][?]_U@*", "[?][?]_V@*", "[?]*@std@@*",
)
_RUNTIME = re.compile("|".join(fnmatch.translate(pattern) for pattern in RUNTIME_PATTERNS))


def is_runtime_symbol(name: str) -> bool:
    """The symbol belongs to the C++ standard library or the runtime under it."""
    return _RUNTIME.match(name) is not None


def is_cxx_symbol(name: str) -> bool:
    """A C++ (mangled) name, Itanium's or MSVC's."""
    return name.startswith(("_Z", "?"))


def runtime_version_script() -> str:
    """A linker version script that makes every runtime symbol local and leaves the rest as
    the compiler marked it (a project's own exports, tvm-ffi's entry points). MSVC's names
    have no place in an ELF file's script."""
    patterns = "\n".join(f"    {pattern};" for pattern in RUNTIME_PATTERNS if not pattern.startswith("[?]"))
    return ("/* tvmffi-wheel: the C++ runtime linked into the library stays inside it. */\n"
            f"{{\n  local:\n{patterns}\n}};\n")
