"""all_heavy: every GPU worker runs the heavy model; queries go straight to it (threshold 1)."""

from __future__ import annotations

from runtime.policies.diffserve.plan import AllocationPlan, Approach, Observation


class AllHeavy(Approach):
    name = "all_heavy"

    def plan(self, obs: Observation) -> AllocationPlan:
        return AllocationPlan(
            light_workers=0,
            heavy_workers=obs.workers,
            light_batch=self.light_batch(),
            heavy_batch=self.heavy_batch(),
            threshold=1.0,
            reason="all heavy",
        )
