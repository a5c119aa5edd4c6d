"""proteus: the query-agnostic baseline of the DiffServe paper (after Proteus, ASPLOS'24).

A share of the new queries goes straight to the heavy model, chosen at random with no
discriminator (`route_heavy`); the rest is served by the light model and never deferred
(threshold 0). The workers are split between the tiers in proportion to the work each share
brings (queries / throughput at the tier's batch), so each tier is sized for its share.

`approach.heavy_share` fixes the share. Left null, the share follows the load as Proteus does:
every plan takes the largest share (on a 1% grid) whose split still covers the estimated
demand, and none when even all-light cannot.
"""

from __future__ import annotations

import hashlib
import math

from runtime.policies.diffserve.plan import AllocationPlan, Approach, Observation
from runtime.profiles import throughput_qps

SHARE_GRID = 101  # 0.00, 0.01, ..., 1.00


def split_for_share(workers: int, share: float, light_qps: float, heavy_qps: float) -> tuple[int, int]:
    """(light, heavy) workers for `share` of the queries on the heavy tier: proportional to the
    seconds of work each tier gets, at least one worker for a tier that gets any query."""
    if share <= 0.0:
        return workers, 0
    if share >= 1.0:
        return 0, workers
    heavy_work, light_work = share / heavy_qps, (1.0 - share) / light_qps
    heavy = round(workers * heavy_work / (heavy_work + light_work))
    heavy = min(max(heavy, 1), workers - 1)
    return workers - heavy, heavy


def capacity_qps(light: int, heavy: int, share: float, light_qps: float, heavy_qps: float) -> float:
    """Arrival rate the split sustains: the tighter of the two tiers."""
    caps = []
    if share < 1.0:
        caps.append(light * light_qps / (1.0 - share))
    if share > 0.0:
        caps.append(heavy * heavy_qps / share)
    return min(caps)


def route_heavy(query_id: int, share: float) -> bool:
    """Whether query `query_id` goes straight to the heavy tier: a uniform draw fixed by the id,
    so that a retry, the wall clock and the virtual clock all route a query the same way."""
    if share <= 0.0:
        return False
    if share >= 1.0:
        return True
    digest = hashlib.blake2b(query_id.to_bytes(8, "little", signed=True), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64 < share


class Proteus(Approach):
    name = "proteus"

    def _rates(self) -> tuple[float, float]:
        light, heavy = self.cascade.light.profile, self.cascade.heavy.profile
        return (
            throughput_qps(light.batch_sizes, light.latency_ms, self.light_batch()),
            throughput_qps(heavy.batch_sizes, heavy.latency_ms, self.heavy_batch()),
        )

    def required_workers(self, workers: int) -> int:
        share = self.config.heavy_share
        return 2 if share is not None and 0.0 < share < 1.0 else 1

    def share(self, workers: int, demand_qps: float) -> float:
        """The fixed share, or the largest one whose split covers `demand_qps`."""
        if self.config.heavy_share is not None:
            return float(self.config.heavy_share)
        light_qps, heavy_qps = self._rates()
        for k in range(SHARE_GRID - 1, -1, -1):
            share = k / (SHARE_GRID - 1)
            light, heavy = split_for_share(workers, share, light_qps, heavy_qps)
            if capacity_qps(light, heavy, share, light_qps, heavy_qps) >= demand_qps:
                return share
        return 0.0

    def plan(self, obs: Observation) -> AllocationPlan:
        light_qps, heavy_qps = self._rates()
        share = self.share(obs.workers, obs.demand_qps)
        light, heavy = split_for_share(obs.workers, share, light_qps, heavy_qps)
        capacity = capacity_qps(light, heavy, share, light_qps, heavy_qps)
        fixed = "fixed" if self.config.heavy_share is not None else f"for {obs.demand_qps:.1f} q/s"
        return AllocationPlan(
            light_workers=light,
            heavy_workers=heavy,
            light_batch=self.light_batch(),
            heavy_batch=self.heavy_batch(),
            threshold=0.0,
            heavy_share=share,
            feasible=math.isfinite(capacity) and capacity >= obs.demand_qps,
            reason=f"proteus: heavy share {share:.2f} ({fixed}), capacity {capacity:.1f} q/s",
        )
