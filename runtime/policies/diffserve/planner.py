"""diffserve: the adaptive controller's plan, found by exact search (no solver).

The plan maximises the threshold t (the share f(t) of queries the heavy model gets) subject to

    x1 * p1(b1) >= D                              light capacity covers the demand
    x2 * p2(b2) >= D * f(t)                       heavy capacity covers the deferred share
    L1(b1) + Ld + q1 + L2(b2) + q2 <= SLO         one light batch (with the discriminator),
                                                  one heavy batch and the queueing fit the SLO
    x1 + x2 = S, x1 >= 1                          every GPU worker is used

where p(b) = b / L(b) is one worker's throughput at batch b and q the queueing delay a new
query expects at a tier (`approach.queueing`):

- `capacity` (ours): q = (queries waiting at the tier) / (the tier's planned capacity), the
  time the planned workers take to drain the backlog a new query finds; it assumes the backlog
  drains at the new plan's rate, so q shrinks as the plan gives the tier more workers;
- `artifact`: the artifact's Little's law (qaware_cascade_ILP.py, solve_ilp): q = smoothed
  queue length / smoothed "demand" of the tier, which its controller fills with in-flight
  counts (runtime/policies/diffserve/demand.py, ArtifactQueueing); it does not depend on the
  plan, and q2 counts even when nothing is deferred, as in the artifact's constraint;
- `none`: q = 0.

The threshold takes the points of the cascade's f(t) table (the artifact's 201), unless
`approach.threshold_grid` asks for an evenly spaced grid (f interpolated in between). For
every (x1, b1, b2) the best t is the largest grid point with D f(t) <= x2 p2(b2) (f is
non-decreasing), so the search is a vectorised sweep over (x1, b1, b2) plus a binary search on
the threshold grid: exact, and well under a millisecond for 64 workers. Among plans with the
best t it takes the one with the lowest peak utilisation max(rho1, rho2), then the lowest
latency. With no feasible plan it falls back to the highest-throughput plan (all light, the
batch with the most throughput within the SLO) and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from runtime.policies.diffserve.plan import AllocationPlan, Approach, Observation, profiled_batches
from runtime.profiles import batch_latency_s
from runtime.schema.diffserve import CascadeConfig, DiffServeApproachConfig

# approach.queueing: how the planner estimates the queueing delay (module docstring).
QUEUEING = ("capacity", "artifact", "none")


@dataclass(frozen=True)
class CascadeModel:
    """The numbers the planner needs, precomputed once per cascade."""

    batches1: np.ndarray  # allowed light batch sizes
    lat1: np.ndarray  # light batch latency incl. the discriminator, seconds
    batches2: np.ndarray
    lat2: np.ndarray
    grid_t: np.ndarray  # threshold grid on [0, 1]
    grid_f: np.ndarray  # f(t) on the grid
    slo_s: float
    # what `plan_cascade` needs that depends on the worker count alone, made once per count (a
    # run plans with the same count again and again)
    _by_workers: dict[int, tuple[np.ndarray, ...]] = field(default_factory=dict, compare=False, repr=False)

    def capacities(self, workers: int) -> tuple[np.ndarray, ...]:
        """x1 (S, 1, 1), light capacity x1 p1(b1) (S, B1, 1), heavy capacity x2 p2(b2) (S, 1, B2)
        and the same floored above zero (a divisor), for every split of `workers`."""
        made = self._by_workers.get(workers)
        if made is None:
            x1 = np.arange(1, workers + 1)[:, None, None]  # (S, 1, 1)
            x2 = workers - x1
            p1 = (self.batches1 / self.lat1)[None, :, None]  # (1, B1, 1)
            p2 = (self.batches2 / self.lat2)[None, None, :]  # (1, 1, B2)
            cap2 = x2 * p2
            made = self._by_workers[workers] = (x1, x1 * p1, cap2, np.maximum(cap2, 1e-12))
        return made

    @staticmethod
    def of(cascade: CascadeConfig, config: DiffServeApproachConfig) -> CascadeModel:
        def tier(
            model_profile_sizes: list[int], latency_ms: list[float], extra_s: float
        ) -> tuple[np.ndarray, np.ndarray]:
            sizes = np.array(profiled_batches(model_profile_sizes, config.batch_sizes))
            lat = np.array([batch_latency_s(model_profile_sizes, latency_ms, int(b)) for b in sizes]) + extra_s
            return sizes, lat

        b1, l1 = tier(
            cascade.light.profile.batch_sizes, cascade.light.profile.latency_ms, cascade.discriminator.latency_ms / 1000
        )
        b2, l2 = tier(cascade.heavy.profile.batch_sizes, cascade.heavy.profile.latency_ms, 0.0)
        curve = cascade.deferral_curve
        if config.threshold_grid is None:
            grid, f = np.asarray(curve.x, dtype=float), np.asarray(curve.y, dtype=float)
        else:
            grid = np.linspace(0.0, 1.0, config.threshold_grid)
            f = np.interp(grid, curve.x, curve.y)
        return CascadeModel(b1, l1, b2, l2, grid, np.maximum.accumulate(f), cascade.slo_s)


def plan_cascade(
    model: CascadeModel,
    workers: int,
    demand_qps: float,
    light_queue: float = 0.0,
    heavy_queue: float = 0.0,
    waits_s: tuple[float, float] | None = None,
) -> AllocationPlan:
    """The best plan for `workers` GPU workers at `demand_qps` (see the module docstring):
    queueing delays from the queues and the planned capacity, or, given `waits_s`, those two
    delays (light, heavy) whatever the plan (the artifact's form)."""
    if workers < 1:
        return AllocationPlan(0, 0, int(model.batches1[0]), int(model.batches2[0]), 0.0, False, "no GPU worker alive")
    demand = max(0.0, demand_qps)
    x1, cap1, cap2, heavy_cap = model.capacities(workers)
    # Largest grid threshold whose deferred load the heavy tier can carry.
    # k, t, deferred and uses_heavy depend on (x1, b2) only: shape (S, 1, B2), broadcast below.
    share = np.minimum(cap2 / max(demand, 1e-12), 1.0) if demand > 0 else np.ones_like(cap2)
    k = np.maximum(np.searchsorted(model.grid_f, share + 1e-12, side="right") - 1, 0)
    t = model.grid_t[k]
    f = model.grid_f[k]
    deferred = demand * f
    uses_heavy = f > 0
    # No division below can be by zero (cap1 > 0, the heavy capacity floored), so no errstate.
    if waits_s is None:
        q1 = light_queue / cap1 if light_queue > 0 else 0.0
        q2 = heavy_queue / heavy_cap if heavy_queue > 0 else 0.0
        latency = model.lat1[None, :, None] + q1 + np.where(uses_heavy, model.lat2[None, None, :] + q2, 0.0)
    else:
        latency = model.lat1[None, :, None] + sum(waits_s) + np.where(uses_heavy, model.lat2[None, None, :], 0.0)
    rho1 = demand / cap1
    rho2 = np.where(uses_heavy, deferred / heavy_cap, 0.0)
    feasible = (cap1 >= demand) & (latency <= model.slo_s)
    # Lexicographic: highest t, then lowest peak utilisation, then lowest latency.
    best_t = np.where(feasible, t, -np.inf).max()
    if best_t == -np.inf:  # nothing feasible (t itself is never -inf)
        return _fallback(model, workers, demand)
    ties = feasible & (t >= best_t - 1e-12)
    peak = np.where(ties, np.maximum(rho1, rho2), np.inf)
    ties &= peak <= peak.min() + 1e-9
    # np.unravel_index's arithmetic on the flat index, without its call
    i, rest = divmod(int(np.argmin(np.where(ties, latency, np.inf))), ties.shape[1] * ties.shape[2])
    j, m = divmod(rest, ties.shape[2])
    light = int(x1[i, 0, 0])
    return AllocationPlan(
        light_workers=light,
        heavy_workers=workers - light,
        light_batch=int(model.batches1[j]),
        heavy_batch=int(model.batches2[m]),
        threshold=float(t[i, 0, m]),
        feasible=True,
        reason="max threshold",
    )


def _fallback(model: CascadeModel, workers: int, demand: float) -> AllocationPlan:
    """All light at the batch with the highest throughput whose latency fits the SLO."""
    fits = model.lat1 <= model.slo_s
    candidates = np.flatnonzero(fits) if fits.any() else np.arange(model.batches1.size)
    j = candidates[np.argmax(model.batches1[candidates] / model.lat1[candidates])]
    capacity = workers * model.batches1[j] / model.lat1[j]
    return AllocationPlan(
        light_workers=workers,
        heavy_workers=0,
        light_batch=int(model.batches1[j]),
        heavy_batch=int(model.batches2[0]),
        threshold=0.0,
        feasible=False,
        reason=f"infeasible: demand {demand:.1f} q/s, all-light capacity {capacity:.1f} q/s; fallback all light",
    )


class DiffServe(Approach):
    name = "diffserve"

    def __init__(self, cascade: CascadeConfig, config: DiffServeApproachConfig) -> None:
        super().__init__(cascade, config)
        self.model = CascadeModel.of(cascade, config)

    def plan(self, obs: Observation) -> AllocationPlan:
        q = self.config.queueing
        if q == "artifact":
            return plan_cascade(self.model, obs.workers, obs.demand_qps, waits_s=obs.artifact_waits_s)
        queue1, queue2 = (obs.light_queue, obs.heavy_queue) if q == "capacity" else (0.0, 0.0)
        return plan_cascade(self.model, obs.workers, obs.demand_qps, queue1, queue2)
