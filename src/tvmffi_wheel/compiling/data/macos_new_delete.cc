// tvmffi-wheel: linked into every shared library zig links for macOS (os = "macos").
//
// zig links LLVM's libc++ and libc++abi into the library, and its Mach-O linker ignores export
// lists, so libc++abi's operator new and delete would be exported: dyld could then bind other
// images' allocations to this private copy. These definitions take their place, hidden. They
// behave as libc++abi's do: new retries through the new_handler and throws std::bad_alloc, the
// nothrow forms return null instead, aligned forms honour the alignment, delete frees.
//
// C++ gives the replaceable allocation functions default visibility and will not declare them
// otherwise, so each is defined under another name with the mangled name as its symbol (the
// leading underscore is Mach-O's; size_t is unsigned long, `m`, on arm64).
#include <cstddef>
#include <cstdlib>
#include <new>

namespace {

void* allocate(std::size_t size, std::size_t alignment) {
  if (size == 0) size = 1;
  if (alignment < sizeof(void*)) alignment = sizeof(void*);
  for (;;) {
    void* memory = nullptr;
    if (alignment <= alignof(std::max_align_t)) {
      memory = std::malloc(size);
    } else if (::posix_memalign(&memory, alignment, size) != 0) {
      memory = nullptr;
    }
    if (memory != nullptr) return memory;
    std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) throw std::bad_alloc();
    handler();
  }
}

void* allocate_or_null(std::size_t size, std::size_t alignment) noexcept {
  try {
    return allocate(size, alignment);
  } catch (...) {
    return nullptr;
  }
}

constexpr std::size_t kDefault = alignof(std::max_align_t);

}  // namespace

#define TVMFFI_WHEEL_SYMBOL(name) __attribute__((visibility("hidden"), used)) __asm__(name)

extern "C" {
void* tvmffi_wheel_new(std::size_t) TVMFFI_WHEEL_SYMBOL("__Znwm");
void* tvmffi_wheel_new_array(std::size_t) TVMFFI_WHEEL_SYMBOL("__Znam");
void* tvmffi_wheel_new_nothrow(std::size_t, const std::nothrow_t&) noexcept TVMFFI_WHEEL_SYMBOL("__ZnwmRKSt9nothrow_t");
void* tvmffi_wheel_new_array_nothrow(std::size_t, const std::nothrow_t&) noexcept
    TVMFFI_WHEEL_SYMBOL("__ZnamRKSt9nothrow_t");
void* tvmffi_wheel_new_aligned(std::size_t, std::align_val_t) TVMFFI_WHEEL_SYMBOL("__ZnwmSt11align_val_t");
void* tvmffi_wheel_new_array_aligned(std::size_t, std::align_val_t) TVMFFI_WHEEL_SYMBOL("__ZnamSt11align_val_t");
void* tvmffi_wheel_new_aligned_nothrow(std::size_t, std::align_val_t, const std::nothrow_t&) noexcept
    TVMFFI_WHEEL_SYMBOL("__ZnwmSt11align_val_tRKSt9nothrow_t");
void* tvmffi_wheel_new_array_aligned_nothrow(std::size_t, std::align_val_t, const std::nothrow_t&) noexcept
    TVMFFI_WHEEL_SYMBOL("__ZnamSt11align_val_tRKSt9nothrow_t");

void tvmffi_wheel_delete(void*) noexcept TVMFFI_WHEEL_SYMBOL("__ZdlPv");
void tvmffi_wheel_delete_array(void*) noexcept TVMFFI_WHEEL_SYMBOL("__ZdaPv");
void tvmffi_wheel_delete_sized(void*, std::size_t) noexcept TVMFFI_WHEEL_SYMBOL("__ZdlPvm");
void tvmffi_wheel_delete_array_sized(void*, std::size_t) noexcept TVMFFI_WHEEL_SYMBOL("__ZdaPvm");
void tvmffi_wheel_delete_nothrow(void*, const std::nothrow_t&) noexcept TVMFFI_WHEEL_SYMBOL("__ZdlPvRKSt9nothrow_t");
void tvmffi_wheel_delete_array_nothrow(void*, const std::nothrow_t&) noexcept
    TVMFFI_WHEEL_SYMBOL("__ZdaPvRKSt9nothrow_t");
void tvmffi_wheel_delete_aligned(void*, std::align_val_t) noexcept TVMFFI_WHEEL_SYMBOL("__ZdlPvSt11align_val_t");
void tvmffi_wheel_delete_array_aligned(void*, std::align_val_t) noexcept TVMFFI_WHEEL_SYMBOL("__ZdaPvSt11align_val_t");
void tvmffi_wheel_delete_sized_aligned(void*, std::size_t, std::align_val_t) noexcept
    TVMFFI_WHEEL_SYMBOL("__ZdlPvmSt11align_val_t");
void tvmffi_wheel_delete_array_sized_aligned(void*, std::size_t, std::align_val_t) noexcept
    TVMFFI_WHEEL_SYMBOL("__ZdaPvmSt11align_val_t");
void tvmffi_wheel_delete_aligned_nothrow(void*, std::align_val_t, const std::nothrow_t&) noexcept
    TVMFFI_WHEEL_SYMBOL("__ZdlPvSt11align_val_tRKSt9nothrow_t");
void tvmffi_wheel_delete_array_aligned_nothrow(void*, std::align_val_t, const std::nothrow_t&) noexcept
    TVMFFI_WHEEL_SYMBOL("__ZdaPvSt11align_val_tRKSt9nothrow_t");
}

