"""Fixture: a kernel whose device code tvm-ffi embedded into .rodata."""

from embedded_cubin._native import BUILD, load

_LIB = load("lib_embedded")

__all__ = ["BUILD"]
