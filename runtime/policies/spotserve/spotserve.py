"""spotserve: re-optimise the configuration at every event, migrate by the matching plan, and
resume interrupted requests from their last committed token (the paper's system).

- Removal at T: the new configuration is chosen for the GPUs that stay; the replicas drain at
  T - (estimated migration time), committing every decode step that fits, so the migration
  (weights and KV caches, dying GPUs sending first) ends before the instances go.
- Acquisition at T: when the shape is unchanged and only replicas are added, the old ones run
  on and the new ones get their shards from the holders (the fast path); otherwise the old
  replicas serve until T, then drain, migrate and resume.
- The new replicas start after 1/pp of the migration (the rest overlaps computation, stage by
  stage); without overlap (ablation >= 2) after all of it plus two engine starts.
Ablation levels remove, cumulatively, the adaptive optimizer, the overlap, the recovery and the
matching (runtime/policies/spotserve/ablation.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from runtime.policies.spotserve.cost_model import ParallelConfig
from runtime.policies.spotserve.device_mapper import DeviceMapping, map_devices, rank_order, resume_order
from runtime.policies.spotserve.fleet import Fleet, instance_gpus, replicas_from
from runtime.policies.spotserve.layout import Gpu, InterruptedBatch, Position, positions
from runtime.policies.spotserve.migration_planner import MigrationPlan, plan_migration, transfer_time_s
from runtime.policies.spotserve.reconfiguration import (
    Change,
    Drain,
    Notice,
    Rebuild,
    ReplicaPlan,
    SpotApproach,
    alive_after,
    nothing_runs,
    same_shape,
)


class SpotServe(SpotApproach):
    name = "spotserve"
    migrates = True
    pool_batches = 1

    def initial(self, instances: tuple[str, ...], required_tpt: float, now: float = 0.0) -> Rebuild:
        built = super().initial(instances, required_tpt, now)
        if not self.features.adaptive:
            self.shape = built.fleet.config  # ablation >= 1: frozen at the first solve
        return built

    # ------------------------------------------------------------------ notice
    def plan_notice(self, fleet: Fleet, event: Change, required_tpt: float, now: float) -> Notice:
        if event.op == "end":
            return self.end(fleet, event)
        alive = alive_after(fleet.alive, event)
        choice = self.choose(alive, required_tpt)
        new, old = choice.config, fleet.config
        t = event.at_s
        if event.op != "remove" and new == old:
            return self.unchanged(fleet, event, alive, choice)
        if (
            self.features.overlap
            and event.op != "remove"
            and not old.is_zero
            and same_shape(new, old)
            and new.dp >= old.dp
        ):
            keep = tuple(r.id for r in fleet.replicas)
            return Notice(
                event, alive, choice, keep=keep, rebuild_at=t, reason="scale-out fast path: old replicas run on"
            )
        grows = len(alive) > len(fleet.alive)
        if new.is_zero:
            drains = tuple(Drain(r.id, t, False, not grows) for r in fleet.replicas)
            return Notice(event, alive, choice, drains, rebuild_at=t, reason=choice.reason)
        estimate = self._estimate(fleet, new, alive, event)
        # A removal must finish migrating while the dying GPUs can still send; otherwise the
        # old replicas serve until the new instances are there (with the artifact's deadline
        # from the cost, until then plus the estimate).
        deadline = max(now, t - estimate) if event.op == "remove" else self.deadline(event, estimate, grows)
        drains = tuple(Drain(r.id, deadline, self.features.recovery, not grows) for r in fleet.replicas)
        return Notice(event, alive, choice, drains, estimate_s=estimate, rebuild_at=deadline, reason=choice.reason)

    def _dying(self, fleet: Fleet, event: Change) -> list[Gpu]:
        return instance_gpus(event.instances, self.spot.gpus_per_instance) if event.op == "remove" else []

    def _estimate(self, fleet: Fleet, new: ParallelConfig, alive: tuple[str, ...], event: Change) -> float:
        """Migration time if every replica stops half-way through a full batch."""
        old = fleet.config
        expected = {
            r.dp: InterruptedBatch(old.batch, self.model.input_len + self.model.output_len // 2) for r in fleet.replicas
        }
        plan_s, _, _ = self._migrate(fleet, new, alive, event, expected if self.features.recovery else {})
        return plan_s

    def _migrate(
        self,
        fleet: Fleet,
        new: ParallelConfig,
        alive: tuple[str, ...],
        event: Change,
        interrupted: Mapping[int, InterruptedBatch],
    ) -> tuple[float, DeviceMapping, dict[int, int]]:
        """(migration seconds, mapping, resume: new dp -> old dp) for moving to `new`."""
        old, layout = fleet.config, fleet.layout()
        gpus = self.gpus(alive)
        resume = resume_order(interrupted, new.dp) if interrupted else {}
        if self.features.matching:
            mapping = map_devices(self.model, old, layout, new, gpus, self.spot.gpus_per_instance, resume, interrupted)
        else:
            mapping = rank_order(self.model, old, layout, new, gpus, resume, interrupted)
        plan = plan_migration(self.model, old, layout, mapping, self._dying(fleet, event), resume, interrupted)
        seconds = self._transfer_s(plan)
        return seconds, mapping, resume

    def _transfer_s(self, plan: MigrationPlan) -> float:
        """The plan's transfer time plus the switch overhead; a shard that no surviving GPU
        holds is read from storage."""
        return (
            transfer_time_s(plan, self.spot.network_gbps, load_gbps=self.spot.load_gbps) + self.spot.switch_overhead_s
        )

    def _ready(self, start: float, migration_s: float, new: ParallelConfig) -> float:
        if self.features.overlap:
            return start + migration_s / new.pp
        return start + migration_s + 2 * self.spot.restart_s

    # ------------------------------------------------------------------ rebuild
    def rebuild(self, fleet: Fleet, notice: Notice, interrupted: Mapping[int, InterruptedBatch]) -> Rebuild:
        new = notice.choice.config
        if notice.reason == "unchanged":
            return Rebuild(Fleet(notice.alive_after, fleet.config, fleet.replicas), reason="unchanged")
        if new.is_zero:
            return nothing_runs(notice, interrupted)
        if notice.keep:
            return self._fast_path(fleet, notice)
        by_dp = {fleet.replica(rid).dp: batch for rid, batch in interrupted.items()}
        kv = by_dp if self.features.recovery else {}
        migration_s, mapping, resume = self._migrate(fleet, new, notice.alive_after, notice.event, kv)
        plan = plan_migration(
            self.model, fleet.config, fleet.layout(), mapping, self._dying(fleet, notice.event), resume, kv
        )
        ready = self._ready(notice.rebuild_at, migration_s, new)
        replicas = replicas_from(mapping, self.fresh_ids(new.dp))
        old_id = {r.dp: r.id for r in fleet.replicas}
        resumed = {old_id[old_dp]: replicas[j].id for j, old_dp in resume.items()}
        plans = tuple(ReplicaPlan(r, ready, old_id[resume[r.dp]] if r.dp in resume else None) for r in replicas)
        transfers = tuple(
            dataclasses.replace(t, replica=old_id[t.replica]) if t.replica is not None else t for t in plan.transfers
        )
        return Rebuild(
            Fleet(notice.alive_after, new, tuple(replicas)),
            plans,
            resumed,
            tuple(rid for rid in interrupted if rid not in resumed),
            plan.moved_bytes,
            plan.kept_bytes,
            migration_s,
            notice.reason,
            transfers,
        )

    def _fast_path(self, fleet: Fleet, notice: Notice) -> Rebuild:
        """Old replicas keep their GPUs; added replicas take whole free instances' GPUs and
        receive their shards from the current holders."""
        new = notice.choice.config
        assignment: dict[Position, Gpu] = dict(fleet.layout())
        busy = set(assignment.values())
        free = [g for g in self.gpus(notice.alive_after) if g not in busy]
        added = [p for p in positions(new) if p.dp >= fleet.config.dp]
        assignment.update(zip(added, free, strict=False))
        mapping = DeviceMapping(new, {p: assignment[p] for p in positions(new)}, 0.0, "fast_path")
        plan = plan_migration(self.model, fleet.config, fleet.layout(), mapping)
        migration_s = self._transfer_s(plan)
        ready = notice.rebuild_at + migration_s
        fresh = replicas_from(mapping, self.fresh_ids(new.dp))[fleet.config.dp :]
        replicas = fleet.replicas + tuple(fresh)
        return Rebuild(
            Fleet(notice.alive_after, new, replicas),
            tuple(ReplicaPlan(r, ready) for r in fresh),
            moved_bytes=plan.moved_bytes,
            kept_bytes=plan.kept_bytes,
            migration_s=migration_s,
            reason=notice.reason,
            transfers=plan.transfers,
        )
