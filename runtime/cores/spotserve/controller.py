"""The SpotServe controller's core: the availability trace on a timer queue, the approach's
decisions, and what the replicas and the request pool are told.

Every event of the trace is a set of timed steps on one queue, ordered by (time, priority,
sequence): it is heard `spot.grace_period_s` before it happens (its notice, `notice_at`), its
change is rebuilt when the approach says (for a removal, by the drain deadline, so the
migration ends before the instances go), and a removal's instances are preempted at its time.
So each event keeps its full grace period whatever the others do. Events heard while another
change is still under way (its rebuild not yet done), or at the same moment, are planned
together with it as one `Change` (runtime/policies/spotserve/reconfiguration.py): the pending
plan is replaced by one for all of them, from the fleet as it is, and the drains move to the
new deadline. An addition that would only arrive after the combined rebuild is left for the
next change.

A worker that stops answering heartbeats (`run.evict_after_missed` in a row) takes its
instance with it, without notice: its replicas are gone at once (the pool takes their
batches back with the tokens they had committed) and the next configuration is planned
without it, as a removal with no grace period (`lost` in the decision log).

The shell (gRPC role or engine) asks `next_due()`, then calls `step(now)` until it returns
None, applying the actions each returns; a rebuild needs the batches the drains stopped, so
`step` first returns `NeedDrainReports` and the shell calls `step(now, stopped)` with them.

| action             | applied by         | meaning                                                   |
| ------------------ | ------------------ | --------------------------------------------------------- |
| AssignReplica      | the replica's GPUs | serve as this replica from `ready_at`                     |
| ReleaseReplica     | the replica's GPUs | the replica is gone (its GPUs are free)                   |
| DrainReplica       | the leader         | stop by `deadline`, keeping committed tokens or not       |
| Requeue            | the pool           | interrupted batches: pinned to new replicas, or restarted |
| ReplicasGone       | the pool           | take back whatever these replicas still hold              |
| Preempt            | the instances      | their workers exit                                        |
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runtime.policies.spotserve.cost_model import ParallelConfig
from runtime.policies.spotserve.fleet import EMPTY, Fleet, Replica
from runtime.policies.spotserve.layout import Gpu
from runtime.policies.spotserve.migration_planner import Transfer
from runtime.policies.spotserve.reconfiguration import (
    Change,
    DrainReport,
    Notice,
    Rebuild,
    Requeue,
    SpotApproach,
    interrupted_batches,
    requeue,
)
from runtime.policies.spotserve.registry import make_approach
from runtime.policies.spotserve.timing import BatchTiming, timing
from runtime.schema.spotserve import ModelConfig, SpotConfig, SpotServeConfig
from runtime.traces.spotserve import AvailabilityEvent, Start, alive_timeline, split_start

REBUILD, PREEMPT, HEAR = 0, 1, 2  # at one time: finish a change, then let instances go, then plan


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class AssignReplica:
    replica: Replica
    ready_at: float
    config: ParallelConfig
    timing: BatchTiming
    transfers: tuple[Transfer, ...] = ()  # what the migration plan sends to its GPUs
    reload: bool = False  # the approach restarts from storage (real execution drops what GPUs hold)


@dataclass(frozen=True)
class ReleaseReplica:
    replica: Replica


@dataclass(frozen=True)
class DrainReplica:
    replica: Replica
    deadline: float
    keep_progress: bool
    conservative: bool = True


@dataclass(frozen=True)
class ReplicasGone:
    replicas: tuple[int, ...]
    at: float


@dataclass(frozen=True)
class Preempt:
    instances: tuple[str, ...]


Action = AssignReplica | ReleaseReplica | DrainReplica | Requeue | ReplicasGone | Preempt


@dataclass(frozen=True)
class NeedDrainReports:
    """The next step rebuilds: call `step(now, stopped)` with these replicas' stopped batches."""

    replicas: tuple[int, ...]


# --------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class _Heard:
    event: AvailabilityEvent
    heard_at: float
    lost: bool = False


@dataclass
class _Pending:
    """A change planned and not yet rebuilt."""

    heard: list[_Heard]
    notice: Notice
    planned_at: float
    plan_ms: float
    seq: int  # the rebuild step that belongs to this plan


