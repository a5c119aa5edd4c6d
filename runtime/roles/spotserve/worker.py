"""SpotServe workers: GPUs of a spot instance, a gRPC shell over `ReplicaCore`.

In simulated execution one process hosts every GPU of its instance (`RoleAddress.process`);
each GPU is a worker by name. The controller assigns each GPU a position in a replica; the
replica's first GPU leads: its worker runs the replica's engine, a thread that pulls batches
from the request pool (leased to the replica), runs each (a prefill, then one decode step
after another, each committing a token: runtime/cores/spotserve/replica.py) and reports it
to the pool, finished (with its requests, which the pool passes on to the sink) or interrupted
by a drain (with the tokens it committed). Told its instance is preempted, the process exits.

In real execution (`execution.mode=real`) every GPU has its own process and a `GptGpu`
(runtime/executors/gpt.py). An assignment runs on the process's one rank thread: the GPU
carries out its part of the migration plan (blocks from peers over `Blocks`, or storage), tells
the controller what it measured, joins the replica's group on the leader's TCP store, and then
leads (pulls batches and broadcasts each prefill and decode step; every step commits a token
through the same `ReplicaCore`, timed by the clock, not by the profile) or follows the leader
until the replica is released.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from runtime.cores.spotserve.pool import Lease
from runtime.cores.spotserve.replica import Assignment, Finished, Interrupted, ReplicaCore, stamp_outcome
from runtime.outbox import Outbox
from runtime.policies.spotserve.timing import BatchTiming, MeasuredRun, Run
from runtime.protos import servelab_pb2 as pb
from runtime.protos import servelab_pb2_grpc as pbg
from runtime.query import Query, from_pb, to_pb
from runtime.roles.base import Role, Servicer
from runtime.schema.spotserve import SpotServeConfig
from runtime.spec import RunSpec

if TYPE_CHECKING:
    from runtime.executors.gpt import GptGpu, Migration, Planned

PULL_WAIT_WALL_S = 0.2  # how long the pool holds a pull when it has nothing for the replica
DRAIN_SLACK_WALL_S = 10.0  # beyond the deadline, before a drain answers that it has not stopped
GROUP_TIMEOUT_S = 60.0  # real execution: forming a replica's group, and any one collective


@dataclass
class _Engine:
    """A replica this process leads."""

    core: ReplicaCore
    leader: str
    queries: list[Query] = field(default_factory=list)  # the batch running
    interrupted: tuple[tuple[int, ...], int] = ((), 0)  # the batch a drain stopped, and its tokens
    received: int = -1  # the last lease it got
    released: bool = False
    thread: threading.Thread | None = None


class SpotWorkerRole(Role[SpotServeConfig]):
    schema = SpotServeConfig
    role = "worker"

    def __init__(self, spec: RunSpec, name: str, out_dir: Path) -> None:
        super().__init__(spec, name, out_dir)
        self.members = {a.name for a in spec.members(name)}
        self.cond = threading.Condition()
        self.engines: dict[int, _Engine] = {}
        self.assigned: dict[str, int] = {}  # worker -> replica
        self.completed = 0
        self.registered = False
        self.pool = pbg.RequestPoolStub(self.channel_to(spec.only("load_balancer").name))
        # A finished batch's requests travel in its report: the load balancer takes the lease off
        # its pool and hands them to the sink in one step. Sent apart (the report to the pool,
        # the requests to the sink), a worker killed between the two left the pool believing
        # them done and the sink without them.
        self.reports: Outbox[pb.LeaseReport] = Outbox("pool", self._send_reports, self.log, max_batch=1)
        self.gpu: GptGpu | None = None
        if self.config.execution.mode == "real":
            self.gpu = self._make_gpu()
            self.rank = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rank")
            controller = pbg.ControllerStub(self.channel_to(spec.only("controller").name))

            def send(reports: list[pb.MigrationReport]) -> None:
                for r in reports:
                    controller.Migrated(r, timeout=self.rpc_timeout)

            self.migrations: Outbox[pb.MigrationReport] = Outbox("controller", send, self.log)

    def _make_gpu(self) -> GptGpu:
        import torch

        from runtime.executors.gpt import GptGpu
        from runtime.executors.real import pick_device
        from runtime.models.gpt import GptShape

        cfg = self.config
        gpu = self.spec.role(self.name).gpu
        device = pick_device(cfg.execution.device, gpu)
        if device.startswith("cuda") and gpu is not None:
            device = f"cuda:{gpu % torch.cuda.device_count()}"
        if device == "cpu" and cfg.execution.threads > 0:
            torch.set_num_threads(cfg.execution.threads)
        if all(a.address.startswith(("127.", "localhost")) for a in self.spec.of("worker")):
            os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # one machine: gloo talks over loopback
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        root = Path(cfg.execution.weights_dir or Path.home() / ".cache" / "servelab" / "weights").expanduser()
        # More GPU workers on this host than CUDA devices: they share devices.
        host = self.spec.role(self.name).address.rsplit(":", 1)[0]
        here = [w for w in self.spec.of("worker") if w.address.rsplit(":", 1)[0] == host]
        shared = device.startswith("cuda") and len(here) > torch.cuda.device_count()
        return GptGpu(GptShape.of(cfg.model), cfg.seed, cfg.model.input_len, dtype, device, root, shared)

    def _send_reports(self, reports: list[pb.LeaseReport]) -> None:
        for r in reports:
            self.pool.Report(r, timeout=self.rpc_timeout)

    def servicers(self) -> list[Servicer]:
        return [(pbg.add_SpotWorkerServicer_to_server, _SpotWorkerService(self))]

    def after_bind(self) -> None:
        if self.gpu is not None:
            self.gpu.store_port()
        self.register_with_controller()
        self.registered = True

    def ready(self) -> bool:
        return self.registered

    def finish(self) -> None:
        with self.cond:
            for e in self.engines.values():
                e.released = True
            self.cond.notify_all()
        self.reports.close(timeout=2.0)
        if self.gpu is not None:
            self.migrations.close(timeout=2.0)
            self.rank.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ control
    def assign(self, a: pb.ReplicaAssignment) -> None:
        t = a.timing
        timing = BatchTiming(tuple(t.prefill_s), tuple(t.step_s), tuple(t.embed_s))
        leads = a.members[0] == a.worker
        with self.cond:
            self.assigned[a.worker] = a.replica
            if a.replica in self.engines:
                return
            engine = None
            if leads:
                # Real execution: ready when its group has formed (`_real_replica` sets it).
                ready = float("inf") if self.gpu is not None else a.ready_at
                m = self.config.spot.mechanics
                ff = self.config.model.final_fix_factor
                core = ReplicaCore(
                    Assignment(
                        a.replica,
                        a.batch,
                        timing,
                        a.output_len,
                        ready,
                        a.config,
                        m.jit_interruption,
                        ff,
                        not m.fix_factor_planning_only,
                    )
                )
                engine = _Engine(core, a.worker)
                self.engines[a.replica] = engine
        if self.gpu is not None:
            self.rank.submit(self._real_replica, a, engine)
            return
        if engine is None:
            return
        self.log.info(
            "Leading <replica=%d config=%s ready_at=%.1f worker=%s>", a.replica, a.config, a.ready_at, a.worker
        )
        engine.thread = threading.Thread(target=self._run, args=(engine,), name=f"replica-{a.replica}", daemon=True)
        engine.thread.start()

    def release(self, worker: str) -> None:
        with self.cond:
            replica = self.assigned.pop(worker, None)
            engine = self.engines.get(replica) if replica is not None else None
            if engine is not None and engine.leader == worker:
                engine.released = True
                del self.engines[engine.core.id]
            self.cond.notify_all()

    def drain(self, request: pb.DrainRequest) -> pb.DrainReply:
        with self.cond:
            engine = self.engines.get(request.replica)
            if engine is None:  # nothing runs here for it (never assigned, or released)
                return pb.DrainReply(replica=request.replica, stopped=True)
            engine.core.drain(request.deadline, request.keep_progress, not request.optimistic)
            self.cond.notify_all()
            if engine.core.deadline is None:
                return pb.DrainReply(replica=request.replica, stopped=False)  # cancelled: it serves on
            wait = self.clock.wall(request.deadline - self.clock.now()) + DRAIN_SLACK_WALL_S
            self.cond.wait_for(lambda: engine.core.stopped or engine.released or self.stopping.is_set(), wait)
            ids, tokens = engine.interrupted
            return pb.DrainReply(replica=request.replica, requests=ids, tokens=tokens, stopped=engine.core.stopped)

    def status(self, worker: str) -> pb.WorkerStatus:
        with self.cond:
            replica = self.assigned.get(worker, -1)
            engine = self.engines.get(replica)
            busy = engine is not None and engine.core.lease is not None
            port = self.gpu.store_port() if self.gpu is not None else 0
            return pb.WorkerStatus(
                name=worker, plan_id=replica, busy=busy, completed=self.completed, now=self.clock.now(), store_port=port
            )

    # ------------------------------------------------------------------ a replica's engine
    def _run(self, engine: _Engine) -> None:
        try:
            self._serve(engine)
        except Exception:  # a broken engine must not take the process down; the pool reclaims its lease
            self.log.exception("Replica %d's engine failed", engine.core.id)

    def _serve(self, engine: _Engine) -> None:
        core = engine.core
        while True:
            with self.cond:
                if engine.released or self.stopping.is_set():
                    return
                now = self.clock.now()
                outcome = core.advance(now)
                if isinstance(outcome, Finished | Interrupted):
                    self._report(engine, outcome)
                if core.stopped:
                    self.cond.notify_all()
                    self.log.info("Replica %d drained <interrupted=%d>", core.id, len(engine.interrupted[0]))
                    return
                pull = core.wants_batch(now)
                if not pull:
                    wake = core.wake_at(now)
                    wait = self.clock.wall(wake - now) if wake is not None else PULL_WAIT_WALL_S
                    self.cond.wait(max(0.001, wait))
                    continue
            self._pull(engine)
            if self.gpu is not None and core.lease is not None:
                self._run_batch(engine)  # real execution: the batch runs here, step by step

    def _pull(self, engine: _Engine) -> None:
        a = engine.core.a
        t = a.timing
        request = pb.NextBatchRequest(
            replica=a.replica,
            max_batch=a.batch,
            wait_s=PULL_WAIT_WALL_S,
            output_len=a.output_len,
            timing=pb.BatchTiming(prefill_s=t.prefill_s, step_s=t.step_s, embed_s=t.embed_s),
            received=engine.received,
        )
        try:
            reply = self.pool.NextBatch(request, timeout=self.rpc_timeout + PULL_WAIT_WALL_S)
        except grpc.RpcError as err:
            self.log.warning("Pulling a batch failed <code=%s>", err.code())
            self.stopping.wait(PULL_WAIT_WALL_S)
            return
        if reply.lease < 0:
            return
        ids = tuple(q.id for q in reply.queries)
        run: Run | MeasuredRun
        if self.gpu is not None:
            run = MeasuredRun(reply.started_at, len(ids), reply.start_step, a.output_len)
        else:
            run = Run(reply.started_at, len(ids), reply.start_step, a.output_len, t, reply.recompute)
        with self.cond:
            refused = engine.core.start(Lease(reply.lease, a.replica, ids, reply.start_step, reply.recompute, run))
            engine.queries, engine.received = [from_pb(q) for q in reply.queries], reply.lease
            if refused is not None:
                self._report(engine, refused)

    def _report(self, engine: _Engine, outcome: Finished | Interrupted) -> None:
        """Under the lock: stamp the batch's stage and tell the pool how it ended (a finished
        batch's requests go with it, on to the sink)."""
        queries, engine.queries = engine.queries, []
        stamp_outcome(queries, outcome, engine.leader, engine.core.id, engine.core.a.output_len)
        if isinstance(outcome, Finished):
            self.completed += len(queries)
            report = pb.LeaseReport(lease=outcome.lease.id, finished=True, queries=map(to_pb, queries))
            self.reports.put([report])
        else:
            engine.interrupted = (tuple(q.id for q in queries), outcome.tokens)
            self.reports.put([pb.LeaseReport(lease=outcome.lease.id, finished=False, tokens=outcome.tokens)])
            self.log.info(
                "Drained mid-batch <replica=%d n=%d committed=%d>", engine.core.id, len(queries), outcome.tokens
            )

    # ------------------------------------------------------------------ real execution
    def _real_replica(self, a: pb.ReplicaAssignment, engine: _Engine | None) -> None:
        """On the rank thread: migrate, join the group, lead or follow, leave."""
        from runtime.executors.gpt import OP_QUIT
        from runtime.models.gpt import Place

        gpu = self.gpu
        assert gpu is not None
        rank = list(a.members).index(a.worker)
        place = Place(a.tp, a.pp, rank % a.tp, rank // a.tp)
        try:
            if self.stopping.is_set() or self.assigned.get(a.worker) != a.replica:
                return  # released before its turn
            migration = gpu.become(place, [_planned(t) for t in a.transfers], a.reload, self._fetch)
            gpu.replica, gpu.max_batch = a.replica, a.batch
            t0 = time.perf_counter()
            gpu.join(self._store_of(a.members[0]), a.replica, rank, place, GROUP_TIMEOUT_S)
            group_s = time.perf_counter() - t0
            now = self.clock.now()
            self.migrations.put([_migration_report(a, migration, group_s, now)])
            self.log.info(
                "Rank %d of replica %d <config=%s migration=%.3fs group=%.3fs>",
                rank,
                a.replica,
                a.config,
                migration.seconds,
                group_s,
            )
            if engine is None:
                gpu.follow()
                return
            with self.cond:
                engine.core.a = replace(engine.core.a, ready_at=now)
            try:
                self._serve(engine)
            finally:
                gpu.lead(OP_QUIT)  # the followers leave too
        except Exception:  # a peer gone mid-collective, a failed fetch: the replica ends here
            self.log.exception("Replica %d's rank %d failed", a.replica, rank)
        finally:
            gpu.leave()
            with self.cond:
                if engine is not None:
                    engine.released = True
                self.cond.notify_all()

    def _store_of(self, leader: str) -> tuple[str, int]:
        """The leader process's TCP store (its port comes with its heartbeat)."""
        stub = pbg.SpotWorkerStub(self.channel_to(leader))
        port = stub.Heartbeat(pb.WorkerRef(worker=leader), timeout=self.rpc_timeout).store_port
        return self.spec.role(leader).address.rsplit(":", 1)[0], port

    def _fetch(
        self, worker: str, names: list[str], kv_replica: int, kv_layers: list[int], kv_heads: list[int]
    ) -> Iterator[tuple[bytes, bool]]:
        stub = pbg.SpotWorkerStub(self.channel_to(worker))
        request = pb.BlockRequest(names=names, kv_replica=kv_replica, kv_layers=kv_layers, kv_heads=kv_heads)
        for chunk in stub.Blocks(request, timeout=GROUP_TIMEOUT_S):
            yield chunk.data, chunk.last

    def _run_batch(self, engine: _Engine) -> None:
        """Run the leased batch step by step; each step's end commits its token."""
        from runtime.executors.gpt import OP_BATCH, OP_CUT, OP_END, OP_STEP

        gpu, core = self.gpu, engine.core
        assert gpu is not None and core.lease is not None
        lease = core.lease
        run = lease.run
        assert isinstance(run, MeasuredRun)
        committed = gpu.lead(OP_BATCH, lease.requests, lease.start_step, int(lease.recompute))
        while True:
            with self.cond:
                now = self.clock.now()
                for _ in range(committed - run.tokens):
                    run.commit(now)
                if run.tokens >= run.output_len and run.finished is None:
                    run.finished = now
                outcome = core.advance(now)
            if outcome is None:
                committed = gpu.lead(OP_STEP)
                continue
            if isinstance(outcome, Interrupted):
                gpu.lead(OP_CUT, a=outcome.tokens)
            else:
                gpu.lead(OP_END)
            with self.cond:
                if isinstance(outcome, Finished | Interrupted):
                    self._report(engine, outcome)
                self.cond.notify_all()
            return

    def blocks(self, request: pb.BlockRequest) -> Iterator[pb.BlockChunk]:
        from runtime.executors.gpt import pack

        if self.gpu is None:
            return
        blocks = self.gpu.serve(
            list(request.names), request.kv_replica, list(request.kv_layers), list(request.kv_heads)
        )
        for data, last in pack(blocks):
            yield pb.BlockChunk(data=data, last=last)


def _planned(t: pb.PlannedTransfer) -> Planned:
    from runtime.executors.gpt import Planned

    return Planned(t.kind, (t.layer_lo, t.layer_hi), t.slice, t.slices, t.replica, t.src, t.nbytes)


def _migration_report(a: pb.ReplicaAssignment, m: Migration, group_s: float, now: float) -> pb.MigrationReport:
    done = []
    for d in m.transfers:
        p = d.planned
        planned = pb.PlannedTransfer(
            kind=p.kind,
            layer_lo=p.layers[0],
            layer_hi=p.layers[1],
            slice=p.slice,
            slices=p.slices,
            replica=p.replica,
            src=p.src,
            nbytes=p.nbytes,
        )
        done.append(pb.TransferDone(planned=planned, nbytes=d.nbytes, seconds=d.seconds, blocks=d.blocks))
    return pb.MigrationReport(
        replica=a.replica, worker=a.worker, transfers=done, seconds=m.seconds, group_s=group_s, ready_at=now
    )


class _SpotWorkerService(pbg.SpotWorkerServicer):
    def __init__(self, worker: SpotWorkerRole) -> None:
        self.w = worker

    def Assign(self, request: pb.ReplicaAssignment, context: grpc.ServicerContext) -> pb.Empty:
        self.w.assign(request)
        return pb.Empty()

    def Release(self, request: pb.WorkerRef, context: grpc.ServicerContext) -> pb.Empty:
        self.w.release(request.worker)
        return pb.Empty()

    def Drain(self, request: pb.DrainRequest, context: grpc.ServicerContext) -> pb.DrainReply:
        return self.w.drain(request)

    def Preempt(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.Empty:
        self.w.log.info("Preempted: the instance is gone; exiting")
        self.w.stopping.set()
        return pb.Empty()

    def Heartbeat(self, request: pb.WorkerRef, context: grpc.ServicerContext) -> pb.WorkerStatus:
        return self.w.status(request.worker)

    def Blocks(self, request: pb.BlockRequest, context: grpc.ServicerContext) -> Iterator[pb.BlockChunk]:
        return self.w.blocks(request)
