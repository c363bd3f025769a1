// Host code with threads and timed waits, beside a kernel: what a kernel library's
// scheduling or timeout code looks like.
#include <tvm/ffi/function.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>
#include <thread>

__global__ void Touch(int* flag) {
  if (flag != nullptr) *flag = 1;
}

namespace timed_waits {

// Three waits that time out, each on a thread of its own: a condition variable, a timed
// mutex and a shared timed mutex, all against steady_clock. Returns how many timed out.
int64_t TimedWaits(int64_t milliseconds) {
  const auto wait = std::chrono::milliseconds(milliseconds);
  std::atomic<int64_t> timeouts{0};
  std::mutex mutex;
  std::condition_variable never_notified;
  std::timed_mutex held;
  std::shared_timed_mutex held_exclusively;
  held.lock();
  held_exclusively.lock();
  std::thread waiter([&] {
    std::unique_lock<std::mutex> lock(mutex);
    if (never_notified.wait_until(lock, std::chrono::steady_clock::now() + wait) == std::cv_status::timeout) {
      ++timeouts;
    }
  });
  std::thread locker([&] {
    if (!held.try_lock_until(std::chrono::steady_clock::now() + wait)) ++timeouts;
  });
  std::thread reader([&] {
    if (!held_exclusively.try_lock_shared_until(std::chrono::steady_clock::now() + wait)) ++timeouts;
  });
  waiter.join();
  locker.join();
  reader.join();
  held.unlock();
  held_exclusively.unlock();
  return timeouts.load();
}

}  // namespace timed_waits

TVM_FFI_DLL_EXPORT_TYPED_FUNC(timed_waits, timed_waits::TimedWaits);
