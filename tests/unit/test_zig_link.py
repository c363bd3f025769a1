"""cxx-runtime = "libstdc++": the link command zig runs, the compiler wrappers, and the glibc shim."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_toolchain import fake_zig

from tvmffi_wheel.compiling import zig_link
from tvmffi_wheel.compiling.cross_os import HIDDEN_VISIBILITY
from tvmffi_wheel.compiling.settings import ToolchainSettings
from tvmffi_wheel.compiling.toolchain import SHIM_SOURCE, SHIM_SYMBOLS, plan_toolchain
from tvmffi_wheel.compiling.zig_link import LinkRefused, explain_failure, link_command
from tvmffi_wheel.compiling.zig_wrappers import write_toolchain_files

RECIPE = {
    "zig": "/cache/zig/zig", "target": "x86_64-linux-gnu.2.28", "glibc": "2.28",
    "libstdcxx": "/usr/lib/gcc/x86_64-linux-gnu/12/libstdc++.a", "shim": "/build/zig/glibc_shim.o",
    "version_script": "/kept/runtime.map",
}


def test_the_link_goes_to_zig_with_the_private_runtime_and_no_undefined_symbol(tmp_path):
    arguments = ["-fPIC", "-O3", "-shared", "-Wl,-soname,libk.so", "-o", "libk.so", "k.o", "cu.o",
                 f"-L{tmp_path}", "-lcudart_static", "-Wl,-rpath,$ORIGIN/../tvm_ffi/lib", "-ltvm_ffi"]
    command = link_command(arguments, RECIPE)
    assert command[:4] == ["/cache/zig/zig", "cc", "-target", "x86_64-linux-gnu.2.28"]
    assert command[4:-7] == arguments  # the project's own arguments, in order
    assert command[-7:] == ["/build/zig/glibc_shim.o", RECIPE["libstdcxx"], "-lunwind", "-lm",
                            "-Wl,-z,defs", "-Wl,--gc-sections", "-Wl,--version-script=/kept/runtime.map"]


def test_a_version_script_of_the_projects_own_is_its_decision():
    arguments = ["-shared", "-o", "libk.so", "k.o", "-Wl,--version-script=/project/exports.map"]
    command = link_command(arguments, RECIPE)
    assert command[4:-6] == arguments
    assert not any("runtime.map" in argument for argument in command)


def test_what_zig_refuses_or_the_host_glibc_holds_is_left_out():
    arguments = ["-shared", "-o", "libk.so", "k.o", "-Wl,--exclude-libs,ALL", "-static-libstdc++",
                 "-static-libgcc", "/usr/lib/x86_64-linux-gnu/librt.a", "/lib64/libpthread.a",
                 "-L/nonexistent/cuda/lib/stubs", "/opt/mine/librt.a"]
    kept = link_command(arguments, RECIPE)[4:-7]
    # A librt.a of the project's own is not glibc's, and stays.
    assert kept == ["-shared", "-o", "libk.so", "k.o", "/opt/mine/librt.a"]


def test_response_files_are_read(tmp_path):
    (tmp_path / "objects.rsp").write_text("'a b.o' c.o -Wl,--exclude-libs,ALL\n")
    kept = link_command(["-shared", f"@{tmp_path / 'objects.rsp'}", "-o", "libk.so"], RECIPE)[4:-7]
    assert kept == ["-shared", "a b.o", "c.o", "-o", "libk.so"]


@pytest.mark.parametrize("argument", ["-lstdc++", "-lgcc_s", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
                                      "/usr/lib/gcc/x86_64-linux-gnu/12/libstdc++.so"])
def test_the_shared_cxx_runtime_asked_for_on_purpose_is_refused(argument):
    with pytest.raises(LinkRefused) as refused:
        link_command(["-shared", "-o", "libk.so", "k.o", argument], RECIPE)
    message = str(refused.value)
    assert f"the link of libk.so asks for the shared C++ runtime ({argument})" in message
    assert 'set toolchain = "system"' in message and "glibc 2.28" in message


def test_a_failed_link_names_the_symbols_and_the_release_that_has_them():
    output = ("error: undefined symbol: __cxa_thread_atexit_impl\n    note: referenced by atexit_thread.o\n"
              "error: undefined symbol: my_helper\n")
    hint = explain_failure(output, "2.17")
    assert "neither in glibc 2.17 nor in the libraries linked: __cxa_thread_atexit_impl, my_helper" in hint
    assert '__cxa_thread_atexit_impl is in glibc 2.18 and later: set glibc = "2.18" or newer' in hint
    assert explain_failure("error: something else\n", "2.17") == ""


def test_main_refuses_with_one_line_and_status_1(tmp_path, capsys):
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps(RECIPE))
    status = zig_link.main(["-shared", "-o", "libk.so", "-lstdc++"], {zig_link.RECIPE_VARIABLE: str(recipe)})
    assert status == 1
    assert capsys.readouterr().err.startswith("tvmffi-wheel: the link of libk.so asks for the shared C++ runtime")


def test_libstdcxx_setup_wraps_the_system_compilers(tmp_path):
    fake_zig(tmp_path / "env")
    plan = plan_toolchain(ToolchainSettings(name="zig", glibc="2.28"), uses_cuda=True, user_defines={},
                          environ={"PATH": os.environ["PATH"]}, search_path=[str(tmp_path / "env")])
    assert plan.cxx_runtime == "libstdc++" and plan.libstdcxx is not None and plan.libstdcxx.name == "libstdc++.a"
    environ = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    setup = write_toolchain_files(plan, environ)
    text = Path(setup.defines["CMAKE_TOOLCHAIN_FILE"]).read_text()
    recipe = json.loads(Path(setup.environment[zig_link.RECIPE_VARIABLE]).read_text())
    assert recipe["target"] == "x86_64-linux-gnu.2.28" and recipe["libstdcxx"] == str(plan.libstdcxx)
    assert Path(recipe["shim"]).is_file() and Path(recipe["version_script"]).is_file()
    assert setup.environment[zig_link.SCRIPT_VARIABLE] == zig_link.__file__
    # The wrappers live outside the build, at a path named after their text, the same for every build.
    assert write_toolchain_files(plan, environ) == setup
    wrapper = Path(text.split("set(CMAKE_CUDA_HOST_COMPILER ")[1].split(")")[0].strip('"'))
    assert str(tmp_path / "cache" / "tvmffi-wheel" / "toolchains") in str(wrapper)
    assert plan.link_facts()["glibc_shim"] == ", ".join(SHIM_SYMBOLS)


def _run_wrapper(wrapper: Path, arguments: list[str], tmp_path: Path) -> str:
    """What the wrapper runs for ``arguments``: a fake Python and a fake compiler print it."""
    env = {"PATH": os.environ["PATH"], zig_link.PYTHON_VARIABLE: "echo", zig_link.SCRIPT_VARIABLE: "LINK"}
    return subprocess.run([str(wrapper), *arguments], env=env, capture_output=True, text=True, check=True).stdout


def test_the_wrapper_hands_only_shared_links_to_zig(tmp_path):
    compiler = tmp_path / "bin" / "g++"
    compiler.parent.mkdir()
    compiler.write_text('#!/bin/sh\necho COMPILER "$@"\n')
    compiler.chmod(0o755)
    fake_zig(tmp_path / "env")
    plan = plan_toolchain(ToolchainSettings(name="zig", cxx_runtime="libstdc++"), uses_cuda=False,
                          user_defines={}, environ={"PATH": os.environ["PATH"], "CXX": "g++"},
                          search_path=[str(tmp_path / "env")])
    plan = type(plan)(**{**plan.__dict__, "compilers": (compiler, compiler)})
    setup = write_toolchain_files(plan, {"XDG_CACHE_HOME": str(tmp_path / "cache")})
    text = Path(setup.defines["CMAKE_TOOLCHAIN_FILE"]).read_text()
    wrapper = Path(text.split("set(CMAKE_CXX_COMPILER ")[1].split(")")[0].strip('"'))
    # Compiles get hidden visibility first, so the project's own flags win.
    hidden = " ".join(HIDDEN_VISIBILITY)
    assert _run_wrapper(wrapper, ["-shared", "-c", "a.cc"], tmp_path) == f"COMPILER {hidden} -shared -c a.cc\n"
    assert _run_wrapper(wrapper, ["-o", "app", "a.o"], tmp_path) == "COMPILER -o app a.o\n"
    assert _run_wrapper(wrapper, ["-shared", "-o", "lib a.so", "a.o"], tmp_path) == "-I LINK -shared -o lib a.so a.o\n"


SHIM_TEST = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

int getentropy(void *, size_t);
uint32_t arc4random(void);
uint32_t arc4random_uniform(uint32_t);
extern char __libc_single_threaded;

static struct timespec in_ms(clockid_t clock, long ms) {
  struct timespec t;
  clock_gettime(clock, &t);
  t.tv_nsec += ms * 1000000L;
  t.tv_sec += t.tv_nsec / 1000000000L;
  t.tv_nsec %= 1000000000L;
  return t;
}

static long elapsed_ms(struct timespec start) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (now.tv_sec - start.tv_sec) * 1000L + (now.tv_nsec - start.tv_nsec) / 1000000L;
}

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;

/* From another thread: the thread holding a rwlock gets EDEADLK instead of a wait. */
static void *clocklock_rwlock(void *write) {
  struct timespec deadline = in_ms(CLOCK_MONOTONIC, 20);
  int error = write ? pthread_rwlock_clockwrlock(&lock, CLOCK_MONOTONIC, &deadline)
                    : pthread_rwlock_clockrdlock(&lock, CLOCK_MONOTONIC, &deadline);
  if (error == 0) pthread_rwlock_unlock(&lock);
  return (void *)(intptr_t)error;
}

static int rwlock_error(int write) {
  pthread_t thread;
  void *error;
  pthread_create(&thread, NULL, clocklock_rwlock, write ? (void *)1 : NULL);
  pthread_join(thread, &error);
  return (int)(intptr_t)error;
}

#define CHECK(what) do { if (!(what)) { printf("failed: %s\n", #what); return 1; } } while (0)

int main(void) {
  struct timespec start, deadline;
  pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
  sem_t semaphore;
  CHECK(__libc_single_threaded == 0);
  clockid_t clocks[] = {CLOCK_MONOTONIC, CLOCK_REALTIME};
  for (int i = 0; i < 2; ++i) {
    clock_gettime(CLOCK_MONOTONIC, &start);
    deadline = in_ms(clocks[i], 60);
    pthread_mutex_lock(&mutex);
    CHECK(pthread_cond_clockwait(&cond, &mutex, clocks[i], &deadline) == ETIMEDOUT);
    pthread_mutex_unlock(&mutex);
    CHECK(elapsed_ms(start) >= 59);
  }
  deadline = in_ms(CLOCK_MONOTONIC, 20);
  CHECK(pthread_cond_clockwait(&cond, &mutex, CLOCK_PROCESS_CPUTIME_ID, &deadline) == EINVAL);
  pthread_mutex_lock(&mutex);  /* held, by this thread: a normal mutex waits out the deadline */
  deadline = in_ms(CLOCK_MONOTONIC, 20);
  CHECK(pthread_mutex_clocklock(&mutex, CLOCK_MONOTONIC, &deadline) == ETIMEDOUT);
  pthread_mutex_unlock(&mutex);
  deadline = in_ms(CLOCK_MONOTONIC, 20);
  CHECK(pthread_mutex_clocklock(&mutex, CLOCK_MONOTONIC, &deadline) == 0);
  pthread_mutex_unlock(&mutex);
  pthread_rwlock_wrlock(&lock);
  CHECK(rwlock_error(0) == ETIMEDOUT);
  CHECK(rwlock_error(1) == ETIMEDOUT);
  pthread_rwlock_unlock(&lock);
  pthread_rwlock_rdlock(&lock);
  CHECK(rwlock_error(0) == 0);
  CHECK(rwlock_error(1) == ETIMEDOUT);
  pthread_rwlock_unlock(&lock);
  sem_init(&semaphore, 0, 0);
  deadline = in_ms(CLOCK_MONOTONIC, 20);
  CHECK(sem_clockwait(&semaphore, CLOCK_MONOTONIC, &deadline) == -1 && errno == ETIMEDOUT);
  deadline = in_ms(CLOCK_MONOTONIC, 20);
  CHECK(sem_clockwait(&semaphore, CLOCK_PROCESS_CPUTIME_ID, &deadline) == -1 && errno == EINVAL);
  sem_post(&semaphore);
  deadline = in_ms(CLOCK_MONOTONIC, 20);
  CHECK(sem_clockwait(&semaphore, CLOCK_MONOTONIC, &deadline) == 0);
  unsigned char bytes[64] = {0}, zeros[64] = {0};
  CHECK(getentropy(bytes, sizeof bytes) == 0);
  CHECK(memcmp(bytes, zeros, sizeof bytes) != 0);
  CHECK(getentropy(bytes, 257) == -1 && errno == EIO);
  CHECK(arc4random() != arc4random() || arc4random() != arc4random());
  for (int i = 0; i < 1000; ++i) CHECK(arc4random_uniform(7) < 7);
  CHECK(arc4random_uniform(1) == 0);
  printf("ok\n");
  return 0;
}
"""


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
@pytest.mark.parametrize("fallback", [False, True], ids=["glibc-calls", "timedwait-fallback"])
def test_the_shim_behaves_like_glibc(tmp_path, fallback):
    """Compiled with this machine's gcc into a program: glibc's clock* calls where the running
    glibc has them (dlvsym), and the *timed* fallback an older glibc gets."""
    source = tmp_path / "shim_test.c"
    source.write_text(SHIM_TEST.replace("#include <stdio.h>", "#include <stdio.h>\n#include <string.h>"))
    program = tmp_path / "shim_test"
    defines = ["-DTVMFFI_WHEEL_SHIM_NO_DLVSYM"] if fallback else []
    subprocess.run(["gcc", "-O1", "-Wall", "-Werror", *defines, str(SHIM_SOURCE), str(source), "-o", str(program),
                    "-lpthread", "-ldl"], check=True, capture_output=True)
    result = subprocess.run([str(program)], capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (0, "ok\n")


@pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("nm") is None, reason="needs gcc and nm")
def test_the_recorded_shim_symbols_are_what_the_shim_defines(tmp_path):
    subprocess.run(["gcc", "-c", "-fPIC", str(SHIM_SOURCE), "-o", str(tmp_path / "shim.o")], check=True)
    listing = subprocess.run(["nm", "--defined-only", str(tmp_path / "shim.o")], capture_output=True, text=True,
                             check=True).stdout
    defined = {line.split()[-1] for line in listing.splitlines() if line.split()[1] in "TDB"}
    assert defined == set(SHIM_SYMBOLS)
