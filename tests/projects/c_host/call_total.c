/* A C program that loads a kernel library and calls its `total` through tvm-ffi's C ABI:
 * no Python, no C++. Built with zig for another architecture and run under qemu-user.
 *
 *   call_total LIBRARY   prints `total = 11`, then `int32 input: raised (-1)`
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <tvm/ffi/c_api.h>

static int call(TVMFFISafeCallType function, DLTensor* tensor, TVMFFIAny* result) {
  TVMFFIAny argument;
  memset(&argument, 0, sizeof(argument));
  argument.type_index = kTVMFFIDLTensorPtr;
  argument.v_ptr = tensor;
  memset(result, 0, sizeof(*result));
  result->type_index = kTVMFFINone;
  return function(NULL, &argument, 1, result);
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s LIBRARY\n", argv[0]);
    return 2;
  }
  void* library = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
  if (library == NULL) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  TVMFFISafeCallType total = (TVMFFISafeCallType)dlsym(library, "__tvm_ffi_total");
  void (*move_from_raised)(TVMFFIObjectHandle*) =
      (void (*)(TVMFFIObjectHandle*))dlsym(library, "TVMFFIErrorMoveFromRaised");
  int (*dec_ref)(TVMFFIObjectHandle) = (int (*)(TVMFFIObjectHandle))dlsym(library, "TVMFFIObjectDecRef");
  if (total == NULL || move_from_raised == NULL || dec_ref == NULL) {
    fprintf(stderr, "dlsym: %s\n", dlerror());
    return 1;
  }

  float values[4] = {1.5f, 2.5f, 3.0f, 4.0f};
  int64_t shape[1] = {4};
  DLTensor tensor;
  memset(&tensor, 0, sizeof(tensor));
  tensor.data = values;
  tensor.device.device_type = kDLCPU;
  tensor.ndim = 1;
  tensor.dtype.code = kDLFloat;
  tensor.dtype.bits = 32;
  tensor.dtype.lanes = 1;
  tensor.shape = shape;
  TVMFFIAny result;
  int status = call(total, &tensor, &result);
  if (status != 0 || result.type_index != kTVMFFIFloat) {
    fprintf(stderr, "total failed: status %d, result type %d\n", status, result.type_index);
    return 1;
  }
  printf("total = %g\n", result.v_float64);

  /* The kernel refuses int32 with a TypeError, raised across the C ABI. */
  tensor.dtype.code = kDLInt;
  status = call(total, &tensor, &result);
  TVMFFIObjectHandle error = NULL;
  if (status == -1) {
    move_from_raised(&error);
  }
  printf("int32 input: %s (%d)\n", error != NULL ? "raised" : "not raised", status);
  if (error != NULL) {
    dec_ref(error);
  }
  return 0;
}
