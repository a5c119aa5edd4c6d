"""fixed_threshold: a DiffServe approach from outside the repository (docs/extending.md).

The threshold stays where the config puts it (`approach.options.threshold`); every plan splits
the GPU workers so that the heavy tier covers the deferred share f(t) of the demand and the
light tier the rest. A plan that cannot cover the demand says so (`feasible=False`): the run's
summary, the console and the comparison table count those plans.
"""

from __future__ import annotations

import math

import numpy as np

from runtime.policies.diffserve.plan import AllocationPlan, Approach, Observation
from runtime.profiles import throughput_qps


class FixedThreshold(Approach):
    name = "fixed_threshold"

    def required_workers(self, workers: int) -> int:
        return 2  # one per tier: a deferred query needs a heavy worker

    def plan(self, obs: Observation) -> AllocationPlan:
        threshold = float(self.config.options.get("threshold", 0.5))
        curve = self.cascade.deferral_curve
        deferred = float(np.interp(threshold, curve.x, curve.y))  # f(t): the heavy model's share
        b1, b2 = self.light_batch(), self.heavy_batch()
        light_p = self.cascade.light.profile
        heavy_p = self.cascade.heavy.profile
        p1 = throughput_qps(light_p.batch_sizes, light_p.latency_ms, b1)
        p2 = throughput_qps(heavy_p.batch_sizes, heavy_p.latency_ms, b2)
        demand = obs.demand_qps * self.config.demand_factor
        heavy = min(obs.workers - 1, max(1, math.ceil(demand * deferred / p2)))
        light = obs.workers - heavy
        feasible = light * p1 >= demand and heavy * p2 >= demand * deferred
        return AllocationPlan(
            light_workers=light,
            heavy_workers=heavy,
            light_batch=b1,
            heavy_batch=b2,
            threshold=threshold,
            feasible=feasible,
            reason=f"fixed threshold {threshold:g}, f(t) {deferred:.3f}",
        )
