"""Latency of one batch from a profile table: linear interpolation between profiled sizes.

The artifact timed every size it had not profiled (9-15, 17-31) as a batch of 4; here a batch
of 12 costs what the straight line between the 8 and 16 measurements says.
"""

from __future__ import annotations

import numpy as np


def batch_latency_s(batch_sizes: list[int], latency_ms: list[float], batch: int) -> float:
    """Seconds one batch of `batch` queries takes; beyond the largest profiled size the last
    segment's slope is extended."""
    if batch < 1:
        raise ValueError(f"batch size must be >= 1, got {batch}")
    xs = np.asarray(batch_sizes, dtype=float)
    ys = np.asarray(latency_ms, dtype=float)
    if batch <= xs[-1] or xs.size == 1:
        return float(np.interp(batch, xs, ys)) / 1000.0
    slope = (ys[-1] - ys[-2]) / (xs[-1] - xs[-2])
    return float(ys[-1] + slope * (batch - xs[-1])) / 1000.0


def throughput_qps(batch_sizes: list[int], latency_ms: list[float], batch: int) -> float:
    """Queries per second of one worker that always runs full batches of `batch`."""
    return batch / batch_latency_s(batch_sizes, latency_ms, batch)
