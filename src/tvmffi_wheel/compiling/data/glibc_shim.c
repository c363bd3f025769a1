/* glibc_shim.c: what GCC's libstdc++.a and CUDA's libcudart_static.a use from glibc
 * releases newer than the one a zig link targets (toolchain = "zig" with the libstdc++
 * C++ runtime). tvmffi-wheel compiles it for the target and links it into every shared
 * library; everything here is hidden, so nothing leaves the library.
 *
 *   __libc_single_threaded (2.32)   0: "the process may have threads", which is always safe
 *   arc4random* (2.36), getentropy (2.25)   the getrandom system call, /dev/urandom before it
 *   pthread_*_clock*, sem_clockwait (2.30)   glibc's own where the running glibc has them
 *       (looked up once with dlvsym), otherwise the *timed* call with the deadline moved
 *       to CLOCK_REALTIME, the clock those calls measure against.
 *
 * Defining TVMFFI_WHEEL_SHIM_NO_DLVSYM leaves glibc's clock* calls out, so that tests can
 * run the fallback on a glibc that has them.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SHIM __attribute__((visibility("hidden")))

SHIM char __libc_single_threaded = 0;

/* ------------------------------------------------------------------ randomness */

static int read_urandom(unsigned char *out, size_t length) {
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  while (length > 0) {
    ssize_t got = read(fd, out, length);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      close(fd);
      return -1;
    }
    out += got;
    length -= (size_t)got;
  }
  close(fd);
  return 0;
}

static int fill_random(void *buffer, size_t length) {
  unsigned char *out = buffer;
  while (length > 0) {
#ifdef SYS_getrandom
    long got = syscall(SYS_getrandom, out, length, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0 && errno == ENOSYS) return read_urandom(out, length); /* Linux before 3.17 */
    if (got <= 0) return -1;
    out += got;
    length -= (size_t)got;
#else
    return read_urandom(out, length);
#endif
  }
  return 0;
}

SHIM int getentropy(void *buffer, size_t length) {
  if (length > 256) {
    errno = EIO;
    return -1;
  }
  return fill_random(buffer, length);
}

SHIM void arc4random_buf(void *buffer, size_t length) {
  if (fill_random(buffer, length) != 0) abort(); /* as glibc's: there is no way to report it */
}

SHIM uint32_t arc4random(void) {
  uint32_t value;
  arc4random_buf(&value, sizeof value);
  return value;
}

SHIM uint32_t arc4random_uniform(uint32_t upper_bound) {
  if (upper_bound < 2) return 0;
  uint32_t floor = -upper_bound % upper_bound; /* rejects the values that would bias the result */
  for (;;) {
    uint32_t value = arc4random();
    if (value >= floor) return value % upper_bound;
  }
}

/* ------------------------------------------------------------------ clock* waits */

/* ``deadline`` on ``clock`` as the same moment on CLOCK_REALTIME; EINVAL for a clock the
 * clock* calls do not accept. */
static int realtime_deadline(clockid_t clock, const struct timespec *deadline, struct timespec *out) {
  if (clock == CLOCK_REALTIME) {
    *out = *deadline;
    return 0;
  }
  if (clock != CLOCK_MONOTONIC) return EINVAL;
  struct timespec now_clock, now_real;
  clock_gettime(clock, &now_clock);
  clock_gettime(CLOCK_REALTIME, &now_real);
  long long left = (long long)(deadline->tv_sec - now_clock.tv_sec) * 1000000000LL +
                   (deadline->tv_nsec - now_clock.tv_nsec);
  if (left < 0) left = 0;
  long long nanoseconds = now_real.tv_nsec + left % 1000000000LL;
  out->tv_sec = now_real.tv_sec + (time_t)(left / 1000000000LL) + (time_t)(nanoseconds / 1000000000LL);
  out->tv_nsec = (long)(nanoseconds % 1000000000LL);
  return 0;
}

static void *glibc_function(const char *name) {
#ifdef TVMFFI_WHEEL_SHIM_NO_DLVSYM
  (void)name;
  return NULL;
#else
  return dlvsym(RTLD_DEFAULT, name, "GLIBC_2.30");
#endif
}

/* glibc's function, looked up once per process (a race only looks it up twice). */
#define GLIBC_FUNCTION(type, name)                                        \
  static type name##_glibc(void) {                                        \
    static int looked_up;                                                 \
    static type found;                                                    \
    if (!__atomic_load_n(&looked_up, __ATOMIC_ACQUIRE)) {                 \
      __atomic_store_n(&found, (type)glibc_function(#name), __ATOMIC_RELAXED); \
      __atomic_store_n(&looked_up, 1, __ATOMIC_RELEASE);                  \
    }                                                                     \
    return __atomic_load_n(&found, __ATOMIC_RELAXED);                     \
  }

typedef int (*cond_clockwait_fn)(pthread_cond_t *, pthread_mutex_t *, clockid_t, const struct timespec *);
typedef int (*mutex_clocklock_fn)(pthread_mutex_t *, clockid_t, const struct timespec *);
typedef int (*rwlock_clocklock_fn)(pthread_rwlock_t *, clockid_t, const struct timespec *);
typedef int (*sem_clockwait_fn)(sem_t *, clockid_t, const struct timespec *);

GLIBC_FUNCTION(cond_clockwait_fn, pthread_cond_clockwait)
GLIBC_FUNCTION(sem_clockwait_fn, sem_clockwait)

SHIM int pthread_cond_clockwait(pthread_cond_t *cond, pthread_mutex_t *mutex, clockid_t clock,
                                const struct timespec *deadline) {
  cond_clockwait_fn glibc = pthread_cond_clockwait_glibc();
  if (glibc) return glibc(cond, mutex, clock, deadline);
  struct timespec real;
  int error = realtime_deadline(clock, deadline, &real);
  return error ? error : pthread_cond_timedwait(cond, mutex, &real);
}

/* A clock* lock: glibc's, or its *timed* sibling ``timed`` with the deadline on CLOCK_REALTIME. */
#define CLOCK_LOCK(name, function_type, object_type, timed)                             \
  GLIBC_FUNCTION(function_type, name)                                                   \
  SHIM int name(object_type *object, clockid_t clock, const struct timespec *deadline) { \
    function_type glibc = name##_glibc();                                               \
    if (glibc) return glibc(object, clock, deadline);                                   \
    struct timespec real;                                                               \
    int error = realtime_deadline(clock, deadline, &real);                              \
    return error ? error : timed(object, &real);                                        \
  }

CLOCK_LOCK(pthread_mutex_clocklock, mutex_clocklock_fn, pthread_mutex_t, pthread_mutex_timedlock)
CLOCK_LOCK(pthread_rwlock_clockrdlock, rwlock_clocklock_fn, pthread_rwlock_t, pthread_rwlock_timedrdlock)
CLOCK_LOCK(pthread_rwlock_clockwrlock, rwlock_clocklock_fn, pthread_rwlock_t, pthread_rwlock_timedwrlock)

/* Unlike the pthread calls, sem_* report errors through errno. */
SHIM int sem_clockwait(sem_t *semaphore, clockid_t clock, const struct timespec *deadline) {
  sem_clockwait_fn glibc = sem_clockwait_glibc();
  if (glibc) return glibc(semaphore, clock, deadline);
  struct timespec real;
  int error = realtime_deadline(clock, deadline, &real);
  if (error) {
    errno = error;
    return -1;
  }
  return sem_timedwait(semaphore, &real);
}
