"""Demand estimators: what arrival rate the planner should provision for.

`ewma` (the default) smooths the arrival rate the load balancer observes between two
heartbeats. `inflight` reproduces the artifact: the number of queries in the system (which
approximates rate x latency, not a rate), smoothed the same way.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Ewma:
    """Exponentially weighted moving average; `alpha` is the newest sample's weight."""

    alpha: float
    value: float | None = None

    def update(self, sample: float) -> float:
        self.value = sample if self.value is None else self.alpha * sample + (1 - self.alpha) * self.value
        return self.value


class DemandEstimator:
    def __init__(self, kind: str, alpha: float, factor: float) -> None:
        if kind not in ("ewma", "inflight"):
            raise ValueError(f"approach.demand: unknown estimator {kind!r} (allowed: ewma, inflight)")
        self.kind = kind
        self.factor = factor
        self._ewma = Ewma(alpha)

    def update(self, arrivals: int, dt_s: float, inflight: float) -> float:
        """Fold in one heartbeat's observation; returns the demand estimate in queries/s."""
        if self.kind == "ewma":
            if dt_s > 0:
                self._ewma.update(arrivals / dt_s)
        elif inflight > 0:  # the artifact skipped empty samples, so its estimate freezes when idle
            self._ewma.update(inflight)
        return self.factor * (self._ewma.value or 0.0)

    @property
    def value(self) -> float:
        return self.factor * (self._ewma.value or 0.0)
