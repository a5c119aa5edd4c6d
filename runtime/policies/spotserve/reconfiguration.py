"""What a SpotServe-side approach decides on an availability event, returned as data.

Each event (an instance added or removed, the target throughput changed, the end) is heard
`grace_period` seconds before it happens. The approach answers twice:

1. `notice(...) -> Notice`: the next configuration, which replicas must stop by when
   (`Drain`: commit what fits before the deadline, keep that progress or not), which run on
   untouched, and when to build the new replicas;
2. after the drains report the batches they stopped in, `rebuild(...) -> Rebuild`: the new
   replicas (GPUs by position), when each is ready, which old replica's interrupted batch each
   continues (its KV cache moved with it), which interrupted requests restart from token 0,
   and the migration it took.

| type        | applied by           | meaning                                                    |
| ----------- | -------------------- | ---------------------------------------------------------- |
| Drain       | replica leader       | stop by `deadline`; keep committed tokens or not           |
| Notice      | controller           | new configuration, drains, kept replicas, rebuild time     |
| ReplicaPlan | workers of a replica | its GPUs, ready time, the batch it resumes                 |
| Rebuild     | controller, pool     | new replicas, resumed/restarted batches, migration cost    |
| DrainReport | drained leader       | the requests it stopped in, the tokens they committed      |
| Requeue     | pool                 | batches pinned to new replicas, requests back from token 0 |
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from runtime.policies.spotserve.ablation import Features
from runtime.policies.spotserve.config_optimizer import Choice, choose, fixed_shape
from runtime.policies.spotserve.cost_model import ZERO, ParallelConfig
from runtime.policies.spotserve.device_mapper import rank_order
from runtime.policies.spotserve.fleet import Fleet, Replica, instance_gpus, replicas_from
from runtime.policies.spotserve.layout import Gpu, InterruptedBatch
from runtime.policies.spotserve.migration_planner import Transfer
from runtime.schema.spotserve import ModelConfig, SpotConfig
from runtime.traces.spotserve import AvailabilityEvent


@dataclass(frozen=True)
class Drain:
    replica: int
    deadline: float
    keep_progress: bool
    conservative: bool = True  # the jit estimator's side: False when the fleet grows


@dataclass(frozen=True)
class Notice:
    event: Change
    alive_after: tuple[str, ...]
    choice: Choice
    drains: tuple[Drain, ...] = ()
    keep: tuple[int, ...] = ()
    estimate_s: float = 0.0
    rebuild_at: float = 0.0
    reason: str = ""

    @property
    def changes(self) -> bool:
        """False when the fleet goes on as it is (nothing drains, nothing new)."""
        return bool(self.drains) or self.reason != "unchanged"


@dataclass(frozen=True)
class ReplicaPlan:
    replica: Replica
    ready_at: float
    resumes: int | None = None  # the old replica whose interrupted batch it continues


@dataclass(frozen=True)
class Rebuild:
    fleet: Fleet
    new: tuple[ReplicaPlan, ...] = ()
    resumed: Mapping[int, int] = field(default_factory=dict)  # old replica -> new replica
    restarted: tuple[int, ...] = ()  # old replicas whose interrupted requests restart
    moved_bytes: float = 0.0
    kept_bytes: float = 0.0
    migration_s: float = 0.0
    reason: str = ""
    # What the migration plan moves to the new replicas' GPUs (kv transfers name the old
    # replica's id); real execution carries them out. Empty: the new GPUs read from storage.
    transfers: tuple[Transfer, ...] = ()


def _apply(alive: tuple[str, ...], event: AvailabilityEvent) -> tuple[str, ...]:
    if event.op == "add":
        return alive + tuple(i for i in event.instances if i not in alive)
    if event.op == "remove":
        return tuple(i for i in alive if i not in event.instances)
    if event.op == "end":
        return ()
    return alive


@dataclass(frozen=True)
class Change:
    """Availability events the controller plans as one change: a single event, or events heard
    within one grace period of each other (coinciding ones, or one heard while the change for
    another was still under way). It reads like one event to the approaches:

    | field        | meaning                                                                |
    | ------------ | ---------------------------------------------------------------------- |
    | op           | end, else remove (any removal), else add, else tpt                     |
    | at_s         | when it must be done: the first removal (or end), else the last event  |
    | instances    | the instances that go (op remove) or come (op add)                     |
    | required_tpt | the last new target among the events, if any                           |
    """

    events: tuple[AvailabilityEvent, ...]

    @staticmethod
    def of(*events: AvailabilityEvent) -> Change:
        return Change(tuple(sorted(events, key=lambda e: e.at_s)))

    @property
    def op(self) -> str:
        ops = {e.op for e in self.events}
        return next(op for op in ("end", "remove", "add", "tpt") if op in ops)

    @property
    def at_s(self) -> float:
        ending = [e.at_s for e in self.events if e.op in ("remove", "end")]
        return min(ending) if ending else max(e.at_s for e in self.events)

    @property
    def removed(self) -> tuple[str, ...]:
        return tuple(i for e in self.events if e.op == "remove" for i in e.instances)

    @property
    def added(self) -> tuple[str, ...]:
        return tuple(i for e in self.events if e.op == "add" for i in e.instances)

    @property
    def instances(self) -> tuple[str, ...]:
        return self.removed if self.op == "remove" else self.added if self.op == "add" else ()

    @property
    def required_tpt(self) -> float | None:
        targets = [e.required_tpt for e in self.events if e.required_tpt is not None]
        return targets[-1] if targets else None

    def alive_after(self, alive: tuple[str, ...]) -> tuple[str, ...]:
        for e in self.events:
            alive = _apply(alive, e)
        return alive


def as_change(event: AvailabilityEvent | Change) -> Change:
    return event if isinstance(event, Change) else Change.of(event)


def alive_after(alive: tuple[str, ...], event: AvailabilityEvent | Change) -> tuple[str, ...]:
    return as_change(event).alive_after(alive)


def same_shape(a: ParallelConfig, b: ParallelConfig) -> bool:
    return (a.tp, a.pp, a.batch, a.m1, a.m2) == (b.tp, b.pp, b.batch, b.m1, b.m2)


class SpotApproach(ABC):
    """Base of the SpotServe-side approaches; subclasses set `name` and decide the two steps."""

    name: ClassVar[str]
    # False: a new configuration restarts from storage (real execution drops what GPUs hold).
    migrates: ClassVar[bool] = False
    # Batches a busy replica may hold with the artifact's old batching (api_server.py, pool_sz:
    # 2 for both baselines, 1 for spotserve).
    pool_batches: ClassVar[int] = 2

    def __init__(self, model: ModelConfig, spot: SpotConfig, features: Features, max_instances: int) -> None:
        self.model = model
        self.spot = spot
        self.features = features
        self.max_instances = max_instances
        self.next_id = 0
        self.shape: ParallelConfig | None = None  # frozen tp/pp/batch/m1/m2, when frozen

    # ------------------------------------------------------------------ shared helpers
    def gpus(self, instances: tuple[str, ...]) -> list[Gpu]:
        return instance_gpus(instances, self.spot.gpus_per_instance)

    def choose(self, instances: tuple[str, ...], required_tpt: float) -> Choice:
        gpus = len(instances) * self.spot.gpus_per_instance
        if self.shape is None:
            return choose(self.model, gpus, required_tpt)
        s = self.shape
        return fixed_shape(self.model, gpus, s.tp, s.pp, s.batch, s.m1, s.m2, required_tpt=required_tpt)

    def fresh_ids(self, count: int) -> int:
        first = self.next_id
        self.next_id += count
        return first

    def initial(self, instances: tuple[str, ...], required_tpt: float, now: float = 0.0) -> Rebuild:
        """The configuration of the first instances; its replicas are warm (ready at `now`),
        as the artifact loads every shard before the trace starts."""
        choice = self.choose(instances, required_tpt)
        cfg = choice.config
        mapping = rank_order(self.model, ZERO, {}, cfg, self.gpus(instances))
        replicas = replicas_from(mapping, self.fresh_ids(cfg.dp))
        fleet = Fleet(instances, cfg, tuple(replicas))
        return Rebuild(fleet, tuple(ReplicaPlan(r, now) for r in replicas), reason=choice.reason)

    def end(self, fleet: Fleet, event: Change) -> Notice:
        drains = tuple(Drain(r.id, event.at_s, False) for r in fleet.replicas)
        return Notice(
            event,
            (),
            Choice(ZERO, float("inf"), 0.0, False, "end"),
            drains,
            rebuild_at=event.at_s,
            reason="end of the trace",
        )

    def deadline(self, event: Change, cost_s: float, grows: bool) -> float:
        """When the drains of this change must be done: the event's time, or, with the
        artifact's deadline from the cost (spot.mechanics.deadline_from_cost), its notice +
        grace - cost, the cost negative when the fleet grows (scheduler.py, switch_strategy)."""
        if not self.spot.mechanics.deadline_from_cost:
            return event.at_s
        return event.at_s + cost_s if grows else event.at_s - cost_s

    def unchanged(self, fleet: Fleet, event: Change, alive: tuple[str, ...], choice: Choice) -> Notice:
        keep = tuple(r.id for r in fleet.replicas)
        return Notice(event, alive, choice, keep=keep, rebuild_at=event.at_s, reason="unchanged")

    # ------------------------------------------------------------------ the two steps
    def notice(self, fleet: Fleet, event: AvailabilityEvent | Change, required_tpt: float, now: float) -> Notice:
        """The decision `grace_period` before the event (or change): now <= its at_s."""
        return self.plan_notice(fleet, as_change(event), required_tpt, now)

    @abstractmethod
    def plan_notice(self, fleet: Fleet, event: Change, required_tpt: float, now: float) -> Notice:
        """`notice` for a change."""

    @abstractmethod
    def rebuild(self, fleet: Fleet, notice: Notice, interrupted: Mapping[int, InterruptedBatch]) -> Rebuild:
        """The new replicas once the drains of `notice` stopped; `interrupted`: old replica id
        -> the batch it stopped in (only replicas that stopped mid-batch)."""


def nothing_runs(notice: Notice, interrupted: Mapping[int, InterruptedBatch]) -> Rebuild:
    """No replica after the change (too few GPUs, or the end): interrupted requests restart."""
    return Rebuild(Fleet(notice.alive_after, ZERO, ()), restarted=tuple(interrupted), reason=notice.reason)


@dataclass(frozen=True)
class DrainReport:
    """A drained replica's report: the requests of the batch it stopped in (none if it was
    idle) and the decode steps they committed (0 when the drain kept no progress)."""

    requests: tuple[int, ...]
    tokens: int


def interrupted_batches(
    notice: Notice, stopped: Mapping[int, DrainReport], input_len: int
) -> dict[int, InterruptedBatch]:
    """Old replica -> the batch it stopped in, with the KV length that can move (0: none)."""
    keeps = {d.replica: d.keep_progress for d in notice.drains}
    return {
        rid: InterruptedBatch(len(s.requests), input_len + s.tokens if keeps.get(rid) and s.tokens > 0 else 0)
        for rid, s in stopped.items()
        if s.requests
    }


@dataclass(frozen=True)
class Requeue:
    pinned: tuple[tuple[int, tuple[int, ...], int], ...] = ()  # (new replica, requests, start step)
    restarted: tuple[int, ...] = ()  # requests back in the queue from token 0


def requeue(built: Rebuild, stopped: Mapping[int, DrainReport]) -> Requeue:
    """Where the interrupted requests go: a resumed batch is pinned to the replica its KV cache
    moved to and continues from its committed token; every other one restarts."""
    pinned = tuple(
        (new, stopped[old].requests, stopped[old].tokens)
        for old, new in built.resumed.items()
        if old in stopped and stopped[old].requests
    )
    restarted = tuple(r for old, s in stopped.items() if old not in built.resumed for r in s.requests)
    return Requeue(pinned, restarted)
