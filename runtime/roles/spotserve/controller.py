"""SpotServe controller: replays the availability trace and runs the approach.

At trace time 0 it builds the first configuration on the first instances. For every later
event it wakes `spot.grace_period_s` before it, asks the approach for a Notice, drains the
replicas it names (each stops by its deadline and hands back the batch it stopped in), asks
the approach to rebuild, gives the interrupted requests back to the pool (pinned to the
replica that got their KV cache, or from token 0), assigns the new replicas, and at the
event's time stops the workers of preempted instances: they really exit.

Files: `decisions.parquet` (one row per event) and `ticks.parquet` (pool and fleet over time).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import grpc

from runtime.policies.spotserve.cost_model import ZERO
from runtime.policies.spotserve.engine import timing
from runtime.policies.spotserve.fleet import Fleet, Replica
from runtime.policies.spotserve.layout import Gpu
from runtime.policies.spotserve.reconfiguration import Notice, Rebuild, Requeue, Stopped, interrupted_batches, requeue
from runtime.policies.spotserve.registry import make_approach
from runtime.protos import servelab_pb2 as pb
from runtime.protos import servelab_pb2_grpc as pbg
from runtime.roles.base import Role, Servicer
from runtime.spec import RunSpec
from runtime.tables import write_rows
from traces.spotserve import AvailabilityEvent, alive_timeline, load_availability, split_start

DECISIONS_FILE = "decisions.parquet"
TICKS_FILE = "ticks.parquet"
TICK_WALL_S = 0.5

T = TypeVar("T")


class SpotControllerRole(Role):
    role = "controller"

    def __init__(self, spec: RunSpec, name: str, out_dir: Path) -> None:
        super().__init__(spec, name, out_dir)
        cfg = self.config
        assert cfg.model is not None
        self.model, self.spot = cfg.model, cfg.spot
        self.events = load_availability(cfg.trace)
        self.start = split_start(self.events)
        self.required_tpt = cfg.model.required_tpt
        self.workers: dict[Gpu, str] = {}
        for w in spec.of("worker"):
            assert w.instance is not None and w.gpu is not None
            self.workers[Gpu(w.instance, w.gpu)] = w.name
        max_alive = max((s.spot + s.ondemand for s in alive_timeline(self.events)), default=0)
        self.approach = make_approach(cfg.approach.name, self.model, self.spot, cfg.ablation, max_alive)
        self.stubs = {name: pbg.SpotWorkerStub(self.channel_to(name)) for name in self.workers.values()}
        self.pool = pbg.RequestPoolStub(self.channel_to(spec.only("load_balancer").name))
        self.threads = ThreadPoolExecutor(max_workers=32, thread_name_prefix="rpc")
        self.fleet = Fleet((), ZERO, ())
        self.lock = threading.Lock()
        self.decisions: list[dict[str, Any]] = []
        self.ticks: list[dict[str, Any]] = []
        self._events = threading.Thread(target=self._replay, name="availability", daemon=True)
        self._ticker = threading.Thread(target=self._tick_loop, name="ticks", daemon=True)

    def servicers(self) -> list[Servicer]:
        return [(pbg.add_ControllerServicer_to_server, _Register(self))]

    # ------------------------------------------------------------------ helpers
    def parallel(self, fn: Callable[[Any], T], items: list[Any]) -> list[T]:
        return list(self.threads.map(fn, items))

    def assign(self, plans: list[tuple[Replica, float]], fleet: Fleet) -> None:
        if not plans:
            return
        table = timing(self.model, fleet.config)
        pb_timing = pb.BatchTiming(prefill_s=table.prefill_s, step_s=table.step_s, embed_s=table.embed_s)

        def one(item: tuple[Replica, float, int, str]) -> None:
            replica, ready_at, k, worker = item
            members = [self.workers[g] for g in replica.gpus]
            a = pb.ReplicaAssignment(
                replica=replica.id, config=str(fleet.config), members=members, leader=k == 0, ready_at=ready_at,
                batch=fleet.config.batch, timing=pb_timing, output_len=self.model.output_len,
            )  # fmt: skip
            try:
                self.stubs[worker].Assign(a, timeout=self.rpc_timeout)
            except grpc.RpcError as err:
                self.log.warning("Assign failed <worker=%s code=%s>", worker, err.code())

        items = [(r, ready, k, self.workers[g]) for r, ready in plans for k, g in enumerate(r.gpus)]
        self.parallel(one, items)

    def release(self, replicas: list[Replica]) -> None:
        workers = [self.workers[g] for r in replicas for g in r.gpus]

        def one(worker: str) -> None:
            with contextlib.suppress(grpc.RpcError):  # a worker of a preempted instance
                self.stubs[worker].Release(pb.Empty(), timeout=self.rpc_timeout)

        self.parallel(one, workers)

    # ------------------------------------------------------------------ start
    def on_start(self) -> None:
        first = self.start.first
        t0 = time.perf_counter()
        built = self.approach.initial(first.instances, self._tpt(first), 0.0)
        self.fleet = built.fleet
        self.assign([(p.replica, p.ready_at) for p in built.new], built.fleet)
        self._record(first, None, built, 0, 0, (time.perf_counter() - t0) * 1000)
        self._events.start()
        self._ticker.start()

    def _tpt(self, event: AvailabilityEvent) -> float:
        if event.required_tpt is not None:
            self.required_tpt = event.required_tpt
        return self.required_tpt

    # ------------------------------------------------------------------ the trace
    def _replay(self) -> None:
        for event in self.start.rest:
            if self.stopping.is_set():
                return
            self.clock.sleep_until(event.at_s - self.spot.grace_period_s)
            try:
                self._handle(event)
            except Exception:  # one bad event must not stop the replay
                self.log.exception("Handling %s at %.0f s failed; going on", event.op, event.at_s)

    def _handle(self, event: AvailabilityEvent) -> None:
        t0 = time.perf_counter()
        notice = self.approach.notice(self.fleet, event, self._tpt(event), max(0.0, self.clock.now()))
        plan_ms = (time.perf_counter() - t0) * 1000
        self.log.info(
            "Notice <event=%s at=%.0f alive=%d config=%s drains=%d keep=%d deadline=%s reason=%s>",
            event.op, event.at_s, len(notice.alive_after), notice.choice.config, len(notice.drains), len(notice.keep),
            f"{min(d.deadline for d in notice.drains):.1f}" if notice.drains else "-", notice.reason,
        )  # fmt: skip
        drained = self._drain(notice)
        self.clock.sleep_until(notice.rebuild_at)
        t1 = time.perf_counter()
        stopped = {rid: s for rid, (s, _) in drained.items()}
        built = self.approach.rebuild(self.fleet, notice, interrupted_batches(notice, stopped, self.model.input_len))
        plan_ms += (time.perf_counter() - t1) * 1000
        plan = self._requeue(built, drained)
        gone = [r for r in self.fleet.replicas if r.id not in {x.id for x in built.fleet.replicas}]
        self.release(gone)
        self.fleet = built.fleet
        self.assign([(p.replica, p.ready_at) for p in built.new], built.fleet)
        resumed = sum(len(ids) for _, ids, _ in plan.pinned)
        self._record(event, notice, built, resumed, len(plan.restarted), plan_ms)
        if event.op in ("remove", "end"):
            self.clock.sleep_until(event.at_s)
            self._preempt(event)

    def _drain(self, notice: Notice) -> dict[int, tuple[Stopped, list[pb.Query]]]:
        def one(d: Any) -> pb.DrainReply | None:
            leader = self.workers[self.fleet.replica(d.replica).leader]
            wall = max(0.0, self.clock.wall(d.deadline - self.clock.now())) + 15.0
            try:
                return self.stubs[leader].Drain(
                    pb.DrainRequest(replica=d.replica, deadline=d.deadline, keep_progress=d.keep_progress), timeout=wall
                )
            except grpc.RpcError as err:
                self.log.warning("Drain failed <replica=%d code=%s>", d.replica, err.code())
                return None

        out: dict[int, tuple[Stopped, list[pb.Query]]] = {}
        for d, reply in zip(notice.drains, self.parallel(one, list(notice.drains)), strict=True):
            if reply is None or not reply.interrupted:
                continue
            queries = list(reply.interrupted)
            out[d.replica] = (Stopped(tuple(q.id for q in queries), reply.tokens), queries)
        return out

    def _requeue(self, built: Rebuild, drained: dict[int, tuple[Stopped, list[pb.Query]]]) -> Requeue:
        plan = requeue(built, {rid: s for rid, (s, _) in drained.items()})
        by_id = {q.id: q for _, queries in drained.values() for q in queries}
        for replica, ids, step in plan.pinned:
            batch = [by_id[i] for i in ids]
            self.pool.Requeue(
                pb.RequeueRequest(queries=batch, pin_replica=replica, start_step=step), timeout=self.rpc_timeout
            )
        lost = [by_id[i] for i in plan.restarted]
        for q in lost:
            q.tokens_done, q.restarts = 0, q.restarts + 1
        if lost:
            self.pool.Requeue(pb.RequeueRequest(queries=lost, pin_replica=-1), timeout=self.rpc_timeout)
        return plan

    def _preempt(self, event: AvailabilityEvent) -> None:
        names = [n for g, n in self.workers.items() if g.instance in event.instances] if event.op == "remove" else []

        def one(worker: str) -> None:
            with contextlib.suppress(grpc.RpcError):
                self.stubs[worker].Preempt(pb.Empty(), timeout=self.rpc_timeout)

        self.parallel(one, names)
        if names:
            self.log.info("Preempted <instances=%s workers=%d>", ",".join(event.instances), len(names))

    # ------------------------------------------------------------------ records
    def _record(
        self,
        event: AvailabilityEvent,
        notice: Notice | None,
        built: Rebuild,
        resumed: int,
        restarted: int,
        plan_ms: float,
    ) -> None:
        cfg = built.fleet.config
        with self.lock:
            self.decisions.append(
                {
                    "time": self.clock.now(),
                    "event_at": event.at_s,
                    "event": event.op,
                    "instances": ",".join(event.instances),
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
                    "deadline": min((d.deadline for d in notice.drains), default=None) if notice else None,
                    "estimate_s": notice.estimate_s if notice else 0.0,
                    "migration_s": built.migration_s,
                    "moved_gb": built.moved_bytes / 1e9,
                    "kept_gb": built.kept_bytes / 1e9,
                    "ready_at": max((p.ready_at for p in built.new), default=None),
                    "resumed_requests": resumed,
                    "restarted_requests": restarted,
                    "plan_ms": plan_ms,
                    "reason": built.reason,
                }
            )
        self.log.info(
            "Fleet <event=%s config=%s replicas=%d new=%d migration=%.1fs resumed=%d restarted=%d>",
            event.op, cfg, len(built.fleet.replicas), len(built.new), built.migration_s, resumed, restarted,
        )  # fmt: skip

    def _tick_loop(self) -> None:
        period = max(TICK_WALL_S, self.clock.wall(self.config.run.heartbeat_s))
        while not self.stopping.wait(period):
            try:
                stats = self.pool.PoolStatus(pb.Empty(), timeout=self.rpc_timeout)
            except grpc.RpcError:
                continue
            fleet = self.fleet
            with self.lock:
                self.ticks.append(
                    {
                        "time": self.clock.now(),
                        "waiting": stats.waiting,
                        "pinned": stats.pinned,
                        "submitted": stats.submitted,
                        "alive_instances": len(fleet.alive),
                        "replicas": len(fleet.replicas),
                        "dp": fleet.config.dp,
                        "tp": fleet.config.tp,
                        "pp": fleet.config.pp,
                        "batch": fleet.config.batch,
                    }
                )

    def finish(self) -> None:
        with self.lock:
            write_rows(self.decisions, self.out_dir / DECISIONS_FILE)
            write_rows(self.ticks, self.out_dir / TICKS_FILE)
        self.threads.shutdown(wait=False, cancel_futures=True)


class _Register(pbg.ControllerServicer):
    def __init__(self, controller: SpotControllerRole) -> None:
        self.c = controller

    def Register(self, request: pb.RegisterRequest, context: grpc.ServicerContext) -> pb.Empty:
        return pb.Empty()
