#include <omp.h>
#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/function.h>

// out[i] = 2 * x[i], split across OpenMP threads.
static void ParallelDouble(tvm::ffi::TensorView x, tvm::ffi::TensorView out) {
  const int64_t n = x.shape()[0];
  const float* xs = static_cast<const float*>(x.data_ptr());
  float* os = static_cast<float*>(out.data_ptr());
#pragma omp parallel for
  for (int64_t i = 0; i < n; ++i) os[i] = 2.0f * xs[i];
}

static int MaxThreads() { return omp_get_max_threads(); }

TVM_FFI_DLL_EXPORT_TYPED_FUNC(parallel_double, ParallelDouble);
TVM_FFI_DLL_EXPORT_TYPED_FUNC(max_threads, MaxThreads);
