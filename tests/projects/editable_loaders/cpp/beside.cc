#include <tvm/ffi/function.h>

#ifndef BESIDE_STEP
#define BESIDE_STEP 2
#endif

int64_t AddStep(int64_t x) { return x + BESIDE_STEP; }
TVM_FFI_DLL_EXPORT_TYPED_FUNC(add_step, AddStep);
