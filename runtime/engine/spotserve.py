"""SpotServe on the virtual clock: the client, the request pool, the replicas, the sink and the
controller's cores wired together in one process, with the profiled batch timing.

What the gRPC roles do over the network happens here in one step at the same trace time: a
request sent is in the pool; an idle replica pulls its next batch at once (idle replicas take
turns in the order they became idle); a batch's end or its drain deadline wakes its replica;
the controller's timer queue wakes the controller, whose actions (assignments, drains,
requeues, preemptions) take effect at once, and whose rebuild reads the drained replicas'
stopped batches from the pool. Events at one time: replicas first (a drain deadline stops a
batch before the rebuild that needs it), then the controller, then arrivals, then its ticks.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from runtime import rolefiles
from runtime.clock import Cadence
from runtime.cores.client import ClientCore
from runtime.cores.sink import SinkCore
from runtime.cores.spotserve.controller import (
    Action,
    AssignReplica,
    DrainReplica,
    NeedDrainReports,
    ReleaseReplica,
    ReplicasGone,
    Requeue,
    SpotControllerCore,
)
from runtime.cores.spotserve.replica import (
    Assignment,
    Finished,
    Interrupted,
    ReplicaCore,
    stamp_leased,
    stamp_outcome,
)
from runtime.engine.loop import Event
from runtime.policies.spotserve.layout import Gpu
from runtime.policies.spotserve.reconfiguration import DrainReport
from runtime.policies.spotserve.registry import request_pool
from runtime.query import Query
from runtime.schema.spotserve import SpotServeConfig
from runtime.traces.spotserve import AvailabilityEvent

REPLICA, CONTROLLER, ARRIVAL, TICK, DRAIN_END = 0, 1, 2, 3, 4


class SpotServeModel:
    def __init__(
        self,
        config: SpotServeConfig,
        arrival_s: np.ndarray,
        request_ids: np.ndarray,
        events: list[AvailabilityEvent],
        workers: Mapping[Gpu, str],
        run_dir: Path | None = None,
    ) -> None:
        model = config.model
        self.model = model
        self.client = ClientCore(arrival_s, request_ids, float("inf"), model.output_len)
        self.pool = request_pool(config.approach.name, config.spot, config.approach.plugin)
        self.jit = config.spot.mechanics.jit_interruption
        self.charged = not config.spot.mechanics.fix_factor_planning_only
        # given the run's directory, the sink's rows go to its file as they come (any length fits)
        self.sink = SinkCore() if run_dir is None else rolefiles.spilling_sink(run_dir / "roles" / "sink")
        self.queries: dict[int, Query] = {}
        self.workers = dict(workers)
        self.controller = SpotControllerCore.for_run(config, events, workers, time.perf_counter)
        self.replicas: dict[int, ReplicaCore] = {}
        self.leaders: dict[int, str] = {}
        self.idle: deque[int] = deque()
        self.wakes: dict[int, float] = {}
        self.received: dict[int, int] = {}  # replica -> the last lease it got
        self.controller_at: float | None = None
        self.cadence = Cadence(config.run.heartbeat_s)
        self.drain_until = self.client.drain_until(config.trace.duration_s, 0.0)
        self.finished = False

    def start(self) -> list[Event]:
        events: list[Event] = self.apply(self.controller.start(0.0), 0.0)
        events += [Tick(0.0), DrainEnd(self.drain_until), *self.controller_later()]
        if len(self.client):
            events.append(Arrival(self.client.arrival_s[0], 0))
        return events

    # ------------------------------------------------------------------ the controller's actions
    def apply(self, actions: Iterable[Action], now: float) -> list[Event]:
        events: list[Event] = []
        for a in actions:
            if isinstance(a, AssignReplica):
                leader = self.workers[a.replica.leader]
                assignment = Assignment(
                    a.replica.id,
                    a.config.batch,
                    a.timing,
                    self.model.output_len,
                    a.ready_at,
                    jit=self.jit,
                    fix_factor=self.model.final_fix_factor,
                    charged_factor=self.charged,
                )
                core = ReplicaCore(assignment)
                self.replicas[a.replica.id], self.leaders[a.replica.id] = core, leader
                events += self.serve(a.replica.id, now)
            elif isinstance(a, ReleaseReplica):
                self.replicas.pop(a.replica.id, None)
            elif isinstance(a, DrainReplica):
                replica = self.replicas.get(a.replica.id)
                if replica is not None:
                    replica.drain(a.deadline, a.keep_progress, a.conservative)
                    events += self.serve(a.replica.id, now)
            elif isinstance(a, Requeue):
                self.pool.requeue(a.pinned, a.restarted)
            elif isinstance(a, ReplicasGone):
                for r in a.replicas:
                    self.pool.replica_gone(r, a.at)
        return events + self.serve_idle(now)

    def controller_due(self, now: float) -> list[Event]:
        events: list[Event] = []
        while (out := self.controller.step(now)) is not None:
            if isinstance(out, NeedDrainReports):
                # A rebuild waits for the drained replicas still running (a batch the jit
                # interruption lets finish past its deadline), as the artifact's scheduler does.
                busy = [r for r in out.replicas if (core := self.replicas.get(r)) is not None and not core.stopped]
                until = max((self.replicas[r].wake_at(now) or now for r in busy), default=now)
                if until > now:
                    self.controller_at = until
                    return [*events, ControllerDue(until)]
                out = self.controller.step(now, {r: self.stopped(r) for r in out.replicas})
            assert not isinstance(out, NeedDrainReports)
            events += self.apply(out or [], now)
        return events + self.controller_later()

    def controller_later(self) -> list[Event]:
        due = self.controller.next_due()
        if due is None or self.finished or self.controller_at == due:
            return []
        self.controller_at = due
        return [ControllerDue(due)]

    def stopped(self, replica: int) -> DrainReport:
        held = self.pool.held.get(replica)
        return DrainReport(held.requests, held.tokens) if held is not None else DrainReport((), 0)

    # ------------------------------------------------------------------ replicas
    def serve(self, replica_id: int, now: float) -> list[Event]:
        """Let the replica act at `now`: finish or cut its batch, stop, or take a new one."""
        replica = self.replicas.get(replica_id)
        if replica is None:
            return []
        outcome = replica.advance(now)
        if isinstance(outcome, Finished | Interrupted):
            self._record(replica_id, outcome)
        if replica.wants_batch(now):
            a = replica.a
            received = replica.lease.id if replica.lease is not None else self.received.get(replica_id, -1)
            lease = self.pool.next_batch(replica_id, a.batch, now, a.timing, a.output_len, received)
            if lease is None:
                if replica_id not in self.idle:
                    self.idle.append(replica_id)
            else:
                stamp_leased([self.queries[r] for r in lease.requests], lease, self.pool.restarts)
                refused = replica.start(lease)
                self.received[replica_id] = lease.id
                if refused is not None:
                    self._record(replica_id, refused)
        return self.wake_later(replica_id, now)

    def _record(self, replica_id: int, outcome: Finished | Interrupted) -> None:
        lease = outcome.lease
        queries = [self.queries[r] for r in lease.requests]
        stamp_outcome(queries, outcome, self.leaders[replica_id], replica_id, self.model.output_len)
        if isinstance(outcome, Finished):
            self.pool.finish(lease.id)
            for n in self.sink.complete(queries, outcome.finished_at):
                self.client.notice(int(n.id), n.dropped, n.drop_reason, n.path, outcome.finished_at)
            if self.client.sent == len(self.client) and self.client.all_noticed:
                self.finished = True
        else:
            self.pool.interrupt(lease.id, outcome.tokens)

    def wake_later(self, replica_id: int, now: float) -> list[Event]:
        replica = self.replicas.get(replica_id)
        at = replica.wake_at(now) if replica is not None else None
        if at is None or self.wakes.get(replica_id) == at:
            return []
        self.wakes[replica_id] = at
        return [ReplicaWake(at, replica_id)]

    def serve_idle(self, now: float) -> list[Event]:
        events: list[Event] = []
        for _ in range(len(self.idle)):
            rid = self.idle.popleft()
            events += self.serve(rid, now)
        self.pool.dispatch_ahead()  # what the idle replicas left (old batching only)
        return events

    # ------------------------------------------------------------------ files
    def write(self, run_dir: Path) -> None:
        self.client.close()
        dirs = {r: run_dir / "roles" / r for r in ("client", "sink", "controller", "load_balancer")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        rolefiles.write_client(self.client, dirs["client"])
        rolefiles.write_sink(self.sink, dirs["sink"])
        rolefiles.write_controller(self.controller.decisions, self.controller.ticks, dirs["controller"])
        rolefiles.write_pool(self.pool, dirs["load_balancer"])


# --------------------------------------------------------------------------- events


@dataclass(slots=True)
class Arrival(Event):
    PRIORITY: ClassVar[int] = ARRIVAL
    time: float
    index: int

    def handle(self, m: SpotServeModel) -> list[Event]:
        q = m.client.send(self.index, self.time)
        q.admitted_at = self.time
        m.queries[q.id] = q
        m.pool.add(q.id)
        events = m.serve_idle(self.time)
        nxt = self.index + 1
        if nxt < len(m.client):
            events.append(Arrival(m.client.arrival_s[nxt], nxt))
        return events


@dataclass(slots=True)
class ReplicaWake(Event):
    PRIORITY: ClassVar[int] = REPLICA
    time: float
    replica: int

    def handle(self, m: SpotServeModel) -> list[Event]:
        if m.wakes.get(self.replica) != self.time:
            return []  # a later wake replaced this one
        del m.wakes[self.replica]
        return m.serve(self.replica, self.time) + m.serve_idle(self.time)


@dataclass(slots=True)
class ControllerDue(Event):
    PRIORITY: ClassVar[int] = CONTROLLER
    time: float

    def handle(self, m: SpotServeModel) -> list[Event]:
        if m.controller_at != self.time:
            return []
        m.controller_at = None
        return m.controller_due(self.time)


@dataclass(slots=True)
class Tick(Event):
    PRIORITY: ClassVar[int] = TICK
    time: float

    def handle(self, m: SpotServeModel) -> list[Event]:
        events = m.apply(m.controller.tick(self.time, m.controller.heartbeat_targets(), (), m.pool.counts()), self.time)
        return events if m.finished else [*events, Tick(m.cadence.take(self.time))]


@dataclass(slots=True)
class DrainEnd(Event):
    PRIORITY: ClassVar[int] = DRAIN_END
    time: float

    def handle(self, m: SpotServeModel) -> list[Event]:
        m.finished = True
        return []
