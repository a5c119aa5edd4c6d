"""SpotServe controller role: a gRPC shell over `SpotControllerCore`.

Two threads drive the core on the wall clock. The timer thread sleeps until the core's next
step (a notice, a rebuild, a preemption) and applies what it returns: assignments, drains (an
RPC to the replica's leader that answers when the replica stopped, with the batch it stopped
in), requeues and reclaims at the pool, preemptions. Before a rebuild it collects the drains'
answers; a drain that did not answer leaves its replica's batch to the pool, which takes it
back when the replica is gone. The tick thread heartbeats one worker of every process of the
instances in service every `run.heartbeat_s`, asks the pool how it stands, and lets the core
declare an instance lost after `run.evict_after_missed` heartbeats in a row without an answer.

In real execution every GPU of a new replica reports what its migration measured (`Migrated`):
`transfers.parquet` has a row per transfer (planned and moved bytes, seconds) and one `total` per
GPU, and the decision log gets the measured migration beside the plan's (`with_measured`).

Files: `decisions.parquet` (one row per availability event), `ticks.parquet`, and in real
execution `transfers.parquet`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TypeVar

import grpc

from runtime import rolefiles
from runtime.clock import Cadence
from runtime.cores.spotserve.controller import (
    Action,
    AssignReplica,
    DrainReplica,
    NeedDrainReports,
    Preempt,
    ReleaseReplica,
    ReplicasGone,
    Requeue,
    SpotControllerCore,
    with_measured,
)
from runtime.policies.spotserve.layout import Gpu
from runtime.policies.spotserve.reconfiguration import DrainReport
from runtime.protos import servelab_pb2 as pb
from runtime.protos import servelab_pb2_grpc as pbg
from runtime.roles.base import Role, Servicer
from runtime.schema.spotserve import SpotServeConfig
from runtime.spec import RunSpec
from runtime.tables import write_rows
from runtime.traces.spotserve import load_availability

DRAIN_SLACK_WALL_S = 15.0  # beyond a drain's deadline, before the controller stops waiting for it
RETRIES = 3  # calls to the pool that change its state are tried this often

T = TypeVar("T")


class SpotControllerRole(Role[SpotServeConfig]):
    schema = SpotServeConfig
    role = "controller"

    def __init__(self, spec: RunSpec, name: str, out_dir: Path) -> None:
        super().__init__(spec, name, out_dir)
        cfg = self.config
        self.model = cfg.model
        events = load_availability(cfg.trace)
        workers: dict[Gpu, str] = {}
        self.process_of: dict[str, str] = {}
        for w in spec.of("worker"):
            assert w.instance is not None and w.gpu is not None
            workers[Gpu(w.instance, w.gpu)] = w.name
            self.process_of[w.name] = w.process_name
        self.workers = workers
        self.core = SpotControllerCore.for_run(cfg, events, workers, time.perf_counter)
        self.stubs = {name: pbg.SpotWorkerStub(self.channel_to(name)) for name in workers.values()}
        self.pool = pbg.RequestPoolStub(self.channel_to(spec.only("load_balancer").name))
        self.threads = ThreadPoolExecutor(max_workers=64, thread_name_prefix="rpc")
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.drains: dict[int, Future[pb.DrainReply | None]] = {}
        self._timer = self.work_thread(self._timer_loop, "timer")
        self._ticker = self.work_thread(self._tick_loop, "ticks")

        self.migrated: list[dict[str, object]] = []  # real execution: what the GPUs' migrations took

    def servicers(self) -> list[Servicer]:
        return [(pbg.add_ControllerServicer_to_server, _ControllerService(self))]

    def parallel(self, fn: Callable[[T], object], items: Iterable[T]) -> None:
        list(self.threads.map(fn, items))

    # ------------------------------------------------------------------ start
    def on_start(self) -> None:
        with self.lock:
            actions = self.core.start(0.0)
        self.apply(actions)
        self._timer.start()
        self._ticker.start()

    # ------------------------------------------------------------------ the timer queue
    def _timer_loop(self) -> None:
        while not self.stopping.is_set():
            with self.lock:
                due = self.core.next_due()
            wait_s = self.clock.wall(due - self.clock.now()) if due is not None else 1.0
            if wait_s > 0:
                self.wake.wait(min(wait_s, 1.0))
                self.wake.clear()
                continue
            try:
                self._run_due(self.clock.now())
            except Exception:  # one bad step must not stop the replay
                self.log.exception("A controller step failed; going on")

    def _run_due(self, now: float) -> None:
        while not self.stopping.is_set():
            with self.lock:
                out = self.core.step(now)
            if out is None:
                return
            if isinstance(out, NeedDrainReports):
                stopped = self._collect(out.replicas)
                with self.lock:
                    out = self.core.step(now, stopped)
                assert not isinstance(out, NeedDrainReports)
            self.apply(out or [])

    def _collect(self, replicas: tuple[int, ...]) -> dict[int, DrainReport]:
        """The drains' answers: the batch each replica stopped in (those that did not answer
        are left out; the pool takes their batches back when they are gone)."""
        futures = {r: self.drains.pop(r) for r in replicas if r in self.drains}
        wait(list(futures.values()), timeout=DRAIN_SLACK_WALL_S)
        stopped = {}
        for r, fut in futures.items():
            reply = fut.result() if fut.done() else None
            if reply is not None and reply.stopped:
                stopped[r] = DrainReport(tuple(reply.requests), reply.tokens)
            else:
                self.log.warning("Replica %d did not say where it stopped: the pool keeps its batch", r)
        return stopped

    # ------------------------------------------------------------------ applying actions
    def apply(self, actions: Iterable[Action]) -> None:
        for a in actions:
            if isinstance(a, AssignReplica):
                self._assign(a)
            elif isinstance(a, ReleaseReplica):
                names = [self.workers[g] for g in a.replica.gpus]
                self.parallel(lambda n: self._quiet(self.stubs[n].Release, pb.WorkerRef(worker=n)), names)
            elif isinstance(a, DrainReplica):
                self.drains[a.replica.id] = self.threads.submit(self._drain, a)
            elif isinstance(a, Requeue):
                pinned = [pb.PinnedBatch(replica=r, requests=ids, start_step=s) for r, ids, s in a.pinned]
                self._to_pool(self.pool.Requeue, pb.RequeueRequest(pinned=pinned, restarted=a.restarted))
            elif isinstance(a, ReplicasGone):
                self._to_pool(self.pool.Gone, pb.GoneRequest(replicas=a.replicas, at=a.at))
            elif isinstance(a, Preempt):
                self._preempt(a.instances)

    def _assign(self, a: AssignReplica) -> None:
        members = [self.workers[g] for g in a.replica.gpus]
        t = a.timing
        timing = pb.BatchTiming(prefill_s=t.prefill_s, step_s=t.step_s, embed_s=t.embed_s)

        def one(worker: str) -> None:
            me = a.replica.gpus[members.index(worker)]
            transfers = [
                pb.PlannedTransfer(
                    kind=x.kind,
                    layer_lo=x.layers[0],
                    layer_hi=x.layers[1],
                    slice=x.shard[0],
                    slices=x.shard[1],
                    replica=-1 if x.replica is None else x.replica,
                    src=self.workers[x.src] if x.src else "",
                    nbytes=x.nbytes,
                )
                for x in a.transfers
                if x.dst == me
            ]
            msg = pb.ReplicaAssignment(
                replica=a.replica.id,
                config=str(a.config),
                members=members,
                worker=worker,
                ready_at=a.ready_at,
                batch=a.config.batch,
                timing=timing,
                output_len=self.model.output_len,
                tp=a.config.tp,
                pp=a.config.pp,
                reload=a.reload,
                transfers=transfers,
            )
            try:
                self.stubs[worker].Assign(msg, timeout=self.rpc_timeout)
            except grpc.RpcError as err:
                self.log.warning("Assign failed <worker=%s code=%s>", worker, err.code())

        self.parallel(one, members)

    def _drain(self, a: DrainReplica) -> pb.DrainReply | None:
        leader = self.workers[a.replica.leader]
        wall = 5.0 if a.deadline == float("inf") else self.clock.wall(a.deadline - self.clock.now())
        request = pb.DrainRequest(
            replica=a.replica.id, deadline=a.deadline, keep_progress=a.keep_progress, optimistic=not a.conservative
        )
        try:
            reply: pb.DrainReply = self.stubs[leader].Drain(request, timeout=max(0.0, wall) + DRAIN_SLACK_WALL_S)
            return reply
        except grpc.RpcError as err:
            self.log.warning("Drain failed <replica=%d code=%s>", a.replica.id, err.code())
            return None

    def _to_pool(self, call: Callable[..., object], request: object) -> None:
        for attempt in range(RETRIES):
            try:
                call(request, timeout=self.rpc_timeout)
                return
            except grpc.RpcError as err:
                self.log.warning("Pool call failed <attempt=%d code=%s>", attempt + 1, err.code())
        self.log.error("Gave up on a pool call; what it concerned stays in the pool (unfinished)")

    def _preempt(self, instances: tuple[str, ...]) -> None:
        processes = {self.process_of[n]: n for g, n in self.workers.items() if g.instance in instances}
        self.parallel(lambda n: self._quiet(self.stubs[n].Preempt, pb.Empty()), processes.values())
        if processes:
            self.log.info("Preempted <instances=%s processes=%d>", ",".join(instances), len(processes))

    def _quiet(self, call: Callable[..., object], request: object) -> None:
        with contextlib.suppress(grpc.RpcError):  # a worker of a preempted or lost instance
            call(request, timeout=self.rpc_timeout)

    # ------------------------------------------------------------------ heartbeats
    def _tick_loop(self) -> None:
        cadence = Cadence(self.config.run.heartbeat_s)
        cadence.take(0.0)  # the start (core.start) stands for the tick at 0: the loop's first is at 1 x period
        while not self.stopping.is_set():
            if self.stopping.wait(max(0.0, self.clock.wall(cadence.due - self.clock.now()))):
                return
            now = self.clock.now()
            cadence.take(now)
            try:
                self._tick(now)
            except Exception:
                self.log.exception("Tick failed; continuing")

    def _tick(self, now: float) -> None:
        with self.lock:
            targets = self.core.heartbeat_targets()
        by_process: dict[str, list[str]] = {}
        for name in targets:
            by_process.setdefault(self.process_of[name], []).append(name)

        def beat(names: list[str]) -> tuple[list[str], bool]:
            try:
                self.stubs[names[0]].Heartbeat(
                    pb.WorkerRef(worker=names[0]), timeout=self.config.run.heartbeat_timeout_s
                )
                return names, True
            except grpc.RpcError:
                return names, False

        answered: list[str] = []
        missed: list[str] = []
        for names, ok in self.threads.map(beat, by_process.values()):
            (answered if ok else missed).extend(names)
        try:
            s = self.pool.PoolStatus(pb.Empty(), timeout=self.config.run.heartbeat_timeout_s)
            pool = {
                "waiting": s.waiting,
                "resumable": s.resumable,
                "pinned": s.pinned,
                "leased": s.leased,
                "submitted": s.submitted,
            }
        except grpc.RpcError:
            pool = {}
        with self.lock:
            actions = self.core.tick(now, answered, missed, pool)
        if actions:
            self.log.warning("Lost <instances=%s>", ",".join(sorted(self.core.lost)))
            self.apply(actions)
            self.wake.set()

    def migrated_report(self, r: pb.MigrationReport) -> None:
        at = self.clock.now()
        rows: list[dict[str, object]] = [
            {
                "at": at,
                "replica": r.replica,
                "worker": r.worker,
                "kind": "total",
                "layers": "",
                "src": "",
                "planned_bytes": sum(d.planned.nbytes for d in r.transfers),
                "bytes": sum(d.nbytes for d in r.transfers),
                "seconds": r.seconds,
                "group_s": r.group_s,
                "blocks": sum(d.blocks for d in r.transfers),
            }
        ]
        for d in r.transfers:
            p = d.planned
            rows.append(
                {
                    "at": at,
                    "replica": r.replica,
                    "worker": r.worker,
                    "kind": p.kind,
                    "layers": f"{p.layer_lo}-{p.layer_hi}",
                    "src": p.src or "storage",
                    "planned_bytes": p.nbytes,
                    "bytes": d.nbytes,
                    "seconds": d.seconds,
                    "group_s": 0.0,
                    "blocks": d.blocks,
                }
            )
        with self.lock:
            self.migrated += rows

    def finish(self) -> None:
        with self.lock:
            decisions = with_measured(self.core.decisions, self.migrated)
            rolefiles.write_controller(decisions, self.core.ticks, self.out_dir)
            if self.migrated:
                write_rows(self.migrated, self.out_dir / rolefiles.TRANSFERS_FILE)
        self.threads.shutdown(wait=False, cancel_futures=True)


class _ControllerService(pbg.ControllerServicer):
    def __init__(self, controller: SpotControllerRole) -> None:
        self.c = controller

    def Register(self, request: pb.RegisterRequest, context: grpc.ServicerContext) -> pb.Empty:
        return pb.Empty()

    def Migrated(self, request: pb.MigrationReport, context: grpc.ServicerContext) -> pb.Empty:
        self.c.migrated_report(request)
        return pb.Empty()
