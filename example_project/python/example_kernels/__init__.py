"""CPU kernels on DLPack tensors (NumPy, PyTorch, JAX, CuPy...), through tvm-ffi.

Every kernel takes 1-D, contiguous float32 arrays and writes into ``out``.
"""

from __future__ import annotations

import tvm_ffi

# _native is the loader tvmffi-wheel generates into the wheel (pyproject.toml, `loader`):
# it checks the installed tvm-ffi, the library's symbols and the GPUs before loading.
from example_kernels._native import BUILD, load

_LIB = load("example_kernels")


def add_one(x, out) -> None:
    """out = x + 1"""
    _LIB.add_one(x, out)


def axpy(a: float, x, y, out) -> None:
    """out = a * x + y"""
    _LIB.axpy(float(a), x, y, out)


def total(x) -> float:
    """The sum of x, accumulated in double precision."""
    return _LIB.total(x)


def add_one_cuda(x, out) -> None:
    """out = x + 1 on a CUDA device, on the stream set in tvm-ffi's environment.

    Only in wheels built with -C cmake.define.EXAMPLE_KERNELS_CUDA=ON.
    """
    _LIB.add_one_cuda(x, out)


@tvm_ffi.register_object("example_kernels.RunningMean")
class RunningMean(tvm_ffi.Object):
    """The running mean of every value passed to ``update``."""


__all__ = ["BUILD", "RunningMean", "add_one", "add_one_cuda", "axpy", "total"]
