"""The diurnal rate shape of the DiffServe dynamic traces.

Our own smooth curve on [0, 1] (not the artifact's Azure Functions data): a low start, a dip
about an eighth of the way in, a climb to a peak a little past the middle, then a decline.
A monotone cubic (PCHIP: Fritsch and Carlson's weighted harmonic mean of the slopes inside,
Moler's one-sided estimate at the ends) through a few control points keeps it smooth without
overshoot. It is written here rather than taken from scipy.interpolate, whose import cost a
third of a second of every DiffServe run; it does scipy's arithmetic in scipy's order, so the
values are the same to the bit (tests/test_traces.py compares them).
"""

from __future__ import annotations

import numpy as np

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


def _end_slope(h0: float, h1: float, m0: float, m1: float) -> float:
    """The derivative at an end: a one-sided three-point estimate, kept monotone."""
    d = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    if np.sign(d) != np.sign(m0):
        return 0.0
    if np.sign(m0) != np.sign(m1) and abs(d) > 3.0 * abs(m0):
        return 3.0 * m0
    return float(d)


def pchip(points: tuple[tuple[float, float], ...]) -> tuple[np.ndarray, np.ndarray]:
    """The knots and, per interval, the cubic's coefficients (s^3, s^2, s, 1; s from the
    interval's left knot) of the monotone cubic through `points` (at least 3, x increasing)."""
    x = np.array([p[0] for p in points], dtype=float)
    y = np.array([p[1] for p in points], dtype=float)
    h = np.diff(x)
    m = np.diff(y) / h
    w1 = 2 * h[1:] + h[:-1]
    w2 = h[1:] + 2 * h[:-1]
    # A knot between a rise and a fall (or beside a flat piece) gets slope 0: no overshoot.
    flat = (np.sign(m[1:]) != np.sign(m[:-1])) | (m[1:] == 0) | (m[:-1] == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = (w1 / m[:-1] + w2 / m[1:]) / (w1 + w2)
        d = np.concatenate([[0.0], np.where(flat, 0.0, 1.0 / mean), [0.0]])
    d[0] = _end_slope(h[0], h[1], m[0], m[1])
    d[-1] = _end_slope(h[-1], h[-2], m[-1], m[-2])
    t = (d[:-1] + d[1:] - 2 * m) / h
    return x, np.stack([t / h, (m - d[:-1]) / h - t, d[:-1], y[:-1]])


def evaluate(knots: np.ndarray, coefficients: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The piecewise cubic at `x` (within the knots), summed from the constant term up."""
    i = np.clip(np.searchsorted(knots, x, side="right") - 1, 0, len(knots) - 2)
    s = x - knots[i]
    c = coefficients[:, i]
    return c[3] + c[2] * s + c[1] * (s * s) + c[0] * (s * s * s)


_KNOTS, _COEFFICIENTS = pchip(DIURNAL_POINTS)


def diurnal(x: np.ndarray) -> np.ndarray:
    """Shape value in [0, 1] at trace fractions `x` in [0, 1]."""
    return np.clip(evaluate(_KNOTS, _COEFFICIENTS, np.clip(np.asarray(x, dtype=float), 0.0, 1.0)), 0.0, 1.0)


def per_second_rates(low_qps: float, high_qps: float, duration_s: float, shape: str) -> np.ndarray:
    """Arrival rate of every (whole or last partial) second of the trace, queries per second."""
    n = int(np.ceil(duration_s))
    if shape == "constant":
        return np.full(n, float(high_qps))
    mid = (np.arange(n) + 0.5) / duration_s
    return low_qps + (high_qps - low_qps) * diurnal(mid)
