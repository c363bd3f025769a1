#include <tvm/ffi/error.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/string.h>

namespace my_ffi_extension {

static int AddTwo(int x) { return x + 2; }
TVM_FFI_DLL_EXPORT_TYPED_FUNC(add_two, AddTwo);

static void RaiseError(const tvm::ffi::String& msg) { TVM_FFI_THROW(RuntimeError) << msg; }
TVM_FFI_DLL_EXPORT_TYPED_FUNC(raise_error, RaiseError);

}  // namespace my_ffi_extension
