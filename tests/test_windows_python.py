"""The Windows CPython under wine (tests/windows_python.py) imports apache-tvm-ffi's win_amd64
wheel and passes a ctypes-made tensor through a tvm-ffi function and back."""

from __future__ import annotations

from windows_python import DLPACK_HELPERS, requires_wine, windows_python

ROUND_TRIP = DLPACK_HELPERS + r'''
import os, sys
import tvm_ffi

# Not platform.machine(): on 3.13 it asks WMI, which crashes wine 8 (propsys.VariantToString).
print("python", sys.platform, sys.version_info[:2], sys.version.split()[-1])
print("tvm_ffi", tvm_ffi.__version__)
vector, read = make_vector([1.0, 2.0, 3.0])
tensor = tvm_ffi.from_dlpack(vector)
print("from_dlpack", tensor.shape, tensor.dtype, tensor.device, tensor.data_ptr() == ctypes.addressof(vector.buffer))
# tvm_ffi_testing.dll registers testing.* global functions when loaded, as a kernel library would.
tvm_ffi.load_module(os.path.join(os.path.dirname(tvm_ffi.__file__), "lib", "tvm_ffi_testing.dll"))
echoed = tvm_ffi.get_global_func("testing.echo")(vector)  # the vector itself, converted at the call
vector.buffer[1] = 20.0  # the tensor that came back views the same memory
print("echo", type(echoed).__name__, read_float32(echoed), read())
'''


@requires_wine
def test_windows_python_imports_tvm_ffi_and_round_trips_a_tensor():
    python = windows_python()
    result = python.run(ROUND_TRIP)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"
    assert result.stdout.splitlines() == [
        "python win32 (3, 13) (AMD64)]",
        f"tvm_ffi {python.tvm_ffi_version}",
        "from_dlpack (3,) float32 cpu:0 True",
        "echo Tensor [1.0, 20.0, 3.0] [1.0, 20.0, 3.0]",
    ], result.stderr[-4000:]
