"""Synthetic binary facts and wheel binaries, for judging wheels without a compiler."""

from __future__ import annotations

from collections.abc import Iterable

from tvmffi_wheel.inspecting.device_code import DeviceImage
from tvmffi_wheel.inspecting.facts import BinaryFacts, ImportVersion
from tvmffi_wheel.inspecting.wheel import WheelBinary

WHITELIST = frozenset({"libc.so.6", "libstdc++.so.6", "libm.so.6", "libgcc_s.so.1"})
GLIBC_OLD = ("libc.so.6", "GLIBC_2.2.5", "free")
GLIBCXX_26 = ("libstdc++.so.6", "GLIBCXX_3.4.26", "_ZNSt7__cxx1119basic_ostringstreamC1Ev")


def facts(
    needed: Iterable[str] = (),
    versions: Iterable[tuple[str, str, str]] = (),
    run_paths: Iterable[str] = (),
    c_api: Iterable[str] = (),
    install_name: str | None = None,
    exports: Iterable[str] = (),
    device_code: Iterable[DeviceImage] = (),
    architecture: str = "x86_64",
    weak: Iterable[str] = (),
) -> BinaryFacts:
    versions = tuple(versions)
    c_api = tuple(c_api)
    return BinaryFacts(
        format="elf",
        architecture=architecture,
        install_name=install_name,
        needed=tuple(needed),
        run_paths=tuple(run_paths),
        import_versions=tuple(ImportVersion(lib, ver, (sym,)) for lib, ver, sym in versions),
        python_c_api=c_api,
        imports=frozenset(sym for _, _, sym in versions) | frozenset(c_api),
        exports=frozenset(exports),
        device_code=tuple(device_code),
        weak_imports=frozenset(weak),
    )


def binary(path: str, **kwargs: object) -> WheelBinary:
    return WheelBinary(path, facts(**kwargs))  # type: ignore[arg-type]
