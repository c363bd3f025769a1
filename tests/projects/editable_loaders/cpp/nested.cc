#include <omp.h>
#include <tvm/ffi/function.h>

int64_t MaxThreads() { return omp_get_max_threads(); }
TVM_FFI_DLL_EXPORT_TYPED_FUNC(max_threads, MaxThreads);