void* tvmffi_wheel_new(std::size_t size) { return allocate(size, kDefault); }
void* tvmffi_wheel_new_array(std::size_t size) { return allocate(size, kDefault); }
void* tvmffi_wheel_new_nothrow(std::size_t size, const std::nothrow_t&) noexcept {
  return allocate_or_null(size, kDefault);
}
void* tvmffi_wheel_new_array_nothrow(std::size_t size, const std::nothrow_t&) noexcept {
  return allocate_or_null(size, kDefault);
}
void* tvmffi_wheel_new_aligned(std::size_t size, std::align_val_t alignment) {
  return allocate(size, static_cast<std::size_t>(alignment));
}
void* tvmffi_wheel_new_array_aligned(std::size_t size, std::align_val_t alignment) {
  return allocate(size, static_cast<std::size_t>(alignment));
}
void* tvmffi_wheel_new_aligned_nothrow(std::size_t size, std::align_val_t alignment, const std::nothrow_t&) noexcept {
  return allocate_or_null(size, static_cast<std::size_t>(alignment));
}
void* tvmffi_wheel_new_array_aligned_nothrow(std::size_t size, std::align_val_t alignment,
                                            const std::nothrow_t&) noexcept {
  return allocate_or_null(size, static_cast<std::size_t>(alignment));
}

void tvmffi_wheel_delete(void* memory) noexcept { std::free(memory); }
void tvmffi_wheel_delete_array(void* memory) noexcept { std::free(memory); }
void tvmffi_wheel_delete_sized(void* memory, std::size_t) noexcept { std::free(memory); }
void tvmffi_wheel_delete_array_sized(void* memory, std::size_t) noexcept { std::free(memory); }
void tvmffi_wheel_delete_nothrow(void* memory, const std::nothrow_t&) noexcept { std::free(memory); }
void tvmffi_wheel_delete_array_nothrow(void* memory, const std::nothrow_t&) noexcept { std::free(memory); }
void tvmffi_wheel_delete_aligned(void* memory, std::align_val_t) noexcept { std::free(memory); }
void tvmffi_wheel_delete_array_aligned(void* memory, std::align_val_t) noexcept { std::free(memory); }
void tvmffi_wheel_delete_sized_aligned(void* memory, std::size_t, std::align_val_t) noexcept { std::free(memory); }
void tvmffi_wheel_delete_array_sized_aligned(void* memory, std::size_t, std::align_val_t) noexcept {
  std::free(memory);
}
void tvmffi_wheel_delete_aligned_nothrow(void* memory, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(memory);
}
void tvmffi_wheel_delete_array_aligned_nothrow(void* memory, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(memory);
}
