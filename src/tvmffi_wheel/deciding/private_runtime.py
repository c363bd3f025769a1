"""Binaries that carry their own C++ runtime (`toolchain = "zig"`): LLVM's libc++, or a private
copy of GCC's libstdc++ linked for an older glibc.

Only tvm-ffi's C ABI may then cross into libtvm_ffi, which is built against the system's
libstdc++: a C++ call would hand one runtime's objects (std::string, exceptions) to the other.
And the runtime must stay inside the library: an exported copy can be bound by other
libraries in the process. This is the PackedFunc ABI rule of the seeds: only the C ABI
crosses a library boundary.
"""

from __future__ import annotations

from collections.abc import Sequence

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
        leaked = leaked_exports(binary.facts, frozenset())
        if leaked:
            raise TvmFfiWheelError(
                f"{binary.path} exports {len(leaked)} symbols of the C++ runtime it carries ({runtime}): "
                f"{_listed(leaked, 3)}; other libraries in the process could bind to this private copy",
                "export only tvm-ffi's entry points: call tvmffi_wheel_configure_target(<target>) "
                "(its version script exports __tvm_ffi_* only), or give the link a version script of your own",
            )
