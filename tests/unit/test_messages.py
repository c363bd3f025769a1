"""How entry points end, warnings kept for the wheel, and advice that fits its context."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tvmffi_wheel.commands.compat import WheelUnderTest, select_versions
from tvmffi_wheel.common.tvm_ffi_releases import load_table
from tvmffi_wheel.deciding.device_inventory import check_size
from tvmffi_wheel.errors import (
    TvmFfiWheelError,
    collecting_warnings,
    environment_problem,
    reporting,
    warn,
    warnings_so_far,
)
from tvmffi_wheel.inspecting.device_code import DeviceImage


def test_a_user_error_ends_in_one_message_and_status_1(capsys):
    with pytest.raises(SystemExit) as ended, reporting():
        raise TvmFfiWheelError("the problem", "the fix")
    assert ended.value.code == 1
    assert capsys.readouterr().err == "tvmffi-wheel: error: the problem\n  fix: the fix\n"


def test_ctrl_c_ends_quietly_with_status_130(capsys):
    with pytest.raises(SystemExit) as ended, reporting():
        raise KeyboardInterrupt
    assert ended.value.code == 130 and ended.value.__suppress_context__
    assert capsys.readouterr().err == "tvmffi-wheel: interrupted\n"


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS])
def test_the_machines_errors_are_named_with_a_fix(capsys, code):
    with pytest.raises(SystemExit) as ended, reporting():
        raise OSError(code, "what the system says", "/some/file")
    assert ended.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("tvmffi-wheel: error: what the system says: /some/file\n  fix: ")
    assert "internal error" not in err


def test_any_other_error_is_our_bug(capsys):
    assert environment_problem(OSError(errno.EBADF, "bad file descriptor")) is None
    with pytest.raises(ValueError, match="a bug"), reporting():
        raise ValueError("a bug")
    assert "internal error (ValueError: a bug). This is a bug in tvmffi-wheel" in capsys.readouterr().err


def test_warnings_are_printed_and_collected_once_each(capsys):
    warn("outside any build")
    with collecting_warnings() as collected:
        warn("first")
        warn("second")
        warn("first")
        assert warnings_so_far() == ("first", "second")
    assert collected == ["first", "second"] and warnings_so_far() == ()
    assert capsys.readouterr().err.count("tvmffi-wheel: warning: first\n") == 2


def wheel_under_test(requirement: str) -> WheelUnderTest:
    path = Path("k-1.0-py3-none-manylinux_2_28_x86_64.whl")
    return WheelUnderTest(path, Requirement(requirement), (), (), (), "x86_64")


def test_versions_are_selected_by_name_and_number_whatever_the_commas():
    wheel = wheel_under_test("apache-tvm-ffi>=0.1.12,<0.2")
    admitted = [r.version for r in load_table().for_arch("x86_64") if r.installable and r.version >= Version("0.1.12")]
    assert select_versions("lowest,,highest", wheel) == [admitted[0], admitted[-1]]
    assert select_versions(" lowest , 0.1.3 ", wheel) == [admitted[0], Version("0.1.3")]
    assert select_versions("all,highest", wheel) == admitted
    with pytest.raises(TvmFfiWheelError, match="'newest' is neither a version nor lowest, highest or all"):
        select_versions("newest", wheel)


def test_a_wheel_over_the_size_limit_gets_advice_for_what_it_holds():
    with pytest.raises(TvmFfiWheelError, match="over max-wheel-size-mb = 2") as cpu:
        check_size(3_000_000, 2)
    assert cpu.value.fix is not None and "CUDA" not in cpu.value.fix and "raise max-wheel-size-mb" in cpu.value.fix
    image = DeviceImage("sass", 90, "", 2_500_000, compressed=False)
    with pytest.raises(TvmFfiWheelError, match="over max-wheel-size-mb = 2") as gpu:
        check_size(3_000_000, 2, [image])
    assert gpu.value.fix is not None and gpu.value.fix.startswith("ship fewer CUDA architectures")
