"""DiffServe on the virtual clock: the cores of the client, load balancer, workers, sink and
controller wired together in one process, with the simulated executor's latencies.

What the gRPC roles do over the network happens here in one step at the same trace time:
a query sent by the client is admitted, routed and enqueued; a finished batch's results reach
the load balancer (deferred queries) or the sink and the client; a controller tick reads every
worker's report and the admission count, and its settings and routing table take effect at
once. Latencies are the profiled ones (the simulated executor), so a run's numbers differ from
a wall run's only by what the wall testbed adds (network, scheduling, heartbeat staleness);
`python -m orchestrator.fidelity` measures that difference.

Events, by priority at equal times: a batch finishing, a controller tick, an arrival, the end of
the drain.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from runtime import rolefiles
from runtime.clock import Cadence
from runtime.cores.client import ClientCore
from runtime.cores.diffserve.controller import ControllerCore
from runtime.cores.diffserve.load_balancer import LoadBalancerCore
from runtime.cores.diffserve.worker import Batch, WorkerCore
from runtime.cores.sink import SinkCore
from runtime.engine.loop import Event
from runtime.executors.simulated import SimulatedExecutor
from runtime.query import Query
from runtime.records import HEAVY, Tier
from runtime.schema.diffserve import DiffServeConfig

BATCH_DONE, TICK, ARRIVAL, DRAIN_END = 0, 1, 2, 3


class DiffServeModel:
    def __init__(
        self,
        config: DiffServeConfig,
        arrival_s: np.ndarray,
        prompt_index: np.ndarray,
        workers: list[str],
        confidence: np.ndarray,
        drain_s: float,
        run_dir: Path | None = None,
    ) -> None:
        cascade = config.cascade
        self.executor = SimulatedExecutor(cascade, confidence, lambda _s: None)
        self.client = ClientCore(arrival_s, prompt_index, cascade.slo_s)
        self.lb = LoadBalancerCore()
        # given the run's directory, the sink's rows go to its file as they come (any length fits)
        self.sink = SinkCore() if run_dir is None else rolefiles.spilling_sink(run_dir / "roles" / "sink")
        latency = self.executor.expected_latency_s
        self.workers = {n: WorkerCore(n, cascade.slo_s, config.run.drop_factor, latency) for n in workers}
        self.controller = ControllerCore.for_run(config, workers, time.perf_counter)
        for name in workers:
            self.controller.register(name)
        self.cadence = Cadence(config.run.heartbeat_s)
        self.drain_until = self.client.drain_until(config.trace.duration_s, drain_s)
        self.finished = False

    def start(self) -> list[Event]:
        first: list[Event] = [Tick(0.0), DrainEnd(max(self.drain_until, 0.0))]
        if len(self.client):
            first.append(Arrival(self.client.arrival_s[0], 0))
        return first

    # ------------------------------------------------------------------ what the roles do
    def submit(self, query: Query, now: float) -> list[Event]:
        tier = self.lb.admit(query, now)
        name = self.lb.pick(tier)
        if name is None:
            reason = self.lb.unrouted(frozenset())
            self.lb.settle_unrouted(query, reason)
            self.client.notice(query.id, True, reason.value, "", now)
            self._check_done()
            return []
        return self._enqueue(name, tier, query, now)

    def forward(self, queries: list[Query], now: float) -> list[Event]:
        events: list[Event] = []
        for query in self.lb.deferred(queries):
            name = self.lb.pick(HEAVY)
            if name is None:
                kept = self.lb.settle_unrouted(query, self.lb.unrouted(frozenset()))
                if kept is not None:
                    self.to_sink([kept], now)
                continue
            events += self._enqueue(name, HEAVY, query, now)
        return events

    def _enqueue(self, name: str, tier: Tier, query: Query, now: float) -> list[Event]:
        worker = self.workers[name]
        self.lb.delivered(name, worker.enqueue(tier, query, now), now)
        return self.serve(name, now) if worker.running is None else []

    def serve(self, name: str, now: float) -> list[Event]:
        """Start the worker's next batch if it is idle."""
        worker = self.workers[name]
        while worker.running is None:
            batch = worker.take_batch(now)
            if batch is None:
                return []
            if batch.settled:
                self.to_sink(batch.settled, now)
            if batch.items:
                return [BatchDone(now + batch.latency_s, name, batch)]
        return []

    def to_sink(self, queries: list[Query], now: float) -> None:
        for n in self.sink.complete(queries, now):
            self.client.notice(n.id, n.dropped, n.drop_reason, n.path, now)
        self._check_done()

    def _check_done(self) -> None:
        if self.client.sent == len(self.client.arrival_s) and self.client.all_noticed:
            self.finished = True

    def tick(self, now: float) -> None:
        reports = {n: self.workers[n].report() for n in self.controller.heartbeat_targets()}
        outcome = self.controller.tick(now, reports, (), self.lb.submitted)
        for name, setting in outcome.settings.items():
            self.workers[name].configure(setting)
        self.lb.set_routing(outcome.routing)

    # ------------------------------------------------------------------ files
    def write(self, run_dir: Path) -> None:
        """The files the roles would have left, under run_dir/roles/<role>/."""
        self.client.close()
        self.client.done = True
        dirs = {r: run_dir / "roles" / r for r in ("client", "sink", "controller")}
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        rolefiles.write_client(self.client, dirs["client"])
        rolefiles.write_sink(self.sink, dirs["sink"])
        rolefiles.write_controller(self.controller.decisions, self.controller.ticks, dirs["controller"])


# --------------------------------------------------------------------------- events


@dataclass(slots=True)
class Arrival(Event):
    PRIORITY: ClassVar[int] = ARRIVAL
    time: float
    index: int

    def handle(self, m: DiffServeModel) -> list[Event]:
        events = m.submit(m.client.send(self.index, self.time), self.time)
        nxt = self.index + 1
        if nxt < len(m.client.arrival_s):
            # The client's cursor moves on: this event, which the engine has let go of, becomes
            # the next arrival (one object for the whole trace, not one an arrival).
            self.time, self.index = m.client.arrival_s[nxt], nxt
            events.append(self)
        return events


@dataclass(slots=True)
class BatchDone(Event):
    PRIORITY: ClassVar[int] = BATCH_DONE
    time: float
    worker: str
    batch: Batch

    def handle(self, m: DiffServeModel) -> list[Event]:
        b = self.batch
        results = m.executor.results(b.tier, [i.query.prompt_index for i in b.items])
        out = m.workers[self.worker].finish_batch(b, results, self.time)
        events = m.forward(out.to_heavy, self.time) if out.to_heavy else []
        if out.to_sink:
            m.to_sink(out.to_sink, self.time)
        return events + m.serve(self.worker, self.time)


@dataclass(slots=True)
class Tick(Event):
    PRIORITY: ClassVar[int] = TICK
    time: float

    def handle(self, m: DiffServeModel) -> list[Event]:
        m.tick(self.time)
        return [] if m.finished else [Tick(m.cadence.take(self.time))]


@dataclass(slots=True)
class DrainEnd(Event):
    PRIORITY: ClassVar[int] = DRAIN_END
    time: float

    def handle(self, m: DiffServeModel) -> list[Event]:
        m.finished = True
        return []
