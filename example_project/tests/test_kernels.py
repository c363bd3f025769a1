"""Tests of example_kernels' own API, run against the installed wheel."""

import example_kernels
import numpy as np
import pytest


def test_add_one():
    x = np.arange(5, dtype=np.float32)
    out = np.empty_like(x)
    example_kernels.add_one(x, out)
    np.testing.assert_array_equal(out, x + 1)


def test_axpy():
    x = np.linspace(0, 1, 7, dtype=np.float32)
    y = np.full(7, 2.0, dtype=np.float32)
    out = np.empty_like(x)
    example_kernels.axpy(3.0, x, y, out)
    np.testing.assert_allclose(out, 3.0 * x + y, rtol=1e-6)


def test_total():
    x = np.arange(1000, dtype=np.float32)
    assert example_kernels.total(x) == pytest.approx(float(x.sum(dtype=np.float64)))


def test_length_mismatch_raises_value_error():
    with pytest.raises(ValueError, match="length mismatch"):
        example_kernels.add_one(np.zeros(3, np.float32), np.zeros(4, np.float32))


def test_wrong_dtype_raises_type_error():
    with pytest.raises(TypeError, match="float32"):
        example_kernels.total(np.zeros(3, np.float64))


def test_running_mean_object():
    stats = example_kernels.RunningMean()
    stats.update(np.array([1, 2, 3], np.float32))
    stats.update(np.array([10], np.float32))
    assert stats.count == 4
    assert stats.mean == pytest.approx(4.0)
