"""The tvm-ffi imports of binaries, and the range of releases that export them."""

import pytest
from packaging.version import Version
from synthetic import binary, facts

from tvmffi_wheel.common.tvm_ffi_releases import (
    Release,
    load_table,
    table_from_json,
    table_to_json,
    tvm_ffi_symbol_abi,
)
from tvmffi_wheel.compiling.cross_os import release_platform_tags
from tvmffi_wheel.deciding.abi import check_against_built, decide_abi_range, tvm_ffi_imports
from tvmffi_wheel.deciding.requirements import compatible_range
from tvmffi_wheel.errors import TvmFfiWheelError
from tvmffi_wheel.inspecting.wheel import WheelBinary

OLD_STRINGIFY = "_ZN3tvm3ffi4json9StringifyERKNS0_3AnyENS0_8OptionalIivEE"  # Optional<int> by value
NEW_STRINGIFY = "_ZN3tvm3ffi4json9StringifyERKNS0_3AnyERKNS0_8OptionalIivEE"  # by const reference


def exports(version, arch="x86_64"):
    release = load_table().release(arch, Version(version))
    assert release is not None, version
    return release.exports


# The facts measured from each release's libtvm_ffi.so (nm -D --defined-only), per the field notes.
def test_the_table_holds_the_measured_facts():
    counts = {
        "0.1.0": (42, 15), "0.1.3": (42, 15), "0.1.5": (44, 15), "0.1.6": (45, 15), "0.1.7": (45, 15),
        "0.1.8.post2": (46, 15), "0.1.9": (46, 16), "0.1.10": (46, 23), "0.1.11": (46, 23),
        "0.1.12": (46, 24), "0.1.13.post3": (48, 24), "0.1.14.post1": (50, 24), "0.1.15.post2": (50, 24),
    }
    for version, (c, cpp) in counts.items():
        symbols = exports(version)
        assert sum(s.startswith("TVMFFI") for s in symbols) == c, version
        assert sum(s.startswith("_ZN3tvm3ffi") for s in symbols) == cpp, version
    assert OLD_STRINGIFY in exports("0.1.12") and OLD_STRINGIFY not in exports("0.1.13.post3")
    assert NEW_STRINGIFY in exports("0.1.13.post3")
    firsts = {
        "TVMFFIHandleInitOnce": "0.1.5", "TVMFFITensorCreateUnsafeView": "0.1.6",
        "TVMFFIErrorCreateWithCauseAndExtraContext": "0.1.8", "_ZN3tvm3ffi8DeepCopyERKNS0_3AnyE": "0.1.9rc0",
        "_ZN3tvm3ffi9ReprPrintERKNS0_3AnyE": "0.1.10rc0", "TVMFFIGetCustomAllocator": "0.1.13",
        "TVMFFISetCustomAllocator": "0.1.13", "TVMFFIBigIntFromByteArray": "0.1.14.post0",
    }
    for arch in ("x86_64", "aarch64"):
        releases = load_table().for_arch(arch)
        for symbol, first in firsts.items():
            assert str(next(r.version for r in releases if symbol in r.exports)) == first, (arch, symbol)
    assert {str(r.version) for r in load_table().for_arch("x86_64") if r.yanked} >= {"0.1.8", "0.1.13", "0.1.14"}


def test_the_json_round_trips():
    table = load_table()
    assert table_from_json(table_to_json(table, "test")) == table


@pytest.mark.parametrize(
    ("name", "abi"),
    [("TVMFFIErrorSetRaised", "c"), (OLD_STRINGIFY, "c++"), ("_ZNK3tvm3ffi6String4sizeEv", "c++"),
     ("_ZTIN3tvm3ffi5ErrorE", "c++"), ("_ZNSt6vectorIN3tvm3ffi3AnyESaIS2_EE", None), ("memcpy", None)],
)
def test_symbol_abi(name, abi):
    assert tvm_ffi_symbol_abi(name) == abi


def test_imports_are_the_required_tvm_ffi_symbols_of_every_binary():
    kernel = WheelBinary("pkg/libk.so", facts(versions=[("libtvm_ffi.so", "", "TVMFFIErrorSetRaised")]))
    imported = [("x", "", name) for name in ("TVMFFIErrorSetRaised", OLD_STRINGIFY, "TVMFFIMaybe", "memcpy")]
    other = WheelBinary("pkg/libo.so", facts(versions=imported, weak=["TVMFFIMaybe"]))
    imports = tvm_ffi_imports([kernel, other])
    assert [(i.symbol, i.abi, i.binaries) for i in imports] == [
        ("TVMFFIErrorSetRaised", "c", ("pkg/libk.so", "pkg/libo.so")),
        (OLD_STRINGIFY, "c++", ("pkg/libo.so",)),
    ]


def test_a_symbol_gone_from_a_release_onwards_is_the_upper_bound():
    abi = decide_abi_range([OLD_STRINGIFY, "TVMFFIErrorSetRaised"], Version("0.1.12"), load_table().for_arch("x86_64"))
    assert abi.upper == Version("0.1.13")  # yanked, but asked for by ==, it must not be admitted
    assert abi.excluded == ()
    assert str(compatible_range(Version("0.1.12"), abi)) == "<0.1.13,>=0.1.12"
    assert "apache-tvm-ffi 0.1.13 lacks _ZN3tvm3ffi4json9Stringify" in abi.reasons()[0]


def test_c_imports_present_everywhere_keep_the_next_abi():
    abi = decide_abi_range(["TVMFFIErrorSetRaised"], Version("0.1.12"), load_table().for_arch("x86_64"))
    assert abi.upper is None and abi.excluded == ()
    assert str(compatible_range(Version("0.1.12"), abi)) == "<0.2,>=0.1.12"
    assert all(check.exports_all for check in abi.checks)


def test_a_release_that_lacks_a_symbol_only_in_between_gets_not_equal():
    releases = [Release(Version(v), False, frozenset(s)) for v, s in
                [("0.3.0", {"A"}), ("0.3.1", set()), ("0.3.2", {"A"}), ("0.4.0", set())]]
    abi = decide_abi_range(["A"], Version("0.3.0"), releases)
    assert (abi.upper, abi.excluded) == (None, (Version("0.3.1"),))
    assert str(compatible_range(Version("0.3.0"), abi)) == "!=0.3.1,<0.4,>=0.3.0"


def test_a_symbol_the_built_against_library_lacks_is_an_error_naming_it():
    kernel = binary("pkg/libk.so", versions=[("libtvm_ffi.so", "", "TVMFFIGetCustomAllocator")])
    imports = tvm_ffi_imports([kernel])
    expected = r"does not export:\n    TVMFFIGetCustomAllocator \(imported by pkg/libk\.so\)"
    with pytest.raises(TvmFfiWheelError, match=expected):
        check_against_built(imports, exports("0.1.12"), Version("0.1.12"))
    check_against_built(imports, exports("0.1.13.post3"), Version("0.1.13.post3"))


def test_release_wheels_are_taken_newest_manylinux_first():
    # pip prefers --platform tags in the order given; a release with a manylinux_2_28 and a
    # manylinux2014 build (0.1.12) must give the table the build pip installs on a current machine.
    tags = release_platform_tags("aarch64")
    assert tags.index("manylinux_2_28_aarch64") < tags.index("manylinux_2_17_aarch64") < tags.index(
        "manylinux2014_aarch64"
    )
    assert tags == [*sorted(tags[:-1], key=lambda t: -int(t.split("_")[2])), "manylinux2014_aarch64"]
