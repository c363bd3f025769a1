/* tvmffi-wheel: forced into every C and C++ compile of a Windows build by zig (os = "windows").
 *
 * tvm-ffi's headers test _MSC_VER to mean Windows; MinGW's clang does not define it, so:
 * - c_api.h would define TVM_FFI_DLL and TVM_FFI_DLL_EXPORT as visibility("default"), and with
 *   no dllexport in the library lld exports every symbol. Exports are marked here instead;
 *   imports from tvm_ffi.dll go through its import library, so TVM_FFI_DLL stays empty.
 * - memory.h calls posix_memalign, which Windows lacks, for alignments above max_align_t, and
 *   frees with free(). No allocation free() can release honours such an alignment, so those
 *   report ENOMEM (tvm-ffi throws std::bad_alloc) instead of corrupting the heap.
 */
#ifndef TVMFFI_WHEEL_WINDOWS_SHIM_H_
#define TVMFFI_WHEEL_WINDOWS_SHIM_H_
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#define TVM_FFI_DLL
#define TVM_FFI_DLL_EXPORT __declspec(dllexport)

static inline int posix_memalign(void **memory, size_t alignment, size_t size) {
  if (alignment > __alignof__(max_align_t)) return ENOMEM;
  *memory = malloc(size);
  return *memory != NULL ? 0 : ENOMEM;
}
#endif
