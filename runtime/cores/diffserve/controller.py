"""The DiffServe controller's core: which workers count, what demand to plan for, when to
re-plan, and what every worker and the load balancer are told.

Every heartbeat (`run.heartbeat_s` of trace time) the shell brings the workers' reports (or
which of them missed their heartbeat) and the load balancer's admission count, and calls
`tick(now, ...)`. The core then

- evicts a worker after `run.evict_after_missed` heartbeats in a row without an answer, and
  re-admits it when it answers again (it returns idle and the next plan may use it);
- smooths demand on trace time (runtime/policies/diffserve/demand.py);
- re-plans at trace times 0, period, 2 period, ... and at once after an eviction, a
  re-admission or a late registration, so the planning cadence does not depend on how often
  or how punctually ticks come;
- turns the plan into tiers (moving as few workers as possible), one setting per worker, and
  the routing table for the load balancer.

It keeps the decision log (one row per plan) and the tick log (one row per heartbeat) as
rows; the shell writes them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from runtime.cores.diffserve.load_balancer import RoutingTable
from runtime.cores.diffserve.worker import WorkerReport, WorkerSetting
from runtime.policies.diffserve.assignment import assign_tiers
from runtime.policies.diffserve.demand import ArtifactQueueing, DemandEstimator
from runtime.policies.diffserve.plan import AllocationPlan, Approach, Observation
from runtime.policies.diffserve.registry import make_approach
from runtime.records import HEAVY, IDLE, LIGHT, Tier
from runtime.schema.diffserve import DiffServeConfig


@dataclass(slots=True)
class WorkerState:
    registered: bool = False
    evicted: bool = False
    missed: int = 0  # heartbeats in a row without an answer
    tier: Tier = Tier.IDLE
    report: WorkerReport | None = None

    @property
    def alive(self) -> bool:
        return self.registered and not self.evicted


@dataclass(slots=True)  # not frozen: made every tick, and a frozen one costs 3x (executors/base.py)
class TickOutcome:
    """What one tick decided.

    | field      | applied by         | meaning                                                |
    | ---------- | ------------------ | ------------------------------------------------------ |
    | settings   | each worker        | its new tier, batch sizes and threshold (plans only)   |
    | routing    | load balancer      | the workers with a tier and their reported queues      |
    | plan       | decision log       | the plan made at this tick, if any                     |
    | evicted    | log                | workers evicted at this tick                           |
    | readmitted | log                | evicted workers that answered again                    |
    """

    settings: Mapping[str, WorkerSetting]
    routing: RoutingTable
    plan: AllocationPlan | None = None
    evicted: tuple[str, ...] = ()
    readmitted: tuple[str, ...] = ()


@dataclass
class ControllerCore:
    approach: Approach
    demand: DemandEstimator
    workers: dict[str, WorkerState]
    period_s: float
    evict_after_missed: int
    timer: Callable[[], float] | None = None  # a monotonic counter, only to log the planner's search time
    queueing: ArtifactQueueing | None = None  # the artifact's queueing estimate (approach.queueing=artifact)
    plan: AllocationPlan | None = None
    plan_id: int = 0
    next_plan_at: float = 0.0
    replan: bool = True
    started: bool = False
    submitted: int = 0
    last_tick_at: float | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)
    ticks: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(
        cls,
        approach: Approach,
        names: Collection[str],
        *,
        period_s: float,
        heartbeat_s: float,
        evict_after_missed: int,
        timer: Callable[[], float] | None = None,
    ) -> ControllerCore:
        a = approach.config
        demand = DemandEstimator(a.demand, a.ewma_alpha, a.demand_factor, heartbeat_s)
        workers = {n: WorkerState() for n in names}
        return cls(
            approach, demand, workers, period_s, evict_after_missed, timer, ArtifactQueueing(a.ewma_alpha, heartbeat_s)
        )

    @classmethod
    def for_run(
        cls, config: DiffServeConfig, names: Collection[str], timer: Callable[[], float] | None
    ) -> ControllerCore:
        """The run's controller core, as the controller role and the engine both build it."""
        return cls.of(
            make_approach(config.cascade, config.approach),
            names,
            period_s=config.approach.period_s,
            heartbeat_s=config.run.heartbeat_s,
            evict_after_missed=config.run.evict_after_missed,
            timer=timer,
        )

    # ------------------------------------------------------------------ membership
    def register(self, name: str) -> bool:
        """A worker says it is up; False for a name this run does not have."""
        state = self.workers.get(name)
        if state is None:
            return False
        state.registered, state.evicted, state.missed = True, False, 0
        if self.started:
            self.replan = True
        return True

    def heartbeat_targets(self) -> list[str]:
        """Workers to heartbeat: the alive ones and the evicted ones (to notice them answer again)."""
        return [n for n, s in self.workers.items() if s.registered]

    def alive(self) -> list[str]:
        return [n for n, s in self.workers.items() if s.registered and not s.evicted]  # s.alive, inline

    def _membership(self, reports: Mapping[str, WorkerReport], missed: Collection[str]) -> tuple[list[str], list[str]]:
        evicted, readmitted = [], []
        for name, report in reports.items():
            state = self.workers.get(name)
            if state is None or not state.registered:
                continue
            state.report, state.missed = report, 0
            if state.evicted:
                state.evicted, state.tier = False, Tier.IDLE
                readmitted.append(name)
        for name in missed:
            state = self.workers.get(name)
            if state is None or not state.alive:
                continue
            state.missed += 1
            if state.missed >= self.evict_after_missed:
                state.evicted, state.report, state.tier = True, None, Tier.IDLE
                evicted.append(name)
        if evicted or readmitted:
            self.replan = True
        return evicted, readmitted

    # ------------------------------------------------------------------ the tick
    def tick(
        self,
        now: float,
        reports: Mapping[str, WorkerReport],
        missed: Collection[str] = (),
        submitted: int | None = None,
    ) -> TickOutcome:
        """One heartbeat: `reports` from the workers that answered since the last tick, `missed`
        the ones whose heartbeat failed, `submitted` the load balancer's admissions so far (None
        when it did not answer)."""
        self.started = True
        evicted, readmitted = self._membership(reports, missed)
        arrivals, dt = 0, 0.0
        if submitted is not None:
            arrivals = submitted - self.submitted
            dt = now - self.last_tick_at if self.last_tick_at is not None else 0.0
            self.submitted, self.last_tick_at = submitted, now
        alive = self.alive()
        states = [self.workers[n] for n in alive]
        light_q = heavy_q = inflight = heavy_inflight = 0
        for s in states:
            r = s.report
            if r is not None:
                light_q += r.light_queue
                heavy_q += r.heavy_queue
                inflight += r.queue_length + r.running
                heavy_inflight += r.heavy_queue + r.running * (s.tier is HEAVY)
        demand = self.demand.update(arrivals, dt, inflight)
        waits = (0.0, 0.0)
        if self.queueing is not None:
            self.queueing.update(light_q, heavy_q, inflight, heavy_inflight, dt)
            waits = self.queueing.waits_s
        settings: dict[str, WorkerSetting] = {}
        plan = None
        if self.replan or now >= self.next_plan_at:
            self.replan = False
            # The next plan is due at the next multiple of the period, however late this tick is.
            self.next_plan_at = (math.floor(now / self.period_s) + 1) * self.period_s
            plan = self._plan(Observation(now, len(alive), demand, light_q, heavy_q, inflight, waits))
            settings = self._settings(plan, alive)
        tiers = [s.tier for s in states]
        self.ticks.append(
            {
                "time": now,
                "arrivals": arrivals,
                "arrival_rate": arrivals / dt if dt > 0 else 0.0,
                "demand": demand,
                "light_queue": light_q,
                "heavy_queue": heavy_q,
                "inflight": inflight,
                "workers_alive": len(alive),
                "plan_id": self.plan_id,
                "light_workers": tiers.count(LIGHT),
                "heavy_workers": tiers.count(HEAVY),
                "light_batch": self.plan.light_batch if self.plan else None,
                "heavy_batch": self.plan.heavy_batch if self.plan else None,
                "threshold": self.plan.threshold if self.plan else None,
                "evicted": len(evicted),
                "readmitted": len(readmitted),
            }
        )
        return TickOutcome(settings, self.routing(now), plan, tuple(evicted), tuple(readmitted))

    def _plan(self, obs: Observation) -> AllocationPlan:
        t0 = self.timer() if self.timer else math.nan
        try:
            plan = self.approach.plan(obs)
        except Exception as exc:  # keep the last plan rather than stop planning
            if self.plan is None:
                raise
            plan = replace(self.plan, feasible=False, reason=f"planner error: {exc}")
        search_ms = (self.timer() - t0) * 1000.0 if self.timer else math.nan
        self.plan_id += 1
        self.plan = plan
        self.decisions.append(
            {
                "time": obs.now,
                "plan_id": self.plan_id,
                "demand": obs.demand_qps,
                "inflight": obs.inflight,
                "light_queue": obs.light_queue,
                "heavy_queue": obs.heavy_queue,
                "artifact_wait_light_s": obs.artifact_waits_s[0],
                "artifact_wait_heavy_s": obs.artifact_waits_s[1],
                "workers_alive": obs.workers,
                "light_workers": plan.light_workers,
                "heavy_workers": plan.heavy_workers,
                "light_batch": plan.light_batch,
                "heavy_batch": plan.heavy_batch,
                "threshold": plan.threshold,
                "heavy_share": plan.heavy_share,
                "feasible": plan.feasible,
                "reason": plan.reason,
                "search_ms": search_ms,
            }
        )
        return plan

    def _settings(self, plan: AllocationPlan, alive: list[str]) -> dict[str, WorkerSetting]:
        tiers = assign_tiers(plan, {n: self.workers[n].tier for n in alive})
        out = {}
        for name in alive:
            self.workers[name].tier = tiers[name]
            out[name] = WorkerSetting(self.plan_id, tiers[name], plan.light_batch, plan.heavy_batch, plan.threshold)
        return out

    def routing(self, now: float) -> RoutingTable:
        routes = tuple(
            (n, s.tier, s.report.queue_length if s.report is not None else 0)
            for n, s in self.workers.items()
            if s.registered and not s.evicted and s.tier is not IDLE  # alive, with a tier
        )
        share = self.plan.heavy_share if self.plan is not None else 0.0
        return RoutingTable(self.plan_id, routes, now, share)
