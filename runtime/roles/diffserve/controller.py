"""DiffServe controller role: a gRPC shell over `ControllerCore`.

It ticks at trace times 0, h, 2h, ... (h = `run.heartbeat_s`): whatever `time_scale`, the core
sees the same cadence; a tick that comes late is taken late, and ticks missed entirely are
counted in the tick log rather than crowded in. Each tick brings the core the workers' latest
heartbeat answers and the load balancer's admission count, then applies what the core decides:
settings to the workers, the routing table to the load balancer.

No peer holds a tick up, so the cadence survives a busy machine: every heartbeat (and the load
balancer's count) is an RPC of its own (deadline `run.heartbeat_timeout_s` wall seconds) issued
at a tick, and the tick waits for answers only a fraction of the heartbeat period; an answer
that comes later counts at the next tick, a heartbeat that failed or timed out is a miss. The
settings and the routing table go out without waiting; receivers ignore one older than what
they have.

Files: `decisions.parquet` (one row per plan) and `ticks.parquet` (one row per tick).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import grpc

from runtime import rolefiles
from runtime.clock import Cadence
from runtime.cores.diffserve.controller import ControllerCore, TickOutcome
from runtime.cores.diffserve.worker import TIER_PB, WorkerReport
from runtime.protos import servelab_pb2 as pb
from runtime.protos import servelab_pb2_grpc as pbg
from runtime.roles.base import Role, Servicer
from runtime.schema.diffserve import DiffServeConfig
from runtime.spec import RunSpec

WAIT_SHARE = 0.5  # of the heartbeat period (wall), the longest a tick waits for heartbeat answers
LB = ""  # the load balancer's key among the outstanding heartbeats (no worker has an empty name)


class ControllerRole(Role[DiffServeConfig]):
    schema = DiffServeConfig
    role = "controller"

    def __init__(self, spec: RunSpec, name: str, out_dir: Path) -> None:
        super().__init__(spec, name, out_dir)
        names = [w.name for w in spec.of("worker")]
        self.core = ControllerCore.for_run(self.config, names, time.perf_counter)
        self.stubs = {n: pbg.WorkerStub(self.channel_to(n)) for n in names}
        self.addresses = {w.name: w.address for w in spec.of("worker")}
        self.lb = pbg.LoadBalancerStub(self.channel_to(spec.only("load_balancer").name))
        self.pool = ThreadPoolExecutor(max_workers=min(64, len(names) + 4), thread_name_prefix="rpc")
        self.beats: dict[str, Future[pb.WorkerStatus | pb.LoadBalancerStats | None]] = {}
        self.cadence = Cadence(self.config.run.heartbeat_s)
        self.lock = threading.Lock()
        self._loop = self.work_thread(self._run_loop, "control-loop")

    def servicers(self) -> list[Servicer]:
        return [(pbg.add_ControllerServicer_to_server, _ControllerService(self))]

    def register(self, name: str) -> bool:
        with self.lock:
            known = self.core.register(name)
        if known:
            self.log.info("Registered <worker=%s>", name)
        else:
            self.log.warning("Unknown worker tried to register <name=%s>", name)
        return known

    # ------------------------------------------------------------------ start and loop
    def on_start(self) -> None:
        # The first plan is applied before Start returns, so the first query finds its route.
        self._tick(0.0, settle=True)
        self.cadence.take(0.0)
        self._loop.start()

    def _run_loop(self) -> None:
        while not self.stopping.is_set():
            if self.stopping.wait(max(0.0, self.clock.wall(self.cadence.due - self.clock.now()))):
                return
            now = self.clock.now()
            self.cadence.take(now)  # behind: the ticks already past are skipped and counted
            try:
                self._tick(now)
            except Exception:  # a bad tick never stops the controller
                self.log.exception("Tick failed; continuing")

    def _tick(self, now: float, settle: bool = False) -> None:
        reports, missed, submitted = self._heartbeats(settle)
        with self.lock:
            outcome = self.core.tick(now, reports, missed, submitted)
        pending = self._apply(outcome)
        if settle:
            wait(pending, timeout=self.config.run.heartbeat_timeout_s)

    # ------------------------------------------------------------------ heartbeats
    def _wait_s(self) -> float:
        period = self.clock.wall(self.config.run.heartbeat_s)
        return min(self.config.run.heartbeat_timeout_s, max(0.005, WAIT_SHARE * period))

    def _beat(self, name: str) -> pb.WorkerStatus | pb.LoadBalancerStats | None:
        timeout = self.config.run.heartbeat_timeout_s
        try:
            if name == LB:
                stats: pb.LoadBalancerStats = self.lb.Stats(pb.Empty(), timeout=timeout)
                return stats
            status: pb.WorkerStatus = self.stubs[name].Heartbeat(pb.Empty(), timeout=timeout)
            return status
        except grpc.RpcError as err:
            if name == LB:
                self.log.warning("Load balancer did not answer <code=%s>", err.code())
            return None

    def _heartbeats(self, settle: bool) -> tuple[dict[str, WorkerReport], list[str], int | None]:
        """Send a heartbeat to every worker (and ask the load balancer for its count) unless one
        is outstanding, wait a little, and collect every answer that came in (this tick's or
        an earlier one's): (reports, missed heartbeats, admissions so far or None)."""
        with self.lock:
            targets = [*self.core.heartbeat_targets(), LB]
        for name in targets:
            if name not in self.beats:
                self.beats[name] = self.pool.submit(self._beat, name)
        timeout = self.config.run.heartbeat_timeout_s if settle else self._wait_s()
        wait(list(self.beats.values()), timeout=timeout)
        reports, missed, submitted = {}, [], None
        for name, fut in list(self.beats.items()):
            if not fut.done():
                continue
            del self.beats[name]
            answer = fut.result()
            if isinstance(answer, pb.LoadBalancerStats):
                submitted = answer.submitted
            elif isinstance(answer, pb.WorkerStatus):
                reports[name] = WorkerReport(
                    answer.queue_length, answer.light_queue, answer.heavy_queue, answer.running
                )
            elif name != LB:
                missed.append(name)
        return reports, missed, submitted

    # ------------------------------------------------------------------ applying decisions
    def _apply(self, outcome: TickOutcome) -> list[Future[None]]:
        """Send the settings and the routing table; returns the calls in flight."""
        for name in outcome.evicted:
            self.log.warning("Evicted <worker=%s missed=%d>", name, self.config.run.evict_after_missed)
        for name in outcome.readmitted:
            self.log.info("Re-admitted <worker=%s>", name)
        plan = outcome.plan
        if plan is not None:
            self.log.info(
                "Plan <id=%d light=%d heavy=%d b1=%d b2=%d threshold=%.3f feasible=%s reason=%s>",
                self.core.plan_id,
                plan.light_workers,
                plan.heavy_workers,
                plan.light_batch,
                plan.heavy_batch,
                plan.threshold,
                plan.feasible,
                plan.reason,
            )

        def configure(item: tuple[str, pb.WorkerConfig]) -> None:
            name, cfg = item
            try:
                self.stubs[name].Configure(cfg, timeout=self.config.run.heartbeat_timeout_s)
            except grpc.RpcError as err:
                self.log.warning("Configure failed <worker=%s code=%s>", name, err.code())

        configs = [
            (
                n,
                pb.WorkerConfig(
                    plan_id=s.plan_id,
                    tier=TIER_PB[s.tier],
                    light_batch=s.light_batch,
                    heavy_batch=s.heavy_batch,
                    threshold=s.threshold,
                ),
            )
            for n, s in outcome.settings.items()
        ]
        pending = [self.pool.submit(configure, item) for item in configs]
        r = outcome.routing
        routes = [
            pb.WorkerRoute(name=n, address=self.addresses[n], tier=TIER_PB[t], queue_length=q) for n, t, q in r.routes
        ]
        table = pb.RoutingTable(plan_id=r.plan_id, workers=routes, reported_at=r.reported_at, heavy_share=r.heavy_share)

        def push() -> None:
            try:
                self.lb.SetRouting(table, timeout=self.config.run.heartbeat_timeout_s)
            except grpc.RpcError as err:
                self.log.warning("Routing push failed <code=%s>", err.code())

        pending.append(self.pool.submit(push))
        return pending

    def finish(self) -> None:
        if self._loop.is_alive():  # not started when the run was stopped before Start
            self._loop.join(timeout=2.0)
        with self.lock:
            rolefiles.write_controller(self.core.decisions, self.core.ticks, self.out_dir)
            plans, ticks = len(self.core.decisions), len(self.core.ticks)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.log.info(
            "Wrote the decision and tick logs <plans=%d ticks=%d skipped=%d>", plans, ticks, self.cadence.skipped
        )


class _ControllerService(pbg.ControllerServicer):
    def __init__(self, controller: ControllerRole) -> None:
        self.c = controller

    def Register(self, request: pb.RegisterRequest, context: grpc.ServicerContext) -> pb.Empty:
        if not self.c.register(request.name):
            context.abort(grpc.StatusCode.NOT_FOUND, f"no worker named {request.name!r} in this run")
        return pb.Empty()
