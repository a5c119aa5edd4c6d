"""reparallelization: re-optimise at every event, but every replica stops and every GPU reloads
its shard from storage (load bandwidth `spot.load_gbps`), and interrupted requests restart
from token 0. On an acquisition the old replicas serve until the new instances are there."""

from __future__ import annotations

from collections.abc import Mapping

from runtime.policies.spotserve.device_mapper import rank_order
from runtime.policies.spotserve.fleet import Fleet, replicas_from
from runtime.policies.spotserve.layout import InterruptedBatch
from runtime.policies.spotserve.migration_planner import reload_time_s
from runtime.policies.spotserve.reconfiguration import (
    Change,
    Drain,
    Notice,
    Rebuild,
    ReplicaPlan,
    SpotApproach,
    alive_after,
    nothing_runs,
)


class Reparallelization(SpotApproach):
    name = "reparallelization"

    def plan_notice(self, fleet: Fleet, event: Change, required_tpt: float, now: float) -> Notice:
        if event.op == "end":
            return self.end(fleet, event)
        alive = alive_after(fleet.alive, event)
        choice = self.choose(alive, required_tpt)
        if event.op != "remove" and choice.config == fleet.config:
            return self.unchanged(fleet, event, alive, choice)
        grows = len(alive) > len(fleet.alive)
        if self.spot.mechanics.deadline_from_cost:
            deadline = self.deadline(event, self.spot.switch_overhead_s, grows)  # the artifact's cost: 0.5 s
        else:
            deadline = event.at_s if event.op == "remove" else event.at_s + self.spot.switch_overhead_s
        drains = tuple(Drain(r.id, deadline, False, not grows) for r in fleet.replicas)
        return Notice(event, alive, choice, drains, rebuild_at=deadline, reason=choice.reason)

    def rebuild(self, fleet: Fleet, notice: Notice, interrupted: Mapping[int, InterruptedBatch]) -> Rebuild:
        new = notice.choice.config
        if notice.reason == "unchanged":
            return Rebuild(Fleet(notice.alive_after, fleet.config, fleet.replicas), reason="unchanged")
        if new.is_zero:
            return nothing_runs(notice, interrupted)
        mapping = rank_order(self.model, fleet.config, fleet.layout(), new, self.gpus(notice.alive_after))
        reload_s = reload_time_s(self.model, new, self.spot.load_gbps) + self.spot.restart_s
        replicas = replicas_from(mapping, self.fresh_ids(new.dp))
        ready = notice.rebuild_at + reload_s
        return Rebuild(
            Fleet(notice.alive_after, new, tuple(replicas)),
            tuple(ReplicaPlan(r, ready) for r in replicas),
            restarted=tuple(interrupted),
            migration_s=reload_s,
            reason=notice.reason,
        )
