from pathlib import Path

import tvm_ffi

LIB = tvm_ffi.load_module(str(Path(__file__).parent / "libopenmp_kernels.so"))
parallel_double = LIB.parallel_double
max_threads = LIB.max_threads
