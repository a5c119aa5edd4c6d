"""static: a fixed cascade (the artifact's policy 8), never re-planned.

The cascade config carries the published fixed plan for 16 GPU workers (threshold, batch
sizes, light share). With another worker count the light share is kept; explicit
`approach.light_workers` / `approach.heavy_workers` override it and must fit the workers.
"""

from __future__ import annotations

from runtime.policies.diffserve.plan import AllocationPlan, Approach, Observation


class Static(Approach):
    name = "static"

    def split(self, workers: int) -> tuple[int, int]:
        """(light, heavy) worker counts for `workers` GPU workers."""
        light = self.config.light_workers
        if light is None:
            light = min(workers - 1, max(1, round(workers * self.cascade.static.light_share)))
        heavy = self.config.heavy_workers
        if heavy is None:
            heavy = max(0, workers - light)
        return light, heavy

    def required_workers(self, workers: int) -> int:
        light, heavy = self.split(workers)
        return light + heavy

    def plan(self, obs: Observation) -> AllocationPlan:
        light, heavy = self.split(obs.workers)
        reason = "static"
        if light + heavy > obs.workers:
            # Workers were evicted during the run: keep the light share, shrink both tiers.
            light = min(light, max(1, round(obs.workers * light / (light + heavy))))
            heavy = max(0, obs.workers - light)
            reason = f"static, shrunk to the {obs.workers} workers alive"
        threshold = self.config.threshold
        return AllocationPlan(
            light_workers=light,
            heavy_workers=heavy,
            light_batch=self.config.light_batch or self.cascade.static.light_batch,
            heavy_batch=self.config.heavy_batch or self.cascade.static.heavy_batch,
            threshold=self.cascade.static.threshold if threshold is None else threshold,
            reason=reason,
        )
