"""Reading the options (settings.py declares them) and the README's table of them.

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
from typing import Any

from tvmffi_wheel.compiling.settings import SECTIONS, Settings
from tvmffi_wheel.errors import TvmFfiWheelError

CONFIG_PREFIX = "tvmffi-wheel."
ENV_PREFIX = "TVMFFI_WHEEL_"
TOML_TABLE = "tool.tvmffi-wheel"


def option_fields() -> list[tuple[str | None, dataclasses.Field]]:
    """(the section's name, or None for a top-level option; the option's field), in the
    README's order."""
    found: list[tuple[str | None, dataclasses.Field]] = []
    for field in dataclasses.fields(Settings):
        if field.name in SECTIONS:
            found += [(field.name, option) for option in dataclasses.fields(SECTIONS[field.name])]
        else:
            found.append((None, field))
    return found


def option_names() -> list[str]:
    return [toml_key(f) for _, f in option_fields()]


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
    known = {env_var(field): toml_key(field) for _, field in option_fields()}
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

    values: dict[str | None, dict[str, Any]] = {}
    for section, field in option_fields():
        key = toml_key(field)
        var = env_var(field)
        if var in environ:
            value = _convert(field, environ[var], f"${var}", from_text=True)
        elif key in from_config:
            value = _convert(field, from_config[key], f"config-settings ({CONFIG_PREFIX}{key})", from_text=True)
        elif key in table:
            value = _convert(field, table[key], f"[{TOML_TABLE}]", from_text=False)
        else:
            continue
        values.setdefault(section, {})[field.name] = value
    sections = {name: section(**values.get(name, {})) for name, section in SECTIONS.items()}
    return Settings(**sections, **values.get(None, {}))  # type: ignore[arg-type]


def reference_markdown() -> str:
    """The configuration reference in the README, generated from the dataclass above."""
    lines = [
        "| option | environment | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    for _, field in option_fields():
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
