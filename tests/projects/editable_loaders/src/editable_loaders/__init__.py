"""The three common ways a kernel package loads its libraries."""

from pathlib import Path

import tvm_ffi
from tvm_ffi.libinfo import load_lib_module

beside = tvm_ffi.load_module(str(Path(__file__).with_name("libbeside.so")))
nested = tvm_ffi.load_module(str(Path(__file__).parent / "lib" / "libnested.so"))
record = load_lib_module("editable-loaders", "record")
