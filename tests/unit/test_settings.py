import re
from pathlib import Path

import pytest

from tvmffi_wheel.compiling.settings import CudaSettings, RepairSettings, Settings
from tvmffi_wheel.compiling.settings_reader import load_settings, reference_markdown, split_config_settings
from tvmffi_wheel.errors import TvmFfiWheelError

README = Path(__file__).parents[2] / "README.md"


def test_defaults():
    assert load_settings({}, {}, {}) == Settings(repair=RepairSettings(mode="auto", exclude=(), plat=""))


def test_pyproject_table_is_read():
    pyproject = {"tool": {"tvmffi-wheel": {"repair": "skip", "exclude": ["libfoo.so*"]}}}
    settings = load_settings(pyproject, {}, {})
    assert settings.repair.mode == "skip"
    assert settings.repair.exclude == ("libfoo.so*",)


def test_environment_beats_config_settings_beats_pyproject():
    pyproject = {"tool": {"tvmffi-wheel": {"plat": "manylinux_2_17"}}}
    config = {"tvmffi-wheel.plat": "manylinux_2_28"}
    assert load_settings(pyproject, config, {}).repair.plat == "manylinux_2_28"
    environ = {"TVMFFI_WHEEL_PLAT": "manylinux_2_31"}
    assert load_settings(pyproject, config, environ).repair.plat == "manylinux_2_31"


def test_lists_from_text_are_split_on_semicolons():
    settings = load_settings({}, {"tvmffi-wheel.exclude": "liba.so*;libb.so"}, {})
    assert settings.repair.exclude == ("liba.so*", "libb.so")
    settings = load_settings({}, {}, {"TVMFFI_WHEEL_EXCLUDE": "libc.so*"})
    assert settings.repair.exclude == ("libc.so*",)


def test_misspelled_key_names_the_valid_ones():
    with pytest.raises(TvmFfiWheelError) as caught:
        load_settings({"tool": {"tvmffi-wheel": {"repiar": "skip"}}}, {}, {})
    text = str(caught.value)
    assert "unknown option `repiar`" in text
    assert "did you mean `repair`" in text
    assert "exclude, plat" in text


def test_unknown_config_setting_is_refused():
    with pytest.raises(TvmFfiWheelError, match="unknown option `nope`"):
        load_settings({}, {"tvmffi-wheel.nope": "1"}, {})


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"repair": True}, "`repair` .* must be a string"),
        ({"repair": "sometimes"}, "must be one of auto, skip"),
        ({"exclude": "libfoo.so"}, "`exclude` .* must be a list of strings"),
        ({"exclude": [1]}, "must be a list of strings"),
    ],
)
def test_wrong_types_are_refused(table, message):
    with pytest.raises(TvmFfiWheelError, match=message):
        load_settings({"tool": {"tvmffi-wheel": table}}, {}, {})


def test_table_must_be_a_table():
    with pytest.raises(TvmFfiWheelError, match="must be a table"):
        load_settings({"tool": {"tvmffi-wheel": "skip"}}, {}, {})


def test_our_config_settings_are_not_forwarded():
    ours, theirs = split_config_settings({"tvmffi-wheel.repair": "skip", "wheel.py-api": "py3"})
    assert ours == {"repair": "skip"}
    assert theirs == {"wheel.py-api": "py3"}


def test_readme_reference_is_generated_from_the_settings():
    text = README.read_text()
    block = re.search(
        r"<!-- settings-reference:start -->\n(.*?)<!-- settings-reference:end -->", text, re.S
    )
    assert block, "README.md lost its settings reference markers"
    assert block.group(1) == reference_markdown(), (
        "README.md's configuration reference is stale: paste `tvmffi-wheel settings` into it"
    )


def test_nested_tables_and_dotted_keys_name_the_same_option():
    nested = {"tool": {"tvmffi-wheel": {"cuda": {"runtime": "shared", "compress": False}}}}
    settings = load_settings(nested, {}, {})
    assert (settings.cuda.runtime, settings.cuda.compress) == ("shared", False)
    config = {"tvmffi-wheel.cuda.architectures": "80-real"}
    assert load_settings({}, config, {}).cuda.architectures == "80-real"
    environ = {"TVMFFI_WHEEL_CUDA_ALLOW_ALL_ARCHITECTURES": "true", "TVMFFI_WHEEL_MAX_WHEEL_SIZE_MB": "250"}
    settings = load_settings({}, {}, environ)
    assert settings.cuda.allow_all_architectures is True and settings.repair.max_wheel_size_mb == 250


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"cuda": {"compress": "yes"}}, "`cuda.compress` .* must be true or false"),
        ({"max-wheel-size-mb": "big"}, "`max-wheel-size-mb` .* must be a whole number"),
        ({"cuda": {"runtme": "static"}}, "unknown option `cuda.runtme`"),
    ],
)
def test_nested_option_errors(table, message):
    with pytest.raises(TvmFfiWheelError, match=message):
        load_settings({"tool": {"tvmffi-wheel": table}}, {}, {})


@pytest.mark.parametrize("name", ["tvmffi_wheel", "tvm-ffi-wheel", "TVMFFI-Wheel"])
def test_a_misspelled_table_is_named_with_the_right_spelling(name):
    pyproject = {"tool": {name: {"loader": "pkg/_native.py"}}}
    expected = rf"\[tool\.{name}\] table.*\n  fix: rename it to \[tool\.tvmffi-wheel\]"
    with pytest.raises(TvmFfiWheelError, match=expected):
        load_settings(pyproject, {}, {})
    load_settings({"tool": {"tvmffi-wheel-extras": {}, "scikit-build": {}}}, {}, {})  # not ours: left alone


def test_a_misspelled_config_settings_prefix_is_named():
    expected = r"-C tvmffi_wheel\.loader.*\n  fix: write it as -C tvmffi-wheel\.loader"
    with pytest.raises(TvmFfiWheelError, match=expected):
        load_settings({}, {"tvmffi_wheel.loader": "pkg/_native.py"}, {})


def test_an_unknown_environment_variable_is_named_with_the_closest_one():
    with pytest.raises(TvmFfiWheelError, match=r"(?s)TVMFFI_WHEEL_LODER.*did you mean TVMFFI_WHEEL_LOADER\?"):
        load_settings({}, {}, {"TVMFFI_WHEEL_LODER": "pkg/_native.py"})
    load_settings({}, {}, {"TVMFFI_WHEELHOUSE": "x", "OTHER": "y"})  # another prefix: not ours


def test_each_section_takes_its_options_under_the_names_users_write():
    pyproject = {"tool": {"tvmffi-wheel": {"toolchain": "zig", "glibc": "2.28", "cache": "sccache",
                                           "cuda": {"variant": "name"}, "repair": "skip"}}}
    settings = load_settings(pyproject, {}, {"TVMFFI_WHEEL_CUDA_THREADS": "3"})
    assert (settings.toolchain.name, settings.toolchain.glibc, settings.cache.tool) == ("zig", "2.28", "sccache")
    assert settings.cuda == CudaSettings(variant="name", threads=3)
    assert settings.repair == RepairSettings(mode="skip")
