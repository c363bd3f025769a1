"""The Python part of the tag: `py3-none` unless a binary uses the CPython C API."""

from __future__ import annotations

from collections.abc import Iterable

from tvmffi_wheel.deciding.platforms import platform_of
from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting.wheel import WheelBinary


def python_c_api_users(binaries: Iterable[WheelBinary]) -> dict[str, str]:
    """Binaries that use the CPython C API -> the evidence, for messages."""
    users = {}
    for binary in binaries:
        platform = platform_of(binary.facts)
        libpython = [n for n in binary.facts.needed if platform.matches(n, platform.python)]
        if binary.facts.python_c_api:
            shown = ", ".join(binary.facts.python_c_api[:3])
            users[binary.path] = f"imports {shown}"
        elif libpython:
            users[binary.path] = f"needs {libpython[0]}"
    return users


def choose_python_tag(
    built: tuple[str, str], c_api_users: dict[str, str]
) -> tuple[tuple[str, str], str | None]:
    """(interpreter, abi) for the wheel, and a line explaining a CPython-specific tag.

    scikit-build-core tags `cpXY-cpXY` only when `wheel.py-api` is unset; any other tag
    was asked for, and is kept unless it claims independence from a C API that is used.
    """
    interpreter, abi = built
    if abi == "none":
        if c_api_users:
            path, evidence = next(iter(c_api_users.items()))
            raise TvmFfiWheelError(
                f"wheel.py-api gives the tag {interpreter}-none, but {path} uses the Python "
                f"C API ({evidence}), so it only works with the Python it was built for",
                "remove wheel.py-api to get an honest cpXY tag, or set it to cp3X for the "
                "stable ABI (abi3) if the module only uses the limited API",
            )
        return built, None
    if abi == "abi3" or abi != interpreter:
        return built, None
    if c_api_users:
        path, evidence = next(iter(c_api_users.items()))
        return built, f"tagged {interpreter}-{abi}: {path} uses the Python C API ({evidence})"
    return ("py3", "none"), None
