// A CUDA kernel exported through the tvm-ffi C ABI, launched on the stream the caller's
// framework set in tvm-ffi's environment (e.g. torch.cuda.current_stream()).
#include <cuda_runtime.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/error.h>
#include <tvm/ffi/extra/c_env_api.h>
#include <tvm/ffi/function.h>

namespace example_kernels {

namespace ffi = tvm::ffi;

__global__ void AddOneKernel(const float* x, float* out, int64_t n) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = x[i] + 1.0f;
}

static void CheckCudaVector(const ffi::TensorView& t, const char* name) {
  if (t.device().device_type != kDLCUDA) {
    TVM_FFI_THROW(ValueError) << name << " must be on a CUDA device";
  }
  DLDataType dtype = t.dtype();
  if (dtype.code != kDLFloat || dtype.bits != 32 || t.ndim() != 1 || !t.IsContiguous()) {
    TVM_FFI_THROW(TypeError) << name << " must be a contiguous 1-D float32 tensor";
  }
}

// out = x + 1 on the GPU
void AddOneCuda(ffi::TensorView x, ffi::TensorView out) {
  CheckCudaVector(x, "x");
  CheckCudaVector(out, "out");
  const int64_t n = x.shape()[0];
  if (out.shape()[0] != n) {
    TVM_FFI_THROW(ValueError) << "length mismatch: out has " << out.shape()[0]
                              << " elements, expected " << n;
  }
  if (n == 0) return;
  auto stream = static_cast<cudaStream_t>(
      TVMFFIEnvGetStream(x.device().device_type, x.device().device_id));
  const int threads = 256;
  const int64_t blocks = (n + threads - 1) / threads;
  AddOneKernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(
      static_cast<const float*>(x.data_ptr()), static_cast<float*>(out.data_ptr()), n);
  cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) {
    TVM_FFI_THROW(RuntimeError) << "add_one_cuda launch failed: " << cudaGetErrorString(status);
  }
}

TVM_FFI_DLL_EXPORT_TYPED_FUNC(add_one_cuda, AddOneCuda);

}  // namespace example_kernels
