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


class ArtifactQueueing:
    """The artifact's queueing delay per tier (qaware_cascade_ILP.py, solve_ilp: "Little's law"):
    the smoothed queue length of the tier over its smoothed demand, which the artifact's
    controller (computeSystemEWMA) fills with in-flight counts, not rates: every query in the
    system for the light tier, the queries at the heavy tier for the heavy one. Like the
    artifact it takes samples only while something is in flight, and a tier with no demand
    waits 0."""

    def __init__(self, alpha: float, period_s: float = 1.0) -> None:
        self._ewma = [Ewma(alpha, period_s) for _ in range(4)]  # light queue, heavy queue, light, heavy demand

    def update(
        self, light_queue: float, heavy_queue: float, inflight: float, heavy_inflight: float, dt_s: float
    ) -> None:
        if inflight > 0:
            for ewma, sample in zip(self._ewma, (light_queue, heavy_queue, inflight, heavy_inflight), strict=True):
                ewma.update(sample, dt_s)

    @property
    def waits_s(self) -> tuple[float, float]:
        lq, hq, ld, hd = (e.value or 0.0 for e in self._ewma)
        return (lq / ld if ld > 0 else 0.0, hq / hd if hd > 0 else 0.0)
