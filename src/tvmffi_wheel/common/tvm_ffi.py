"""Names of apache-tvm-ffi that every stage uses."""

from __future__ import annotations

TVM_FFI_DISTRIBUTION = "apache-tvm-ffi"
# Where the apache-tvm-ffi wheel installs libtvm_ffi (tvm_ffi.dll on Windows), relative to site-packages.
TVM_FFI_LIB_DIR = "tvm_ffi/lib"
