"""Batch latency from a profile: interpolated between profiled sizes, never "anything else is 4"."""

from __future__ import annotations

import pytest

from runtime.profiles import batch_latency_s, throughput_qps

SIZES = [1, 2, 4, 8, 16, 32]
SDV15 = [1780, 2160, 3680, 6790, 12880, 25350]


def test_profiled_sizes_are_exact() -> None:
    for b, ms in zip(SIZES, SDV15, strict=True):
        assert batch_latency_s(SIZES, SDV15, b) == pytest.approx(ms / 1000)


def test_between_sizes_is_linear() -> None:
    assert batch_latency_s(SIZES, SDV15, 3) == pytest.approx((2160 + 3680) / 2 / 1000)
    assert batch_latency_s(SIZES, SDV15, 12) == pytest.approx((6790 + 12880) / 2 / 1000)
    assert batch_latency_s(SIZES, SDV15, 12) > batch_latency_s(SIZES, SDV15, 8) * 1.4, "not timed as batch 4"


def test_beyond_the_largest_extends_the_last_slope() -> None:
    assert batch_latency_s([1, 2], [100, 150], 4) == pytest.approx(0.25)
    assert batch_latency_s([1], [100], 3) == pytest.approx(0.1)


def test_throughput_and_bad_batch() -> None:
    assert throughput_qps(SIZES, SDV15, 4) == pytest.approx(4 / 3.68)
    with pytest.raises(ValueError, match="batch size must be >= 1"):
        batch_latency_s(SIZES, SDV15, 0)
