"""Which worker runs which tier under a plan, moving as few workers as possible."""

from __future__ import annotations

from runtime.policies.diffserve.plan import AllocationPlan
from runtime.records import Tier


def assign_tiers(plan: AllocationPlan, current: dict[str, Tier]) -> dict[str, Tier]:
    """A tier for every worker in `current` (name -> tier it runs now, in a stable order).

    Workers keep their tier while the plan still needs that many of it; the rest fill the
    remaining light, then heavy slots; any worker beyond the plan's total becomes idle.
    """
    want = {Tier.LIGHT: plan.light_workers, Tier.HEAVY: plan.heavy_workers}
    result: dict[str, Tier] = {}
    for name, tier in current.items():
        if want.get(tier, 0) > 0:
            result[name] = tier
            want[tier] -= 1
    for name in current:
        if name in result:
            continue
        for tier in (Tier.LIGHT, Tier.HEAVY):
            if want[tier] > 0:
                result[name] = tier
                want[tier] -= 1
                break
        else:
            result[name] = Tier.IDLE
    return result
