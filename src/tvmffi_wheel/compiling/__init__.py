"""Compiling: the settings, and everything that runs before the first wheel exists.

scikit-build-core's hooks and settings (`_skbuild`), our options (`settings`), the CUDA
toolkit and plan (`cuda`), the compiler cache, the zig toolchain, and the apache-tvm-ffi
the kernels compile against (`tvm_ffi`). Imports nothing from the later stages.
"""
