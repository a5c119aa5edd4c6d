"""Demand estimators: what arrival rate the planner should provision for.

`ewma` (the default) smooths the arrival rate the load balancer observes between two
heartbeats. `inflight` reproduces the artifact: the number of queries in the system (which
approximates rate x latency, not a rate), smoothed the same way.

Smoothing is on trace time, not per observation: `alpha` is the weight of one `period_s` of
trace time, and a sample covering dt seconds weighs 1 - (1 - alpha)^(dt / period_s). So the
estimate is the same whether the samples come every second, every three seconds, or late.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Ewma:
    """Exponentially weighted moving average on time: `alpha` is the weight of `period_s` seconds."""

    alpha: float
    period_s: float = 1.0
    value: float | None = None

    def update(self, sample: float, dt_s: float) -> float:
        if self.value is None:
            self.value = sample
        else:
            weight = 1.0 - (1.0 - self.alpha) ** (max(dt_s, 0.0) / self.period_s)
            self.value = weight * sample + (1.0 - weight) * self.value
        return self.value


class DemandEstimator:
    def __init__(self, kind: str, alpha: float, factor: float, period_s: float = 1.0) -> None:
        if kind not in ("ewma", "inflight"):
            raise ValueError(f"approach.demand: unknown estimator {kind!r} (allowed: ewma, inflight)")
        self.kind = kind
        self.factor = factor
        self._ewma = Ewma(alpha, period_s)

    def update(self, arrivals: int, dt_s: float, inflight: float) -> float:
        """Fold in the arrivals of the last `dt_s` trace seconds (and the in-flight count);
        returns the demand estimate in queries/s."""
        if self.kind == "ewma":
            if dt_s > 0:
                self._ewma.update(arrivals / dt_s, dt_s)
        elif inflight > 0:  # the artifact skipped empty samples, so its estimate freezes when idle
            self._ewma.update(inflight, dt_s)
        return self.value

    @property
    def value(self) -> float:
        return self.factor * (self._ewma.value or 0.0)
