"""Binaries that carry their own C++ runtime (`toolchain = "zig"`): LLVM's libc++, or a private
copy of GCC's libstdc++ linked for an older glibc.

Only tvm-ffi's C ABI may then cross into libtvm_ffi, which is built against the system's
libstdc++: a C++ call would hand one runtime's objects (std::string, exceptions) to the other.
And the runtime must stay inside the library: an exported copy can be bound by other
libraries in the process. The zig link hides it (compiling/zig_wrappers.py); what a project
still exports on purpose must be C: `__tvm_ffi_*` entry points, or C functions of its own.
This is the PackedFunc ABI rule of the seeds: only the C ABI crosses a library boundary.
"""

from __future__ import annotations

from collections.abc import Sequence

from tvmffi_wheel.common.symbols import is_cxx_symbol
from tvmffi_wheel.deciding.abi import TvmFfiImport
from tvmffi_wheel.deciding.verify import leaked_exports
from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting.wheel import WheelBinary


def _listed(items: Sequence[str], shown: int = 5) -> str:
    return ", ".join(items[:shown]) + (" ..." if len(items) > shown else "")


def check_private_runtime(binaries: Sequence[WheelBinary], imports: Sequence[TvmFfiImport], runtime: str) -> None:
    """Refuse C++ imports from libtvm_ffi (``imports``: what the binaries import from it) and
    exported runtime symbols; ``runtime`` names the C++ runtime the binaries carry."""
    cpp = [i for i in imports if i.abi == "c++"]
    if cpp:
        users = sorted({path for i in cpp for path in i.binaries})
        raise TvmFfiWheelError(
            f"{', '.join(users)}, linked by zig with its own C++ runtime, {runtime}, imports C++ symbols "
            f"from libtvm_ffi.so, which is built with the system's libstdc++: {_listed([i.symbol for i in cpp])}; "
            "the two C++ runtimes would meet at these calls",
            "call libtvm_ffi only through tvm-ffi's C API (the TVMFFI* functions, which tvm-ffi's "
            'header-only C++ classes use), or build with toolchain = "system"',
        )
    for binary in binaries:
        runtime_symbols = leaked_exports(binary.facts, frozenset())
        if runtime_symbols:
            raise TvmFfiWheelError(
                f"{binary.path} exports {len(runtime_symbols)} symbols of the C++ runtime it carries ({runtime}): "
                f"{_listed(runtime_symbols, 3)}; other libraries in the process could bind to this private copy",
                "the backend hides them in a link without a version script of the project's; the project's own "
                "version script exports them: end it with `local: *;`, as tvmffi_wheel_configure_target's does",
            )
        cxx = sorted(name for name in binary.facts.exports if is_cxx_symbol(name))
        if cxx:
            raise TvmFfiWheelError(
                f"{binary.path}, linked by zig with its own C++ runtime, {runtime}, exports C++ symbols: "
                f"{_listed(cxx, 3)}; a C++ interface cannot cross out of a library that carries its own runtime "
                "(callers built with another would meet its std::string and exceptions)",
                'export C functions instead (extern "C", or tvm-ffi\'s TVM_FFI_DLL_EXPORT), or build with '
                'toolchain = "system"',
            )
