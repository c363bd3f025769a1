#include <tvm/ffi/container/array.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/string.h>

#ifdef JSON_KERNEL_STRINGIFY
#include <tvm/ffi/extra/json.h>
#endif

#include <string>

// "[a,b]": through tvm-ffi's JSON writer (a C++ import), or by hand.
tvm::ffi::String PairToJson(int64_t a, int64_t b) {
#ifdef JSON_KERNEL_STRINGIFY
  return tvm::ffi::json::Stringify(tvm::ffi::Array<tvm::ffi::Any>{a, b});
#else
  return "[" + std::to_string(a) + "," + std::to_string(b) + "]";
#endif
}

TVM_FFI_DLL_EXPORT_TYPED_FUNC(pair_to_json, PairToJson);
