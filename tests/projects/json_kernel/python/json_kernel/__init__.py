"""Fixture: a kernel that may import tvm::ffi::json::Stringify from libtvm_ffi."""

from json_kernel._native import load

_LIB = load("json_kernel")


def pair_to_json(a: int, b: int) -> str:
    return str(_LIB.pair_to_json(a, b))