@dataclass
class SpotControllerCore:
    approach: SpotApproach
    model: ModelConfig
    spot: SpotConfig
    start_event: AvailabilityEvent
    workers: Mapping[Gpu, str]
    required_tpt: float
    evict_after_missed: int = 3
    timer: Callable[[], float] | None = None  # a monotonic counter, only to log planning times
    fleet: Fleet = EMPTY
    decisions: list[dict[str, Any]] = field(default_factory=list)
    ticks: list[dict[str, Any]] = field(default_factory=list)
    lost: set[str] = field(default_factory=set)
    _queue: list[tuple[float, int, int, Any]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    _waiting: list[_Heard] = field(default_factory=list)
    _pending: _Pending | None = None
    _missed: dict[str, int] = field(default_factory=dict)
    _last_seen: dict[str, float] = field(default_factory=dict)
    _changes: int = 0

    @classmethod
    def of(
        cls,
        approach: SpotApproach,
        model: ModelConfig,
        spot: SpotConfig,
        start: Start,
        workers: Mapping[Gpu, str],
        *,
        evict_after_missed: int = 3,
        timer: Callable[[], float] | None = None,
    ) -> SpotControllerCore:
        core = cls(approach, model, spot, start.first, workers, model.required_tpt, evict_after_missed, timer)
        for event in start.rest:
            core._push(
                max(0.0, event.at_s - spot.grace_period_s), HEAR, _Heard(event, event.at_s - spot.grace_period_s)
            )
            if event.op in ("remove", "end"):
                core._push(event.at_s, PREEMPT, event)
        return core

    @classmethod
    def for_run(
        cls,
        config: SpotServeConfig,
        events: Sequence[AvailabilityEvent],
        workers: Mapping[Gpu, str],
        timer: Callable[[], float] | None,
    ) -> SpotControllerCore:
        """The run's controller core, as the controller role and the engine both build it: the
        approach sized for the largest fleet of the availability trace."""
        max_alive = max((s.spot + s.ondemand for s in alive_timeline(events)), default=0)
        a = config.approach
        approach = make_approach(a.name, config.model, config.spot, config.ablation, max_alive, a.plugin)
        return cls.of(
            approach,
            config.model,
            config.spot,
            split_start(events),
            workers,
            evict_after_missed=config.run.evict_after_missed,
            timer=timer,
        )

    # ------------------------------------------------------------------ the queue
    def _push(self, at: float, priority: int, step: Any) -> int:
        seq = next(self._seq)
        heapq.heappush(self._queue, (at, priority, seq, step))
        return seq

    def next_due(self) -> float | None:
        return self._queue[0][0] if self._queue else None

    def _ms(self, t0: float) -> float:
        return (self.timer() - t0) * 1000.0 if self.timer else math.nan

    # ------------------------------------------------------------------ start
    def start(self, now: float = 0.0) -> list[Action]:
        """The first configuration, on the instances the trace starts with (warm: ready now)."""
        t0 = self.timer() if self.timer else 0.0
        first = self.start_event
        if first.required_tpt is not None:
            self.required_tpt = first.required_tpt
        built = self.approach.initial(first.instances, self.required_tpt, now)
        self.fleet = built.fleet
        self._record([_Heard(first, now)], None, built, now, now, self._ms(t0), 0, 0)
        return self._assignments(built)

    # ------------------------------------------------------------------ steps
    def step(
        self, now: float, stopped: Mapping[int, DrainReport] | None = None
    ) -> list[Action] | NeedDrainReports | None:
        """Handle the next step due by `now`: its actions, `NeedDrainReports` before a rebuild, or
        None when nothing is due."""
        if not self._queue or self._queue[0][0] > now:
            return None
        at, priority, seq, item = self._queue[0]
        if priority == REBUILD:
            if self._pending is None or self._pending.seq != seq:  # a superseded plan's rebuild
                heapq.heappop(self._queue)
                return []
            drained = tuple(d.replica for d in self._pending.notice.drains)
            if stopped is None and drained:
                return NeedDrainReports(drained)
            heapq.heappop(self._queue)
            return self._rebuild(now, stopped or {})
        if priority == PREEMPT:
            heapq.heappop(self._queue)
            event: AvailabilityEvent = item
            return [Preempt(event.instances)] if event.op == "remove" and event.instances else []
        # Every event heard at this moment is planned with the others.
        while self._queue and self._queue[0][0] == at and self._queue[0][1] == HEAR:
            self._waiting.append(heapq.heappop(self._queue)[3])
        return self._plan(now)

    def _plan(self, now: float) -> list[Action]:
        """Plan the pending change (if any) together with every event heard since."""
        t0 = self.timer() if self.timer else 0.0
        heard = [*(self._pending.heard if self._pending else []), *self._waiting]
        heard.sort(key=lambda h: h.event.at_s)
        while True:
            change = Change.of(*(h.event for h in heard))
            tpt = change.required_tpt if change.required_tpt is not None else self.required_tpt
            notice = self.approach.notice(self.fleet, change, tpt, now)
            late = [h for h in heard if h.event.op == "add" and h.event.at_s > notice.rebuild_at + 1e-9]
            if not late or len(late) == len(heard):
                break
            heard = [h for h in heard if h not in late]  # they arrive after this rebuild: next change
        self._waiting = [h for h in self._waiting if h not in heard]
        if change.required_tpt is not None:
            self.required_tpt = change.required_tpt
        superseded = {d.replica for d in self._pending.notice.drains} if self._pending else set()
        seq = self._push(max(now, notice.rebuild_at), REBUILD, None)
        self._pending = _Pending(heard, notice, now, self._ms(t0), seq)
        by_id = {r.id: r for r in self.fleet.replicas}
        drains: list[Action] = [
            DrainReplica(by_id[d.replica], d.deadline, d.keep_progress, d.conservative)
            for d in notice.drains
            if d.replica in by_id
        ]
        # A replica the replaced plan drained and this one keeps serves on (no deadline).
        kept = superseded - {d.replica for d in notice.drains}
        return drains + [DrainReplica(by_id[r], math.inf, False) for r in sorted(kept) if r in by_id]

    def _rebuild(self, now: float, stopped: Mapping[int, DrainReport]) -> list[Action]:
        pending = self._pending
        assert pending is not None
        self._pending = None
        t0 = self.timer() if self.timer else 0.0
        # The new replicas start from when the drains are done, however late that is.
        notice = dataclasses.replace(pending.notice, rebuild_at=max(pending.notice.rebuild_at, now))
        interrupted = interrupted_batches(notice, stopped, self.model.input_len)
        built = self.approach.rebuild(self.fleet, notice, interrupted)
        plan = requeue(built, stopped)
        kept = {r.id for r in built.fleet.replicas}
        gone = [r for r in self.fleet.replicas if r.id not in kept]
        actions: list[Action] = []
        if plan.pinned or plan.restarted:
            actions.append(plan)
        if gone:
            actions.append(ReplicasGone(tuple(r.id for r in gone), now))
            actions += [ReleaseReplica(r) for r in gone]
        self.fleet = built.fleet
        actions += self._assignments(built)
        resumed = sum(len(ids) for _, ids, _ in plan.pinned)
        self._record(
            pending.heard,
            pending,
            built,
            now,
            pending.planned_at,
            pending.plan_ms + self._ms(t0),
            resumed,
            len(plan.restarted),
        )
        if self._waiting:  # events heard during this change and left for the next one
            actions += self._plan(now)
        return actions

    def _assignments(self, built: Rebuild) -> list[Action]:
        if not built.new:
            return []
        # The artifact's replicas run at the profiled time; its fix factor is a planning margin.
        t = timing(self.model, built.fleet.config, fix_factor=not self.spot.mechanics.fix_factor_planning_only)
        reload = not self.approach.migrates
        return [
            AssignReplica(
                p.replica,
                p.ready_at,
                built.fleet.config,
                t,
                tuple(x for x in built.transfers if x.dst in p.replica.gpus),
                reload,
            )
            for p in built.new
        ]

    # ------------------------------------------------------------------ heartbeats
    def heartbeat_targets(self) -> list[str]:
        """The workers of the instances in service (an instance's workers share its fate)."""
        alive = set(self.fleet.alive) - self.lost
        return [name for gpu, name in self.workers.items() if gpu.instance in alive]

    def tick(
        self, now: float, answered: Collection[str], missed: Collection[str], pool: Mapping[str, int]
    ) -> list[Action]:
        """One heartbeat: a worker that missed `evict_after_missed` in a row takes its instance
        with it (a removal without notice, planned at once). Records the pool and the fleet."""
        for name in answered:
            self._missed[name], self._last_seen[name] = 0, now
        instance_of = {name: gpu.instance for gpu, name in self.workers.items()}
        lost_now: list[str] = []
        for name in missed:
            self._missed[name] = self._missed.get(name, 0) + 1
            inst = instance_of.get(name)
            if (
                self._missed[name] >= self.evict_after_missed
                and inst
                and inst not in self.lost
                and inst not in lost_now
            ):
                lost_now.append(inst)
        actions = self._lose(lost_now, now) if lost_now else []
        self.ticks.append(
            {
                "time": now,
                "waiting": pool.get("waiting", 0) + pool.get("resumable", 0) + pool.get("ahead", 0),
                "pinned": pool.get("pinned", 0),
                "leased": pool.get("leased", 0),
                "submitted": pool.get("submitted", 0),
                "alive_instances": len(set(self.fleet.alive) - self.lost),
                "replicas": len(self.fleet.replicas),
                "dp": self.fleet.config.dp,
                "tp": self.fleet.config.tp,
                "pp": self.fleet.config.pp,
                "batch": self.fleet.config.batch,
            }
        )
        return actions

    def _lose(self, instances: Sequence[str], now: float) -> list[Action]:
        self.lost.update(instances)
        dead = tuple(r.id for r in self.fleet.replicas if r.uses(instances))
        # Their batches ran until the workers last answered: that much progress is committed.
        seen = [self._last_seen.get(n, 0.0) for g, n in self.workers.items() if g.instance in instances]
        actions: list[Action] = [ReplicasGone(dead, min(seen, default=now))] if dead else []
        event = AvailabilityEvent(now, "remove", tuple(instances))
        self._waiting.append(_Heard(event, now, lost=True))
        return actions + self._plan(now)

    # ------------------------------------------------------------------ the decision log
    def _record(
        self,
        heard: Sequence[_Heard],
        pending: _Pending | None,
        built: Rebuild,
        now: float,
        planned_at: float,
        plan_ms: float,
        resumed: int,
        restarted: int,
    ) -> None:
        cfg = built.fleet.config
        notice = pending.notice if pending else None
        deadline = min((d.deadline for d in notice.drains), default=notice.rebuild_at) if notice else None
        change = self._changes
        self._changes += 1
        for i, h in enumerate(heard):
            self.decisions.append(
                {
                    "time": now,
                    "change": change,
                    "event_at": h.event.at_s,
                    "event": "lost" if h.lost else "start" if pending is None else h.event.op,
                    "instances": ",".join(h.event.instances),
                    "notice_at": h.heard_at,
                    "planned_at": planned_at,
                    "deadline": deadline,
                    "events_in_change": len(heard),
                    "alive_instances": len(built.fleet.alive),
                    "gpus": len(built.fleet.alive) * self.spot.gpus_per_instance,
                    "dp": cfg.dp,
                    "tp": cfg.tp,
                    "pp": cfg.pp,
                    "batch": cfg.batch,
                    "m1": cfg.m1,
                    "m2": cfg.m2,
                    "required_tpt": self.required_tpt,
                    "predicted_latency_s": notice.choice.latency_s if notice else None,
                    "predicted_tpt": notice.choice.throughput_rps if notice else None,
                    "meets_target": notice.choice.meets_target if notice else None,
                    "estimate_s": notice.estimate_s if notice else 0.0,
                    # A change's migration and requests are counted once, on its first row.
                    "migration_s": built.migration_s if i == 0 else 0.0,
                    "moved_gb": built.moved_bytes / 1e9 if i == 0 else 0.0,
                    "kept_gb": built.kept_bytes / 1e9 if i == 0 else 0.0,
                    "ready_at": max((p.ready_at for p in built.new), default=None),
                    "replicas": ",".join(str(p.replica.id) for p in built.new) if i == 0 else "",
                    "resumed_requests": resumed if i == 0 else 0,
                    "restarted_requests": restarted if i == 0 else 0,
                    "plan_ms": plan_ms,
                    "reason": built.reason,
                }
            )


def with_measured(decisions: list[dict[str, Any]], migrated: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The decision log with what real execution measured beside the plan's prediction: for
    each change, its new replicas' migration (`measured_migration_s`: the slowest GPU's
    transfers and group forming), the bytes they moved (`measured_gb`, storage reads included)
    and when the last of them was ready. Unchanged when nothing was measured (simulated)."""
    if not migrated:
        return decisions
    out = []
    for row in decisions:
        ids = {int(r) for r in str(row.get("replicas") or "").split(",") if r}
        totals = [m for m in migrated if m["replica"] in ids and m["kind"] == "total"]
        moved = [m for m in migrated if m["replica"] in ids and m["kind"] != "total"]
        out.append(
            {
                **row,
                "measured_migration_s": max((m["seconds"] + m["group_s"] for m in totals), default=math.nan),
                "measured_gb": sum(m["bytes"] for m in moved) / 1e9 if totals else math.nan,
                "measured_ready_at": max((m["at"] for m in totals), default=math.nan),
            }
        )
    return out
