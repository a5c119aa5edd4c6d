"""Controller role: keeps the list of live workers, heartbeats them, and applies the approach.

Every heartbeat (trace seconds, `run.heartbeat_s`) it asks each worker for its queue and the
load balancer for its arrival count, evicts workers that stopped answering, and pushes the
routing table to the load balancer. Every `approach.period_s` (and at once after an
eviction) it asks the approach for a plan, assigns tiers to workers, and configures them.
The loop survives anything one tick throws: it logs the error and goes on.

Files: `decisions.parquet` (one row per plan) and `ticks.parquet` (one row per heartbeat).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc

from runtime.policies.diffserve.assignment import assign_tiers
from runtime.policies.diffserve.demand import DemandEstimator
from runtime.policies.diffserve.plan import AllocationPlan, Observation
from runtime.policies.diffserve.registry import make_approach
from runtime.protos import servelab_pb2 as pb
from runtime.protos import servelab_pb2_grpc as pbg
from runtime.records import Tier
from runtime.roles.base import Role, Servicer
from runtime.rpc import TIER_TO_PB
from runtime.spec import RunSpec
from runtime.tables import write_rows

DECISIONS_FILE = "decisions.parquet"
TICKS_FILE = "ticks.parquet"
MIN_TICK_WALL_S = 0.05  # heartbeats never come faster than this, whatever the time_scale


@dataclass
class _Worker:
    name: str
    address: str
    stub: pbg.WorkerStub
    registered: bool = False
    evicted: bool = False
    tier: Tier = Tier.IDLE
    last_ok: float = 0.0  # monotonic wall time of the last answer
    status: pb.WorkerStatus | None = None

    @property
    def alive(self) -> bool:
        return self.registered and not self.evicted


class ControllerRole(Role):
    role = "controller"

    def __init__(self, spec: RunSpec, name: str, out_dir: Path) -> None:
        super().__init__(spec, name, out_dir)
        cascade = self.config.cascade
        assert cascade is not None
        self.approach = make_approach(cascade, self.config.approach)
        a = self.config.approach
        self.demand = DemandEstimator(a.demand, a.ewma_alpha, a.demand_factor)
        self.lock = threading.RLock()
        self.workers = {
            w.name: _Worker(w.name, w.address, pbg.WorkerStub(self.channel_to(w.name))) for w in spec.of("worker")
        }
        self.lb = pbg.LoadBalancerStub(self.channel_to(spec.only("load_balancer").name))
        self.pool = ThreadPoolExecutor(max_workers=min(32, len(self.workers) + 2), thread_name_prefix="rpc")
        self.plan: AllocationPlan | None = None
        self.plan_id = 0
        self.next_plan_at = 0.0
        self.replan = False
        self.submitted = 0
        self.last_tick_at: float | None = None
        self.decisions: list[dict[str, Any]] = []
        self.ticks: list[dict[str, Any]] = []
        self.hb_timeout = min(self.rpc_timeout, max(0.2, self.config.run.evict_after_s / 3))
        self._loop = threading.Thread(target=self._run_loop, name="control-loop", daemon=True)

    def servicers(self) -> list[Servicer]:
        return [(pbg.add_ControllerServicer_to_server, _ControllerService(self))]

    # ------------------------------------------------------------------ registration
    def register(self, name: str) -> bool:
        with self.lock:
            worker = self.workers.get(name)
            if worker is None:
                self.log.warning("Unknown worker tried to register <name=%s>", name)
                return False
            worker.registered, worker.evicted, worker.last_ok = True, False, time.monotonic()
            self.log.info("Registered <worker=%s>", name)
            if self.started.is_set():
                self.replan = True
        return True

    def alive(self) -> list[_Worker]:
        with self.lock:
            return [w for w in self.workers.values() if w.alive]

    # ------------------------------------------------------------------ start and loop
    def on_start(self) -> None:
        # The first plan is applied before Start returns, so the first query finds its route.
        self._tick(force_plan=True)
        self._loop.start()

    def _run_loop(self) -> None:
        period_wall = max(MIN_TICK_WALL_S, self.clock.wall(self.config.run.heartbeat_s))
        next_at = time.monotonic() + period_wall
        while not self.stopping.is_set():
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at + period_wall, time.monotonic())
            try:
                self._tick()
            except Exception:  # a bad tick never stops the controller
                self.log.exception("Tick failed; continuing")

    def _tick(self, force_plan: bool = False) -> None:
        now = self.clock.now()
        self._heartbeat_workers()
        arrivals, dt = self._poll_load_balancer(now)
        workers = self.alive()
        statuses = [w.status for w in workers if w.status is not None]
        light_q = sum(s.light_queue for s in statuses)
        heavy_q = sum(s.heavy_queue for s in statuses)
        inflight = sum(s.queue_length + s.running for s in statuses)
        demand = self.demand.update(arrivals, dt, inflight)
        obs = Observation(
            now=now,
            workers=len(workers),
            demand_qps=demand,
            light_queue=light_q,
            heavy_queue=heavy_q,
            inflight=inflight,
        )
        if force_plan or self.replan or now >= self.next_plan_at:
            self.replan = False
            self.next_plan_at = now + self.config.approach.period_s
            self._plan_and_apply(obs)
        self._push_routing(now)
        plan = self.plan
        self.ticks.append(
            {
                "time": now,
                "arrivals": arrivals,
                "arrival_rate": arrivals / dt if dt > 0 else 0.0,
                "demand": demand,
                "light_queue": light_q,
                "heavy_queue": heavy_q,
                "inflight": inflight,
                "workers_alive": len(workers),
                "plan_id": self.plan_id,
                "light_workers": sum(w.tier is Tier.LIGHT for w in workers),
                "heavy_workers": sum(w.tier is Tier.HEAVY for w in workers),
                "light_batch": plan.light_batch if plan else None,
                "heavy_batch": plan.heavy_batch if plan else None,
                "threshold": plan.threshold if plan else None,
            }
        )

    # ------------------------------------------------------------------ heartbeats
    def _heartbeat_workers(self) -> None:
        targets = [w for w in self.workers.values() if w.alive]

        def beat(w: _Worker) -> tuple[_Worker, pb.WorkerStatus | None]:
            try:
                return w, w.stub.Heartbeat(pb.Empty(), timeout=self.hb_timeout)
            except grpc.RpcError:
                return w, None

        now_wall = time.monotonic()
        for w, status in self.pool.map(beat, targets):
            with self.lock:
                if status is not None:
                    w.status, w.last_ok = status, time.monotonic()
                elif now_wall - w.last_ok > self.config.run.evict_after_s:
                    w.evicted, w.status = True, None
                    self.replan = True
                    self.log.warning("Evicted <worker=%s silent_for=%.1fs>", w.name, now_wall - w.last_ok)

    def _poll_load_balancer(self, now: float) -> tuple[int, float]:
        try:
            stats = self.lb.Stats(pb.Empty(), timeout=self.hb_timeout)
        except grpc.RpcError as err:
            self.log.warning("Load balancer did not answer <code=%s>", err.code())
            return 0, 0.0
        arrivals = stats.submitted - self.submitted
        dt = now - self.last_tick_at if self.last_tick_at is not None else 0.0
        self.submitted, self.last_tick_at = stats.submitted, now
        return arrivals, dt

    # ------------------------------------------------------------------ planning
    def _plan_and_apply(self, obs: Observation) -> None:
        t0 = time.perf_counter()
        try:
            plan = self.approach.plan(obs)
        except Exception as exc:  # keep the last plan rather than stop planning
            self.log.exception("Approach failed to plan; keeping the last plan")
            if self.plan is None:
                raise
            plan = replace(self.plan, feasible=False, reason=f"planner error: {exc}")
        search_ms = (time.perf_counter() - t0) * 1000.0
        with self.lock:
            workers = [w for w in self.workers.values() if w.alive]
            tiers = assign_tiers(plan, {w.name: w.tier for w in workers})
            self.plan_id += 1
            self.plan = plan
            for w in workers:
                w.tier = tiers[w.name]
        self.log.info(
            "Plan <id=%d light=%d heavy=%d b1=%d b2=%d threshold=%.3f demand=%.2f feasible=%s reason=%s>",
            self.plan_id, plan.light_workers, plan.heavy_workers, plan.light_batch, plan.heavy_batch,
            plan.threshold, obs.demand_qps, plan.feasible, plan.reason,
        )  # fmt: skip
        self.decisions.append(
            {
                "time": obs.now,
                "plan_id": self.plan_id,
                "demand": obs.demand_qps,
                "inflight": obs.inflight,
                "light_queue": obs.light_queue,
                "heavy_queue": obs.heavy_queue,
                "workers_alive": obs.workers,
                "light_workers": plan.light_workers,
                "heavy_workers": plan.heavy_workers,
                "light_batch": plan.light_batch,
                "heavy_batch": plan.heavy_batch,
                "threshold": plan.threshold,
                "feasible": plan.feasible,
                "reason": plan.reason,
                "search_ms": search_ms,
            }
        )
        config = {
            w.name: pb.WorkerConfig(
                plan_id=self.plan_id,
                tier=TIER_TO_PB[w.tier],
                light_batch=plan.light_batch,
                heavy_batch=plan.heavy_batch,
                threshold=plan.threshold,
            )
            for w in workers
        }

        def configure(w: _Worker) -> None:
            try:
                w.stub.Configure(config[w.name], timeout=self.hb_timeout)
            except grpc.RpcError as err:
                self.log.warning("Configure failed <worker=%s code=%s>", w.name, err.code())

        list(self.pool.map(configure, workers))

    def _push_routing(self, now: float) -> None:
        with self.lock:
            routes = [
                pb.WorkerRoute(
                    name=w.name,
                    address=w.address,
                    tier=TIER_TO_PB[w.tier],
                    queue_length=w.status.queue_length if w.status else 0,
                )
                for w in self.workers.values()
                if w.alive and w.tier is not Tier.IDLE
            ]
        try:
            self.lb.SetRouting(
                pb.RoutingTable(plan_id=self.plan_id, workers=routes, reported_at=now), timeout=self.hb_timeout
            )
        except grpc.RpcError as err:
            self.log.warning("Routing push failed <code=%s>", err.code())

    def finish(self) -> None:
        if self._loop.is_alive():  # not started when the run was stopped before Start
            self._loop.join(timeout=2.0)
        write_rows(self.decisions, self.out_dir / DECISIONS_FILE)
        write_rows(self.ticks, self.out_dir / TICKS_FILE)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.log.info(
            "Wrote %s and %s <plans=%d ticks=%d>", DECISIONS_FILE, TICKS_FILE, len(self.decisions), len(self.ticks)
        )


class _ControllerService(pbg.ControllerServicer):
    def __init__(self, controller: ControllerRole) -> None:
        self.c = controller

    def Register(self, request: pb.RegisterRequest, context: grpc.ServicerContext) -> pb.Empty:
        if not self.c.register(request.name):
            context.abort(grpc.StatusCode.NOT_FOUND, f"no worker named {request.name!r} in this run")
        return pb.Empty()
