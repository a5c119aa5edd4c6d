"""all_light: every GPU worker runs the light model and nothing is deferred (threshold 0)."""

from __future__ import annotations

from runtime.policies.diffserve.plan import AllocationPlan, Approach, Observation


class AllLight(Approach):
    name = "all_light"

    def plan(self, obs: Observation) -> AllocationPlan:
        return AllocationPlan(
            light_workers=obs.workers,
            heavy_workers=0,
            light_batch=self.light_batch(),
            heavy_batch=self.heavy_batch(),
            threshold=0.0,
            reason="all light",
        )
