#include <tvm/ffi/function.h>

int64_t Triple(int64_t x) { return 3 * x; }
TVM_FFI_DLL_EXPORT_TYPED_FUNC(triple, Triple);
