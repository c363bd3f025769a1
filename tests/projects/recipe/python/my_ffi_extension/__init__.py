from pathlib import Path

import tvm_ffi

LIB = tvm_ffi.load_module(str(Path(__file__).parent / "libmy_ffi_extension.so"))
add_two = LIB.add_two
raise_error = LIB.raise_error
