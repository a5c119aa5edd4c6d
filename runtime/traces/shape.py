"""The diurnal rate shape of the DiffServe dynamic traces.

Our own smooth curve on [0, 1] (not the artifact's Azure Functions data): a low start, a dip
about an eighth of the way in, a climb to a peak a little past the middle, then a decline.
A monotone cubic (PCHIP) through a few control points keeps it smooth without overshoot.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import PchipInterpolator

# (fraction of the trace, fraction of the way from the low to the high rate)
DIURNAL_POINTS: tuple[tuple[float, float], ...] = (
    (0.00, 0.12),
    (0.06, 0.17),
    (0.13, 0.00),
    (0.25, 0.30),
    (0.40, 0.62),
    (0.57, 1.00),
    (0.67, 0.96),
    (0.82, 0.60),
    (1.00, 0.10),
)

_DIURNAL = PchipInterpolator([p[0] for p in DIURNAL_POINTS], [p[1] for p in DIURNAL_POINTS])


def diurnal(x: np.ndarray) -> np.ndarray:
    """Shape value in [0, 1] at trace fractions `x` in [0, 1]."""
    return np.clip(_DIURNAL(np.clip(x, 0.0, 1.0)), 0.0, 1.0)


def per_second_rates(low_qps: float, high_qps: float, duration_s: float, shape: str) -> np.ndarray:
    """Arrival rate of every (whole or last partial) second of the trace, queries per second."""
    n = int(np.ceil(duration_s))
    if shape == "constant":
        return np.full(n, float(high_qps))
    mid = (np.arange(n) + 0.5) / duration_s
    return low_qps + (high_qps - low_qps) * diurnal(mid)
