"""Synthetic ELF facts and wheel binaries, for judging wheels without a compiler."""

from __future__ import annotations

from collections.abc import Iterable

from tvmffi_wheel.device_code import DeviceImage
from tvmffi_wheel.elf import ElfFacts, VersionNeed
from tvmffi_wheel.inspect import WheelBinary

WHITELIST = frozenset({"libc.so.6", "libstdc++.so.6", "libm.so.6", "libgcc_s.so.1"})
GLIBC_OLD = ("libc.so.6", "GLIBC_2.2.5", "free")
GLIBCXX_26 = ("libstdc++.so.6", "GLIBCXX_3.4.26", "_ZNSt7__cxx1119basic_ostringstreamC1Ev")


def facts(
    needed: Iterable[str] = (),
    versions: Iterable[tuple[str, str, str]] = (),
    runpath: Iterable[str] = (),
    rpath: Iterable[str] = (),
    c_api: Iterable[str] = (),
    soname: str | None = None,
    exported: Iterable[str] = (),
    device_code: Iterable[DeviceImage] = (),
    machine: str = "EM_X86_64",
    weak: Iterable[str] = (),
) -> ElfFacts:
    versions = tuple(versions)
    c_api = tuple(c_api)
    return ElfFacts(
        machine=machine,
        elf_class=64,
        soname=soname,
        needed=tuple(needed),
        rpath=tuple(rpath),
        runpath=tuple(runpath),
        version_needs=tuple(VersionNeed(lib, ver, (sym,)) for lib, ver, sym in versions),
        python_c_api=c_api,
        undefined=frozenset(sym for _, _, sym in versions) | frozenset(c_api),
        exported=frozenset(exported),
        device_code=tuple(device_code),
        weak_undefined=frozenset(weak),
    )


def binary(path: str, **kwargs: object) -> WheelBinary:
    return WheelBinary(path, facts(**kwargs))  # type: ignore[arg-type]
