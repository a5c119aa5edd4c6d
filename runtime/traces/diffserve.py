"""DiffServe arrival traces: the seeded generator and the artifact's `arrival_ms,prompt_index` format.

The generator draws, for each second i with rate r_i, a Poisson(r_i) number of arrivals placed
uniformly inside that second. Unlike the artifact's script it is seeded, it does not thin low
rates (the artifact kept r(1 - e^-r) arrivals on average), and no arrival spills into the next
second.
"""

from __future__ import annotations

import numpy as np

from runtime.traces.arrivals import ArrivalTrace, read_artifact, write_artifact
from runtime.traces.shape import per_second_rates

__all__ = ["ArrivalTrace", "expected_arrivals", "generate", "read_artifact", "write_artifact"]


def expected_arrivals(low_qps: float, high_qps: float, duration_s: float, shape: str = "diurnal") -> float:
    """The mean number of arrivals `generate` draws (a bound checked before drawing them)."""
    rates = per_second_rates(low_qps, high_qps, duration_s, shape)
    starts = np.arange(rates.size, dtype=float)
    return float(np.sum(rates * np.minimum(1.0, duration_s - starts)))


def generate(
    name: str,
    low_qps: float,
    high_qps: float,
    duration_s: float,
    num_prompts: int,
    seed: int,
    shape: str = "diurnal",
) -> ArrivalTrace:
    """A dynamic trace whose per-second rate follows `shape` scaled between low and high."""
    rng = np.random.default_rng(seed)
    rates = per_second_rates(low_qps, high_qps, duration_s, shape)
    starts = np.arange(rates.size, dtype=float)
    lengths = np.minimum(1.0, duration_s - starts)
    counts = rng.poisson(rates * lengths)
    second = np.repeat(starts, counts)
    offset = rng.random(second.size) * np.repeat(lengths, counts)
    arrival = np.sort(second + offset)
    prompts = rng.integers(0, num_prompts, size=arrival.size)
    return ArrivalTrace(name=name, arrival_s=arrival, prompt_index=prompts.astype(np.int64))
