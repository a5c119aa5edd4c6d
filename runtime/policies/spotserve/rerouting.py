"""rerouting: tensor and pipeline degrees stay at the shape solved for the largest fleet; only
the pipelines that lose a GPU stop (their requests restart from token 0), the others run on;
when enough GPUs arrive, new pipelines are added: they load their shards from storage, and
start one engine start-up later (the artifact's replicas wait for every parameter, then sleep
as long as their start took)."""

from __future__ import annotations

from collections.abc import Mapping

from runtime.policies.spotserve.config_optimizer import choose
from runtime.policies.spotserve.cost_model import ParallelConfig
from runtime.policies.spotserve.fleet import Fleet, Replica, renumbered
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


class Rerouting(SpotApproach):
    name = "rerouting"

    def initial(self, instances: tuple[str, ...], required_tpt: float, now: float = 0.0) -> Rebuild:
        gpus = self.max_instances * self.spot.gpus_per_instance
        self.shape = choose(self.model, gpus, required_tpt).config
        return super().initial(instances, required_tpt, now)

    def plan_notice(self, fleet: Fleet, event: Change, required_tpt: float, now: float) -> Notice:
        if event.op == "end":
            return self.end(fleet, event)
        alive = alive_after(fleet.alive, event)
        choice = self.choose(alive, required_tpt)
        if event.op == "tpt":
            return self.unchanged(fleet, event, alive, choice)
        if event.op == "add":
            # Wait for the instances (the full grace period), then add whole pipelines.
            keep = tuple(r.id for r in fleet.replicas)
            return Notice(event, alive, choice, keep=keep, rebuild_at=event.at_s, reason="add pipelines")
        closing = [r for r in fleet.replicas if r.uses(event.instances)]
        keep = tuple(r.id for r in fleet.replicas if r not in closing)
        grows = len(alive) > len(fleet.alive)
        deadline = self.deadline(event, self.spot.switch_overhead_s, grows)  # the artifact's cost: 0.5 s
        drains = tuple(Drain(r.id, deadline, False, not grows) for r in closing)
        return Notice(
            event, alive, choice, drains, keep=keep, rebuild_at=deadline, reason="close the pipelines that lose a GPU"
        )

    def rebuild(self, fleet: Fleet, notice: Notice, interrupted: Mapping[int, InterruptedBatch]) -> Rebuild:
        shape = self.shape
        assert shape is not None
        kept = tuple(r for r in fleet.replicas if r.id in notice.keep)
        if notice.reason == "unchanged":
            return Rebuild(Fleet(notice.alive_after, fleet.config, fleet.replicas), reason="unchanged")
        if not notice.alive_after:
            return nothing_runs(notice, interrupted)
        busy = {g for r in kept for g in r.gpus}
        free = [g for g in self.gpus(notice.alive_after) if g not in busy]
        world = shape.tp * shape.pp
        total = len(kept) + len(free) // world
        extra = max(0, min(total, notice.choice.config.dp if notice.choice.config.dp else total) - len(kept))
        first = self.fresh_ids(extra)
        fresh = tuple(Replica(first + k, 0, tuple(free[k * world : (k + 1) * world])) for k in range(extra))
        config = (
            ParallelConfig(len(kept) + extra, shape.tp, shape.pp, shape.batch, shape.m1, shape.m2)
            if kept or fresh
            else notice.choice.config
        )
        replicas = renumbered(kept + fresh, config)
        startup = reload_time_s(self.model, config, self.spot.load_gbps) + 2 * self.spot.restart_s if fresh else 0.0
        ready = notice.rebuild_at + startup
        plans = tuple(ReplicaPlan(r, ready) for r in replicas if r.id >= first)
        return Rebuild(
            Fleet(notice.alive_after, config if replicas else notice.choice.config, replicas),
            plans,
            restarted=tuple(interrupted),
            migration_s=startup,
            reason=notice.reason,
        )
