"""SpotServe workers: GPUs of a spot instance, a gRPC shell over `ReplicaCore`.

In simulated execution one process hosts every GPU of its instance (`RoleAddress.process`);
each GPU is a worker by name. The controller assigns each GPU a position in a replica; the
replica's first GPU leads: its worker runs the replica's engine, a thread that pulls batches
from the request pool (leased to the replica), runs each (a prefill, then one decode step
after another, each committing a token: runtime/cores/spotserve/replica.py) and reports it
to the pool, finished (the requests go to the sink) or interrupted by a drain (with the tokens
it committed). Told its instance is preempted, the process exits.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from runtime.cores.spotserve.pool import Lease
from runtime.cores.spotserve.replica import Assignment, Finished, Interrupted, ReplicaCore
from runtime.outbox import Outbox
from runtime.policies.spotserve.engine import BatchTiming, Run
from runtime.protos import servelab_pb2 as pb
from runtime.protos import servelab_pb2_grpc as pbg
from runtime.roles.base import Role, Servicer
from runtime.spec import RunSpec

PULL_WAIT_WALL_S = 0.2  # how long the pool holds a pull when it has nothing for the replica
DRAIN_SLACK_WALL_S = 10.0  # beyond the deadline, before a drain answers that it has not stopped


@dataclass
class _Engine:
    """A replica this process leads."""

    core: ReplicaCore
    leader: str
    queries: list[pb.Query] = field(default_factory=list)  # the batch running
    interrupted: tuple[tuple[int, ...], int] = ((), 0)  # the batch a drain stopped, and its tokens
    received: int = -1  # the last lease it got
    released: bool = False
    thread: threading.Thread | None = None


class SpotWorkerRole(Role):
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
        sink = pbg.SinkStub(self.channel_to(spec.only("sink").name))
        self.to_sink: Outbox[pb.Query] = Outbox(
            "sink", lambda qs: sink.Complete(pb.QueryBatch(queries=qs), timeout=self.rpc_timeout), self.log
        )
        self.reports: Outbox[pb.LeaseReport] = Outbox("pool", self._send_reports, self.log, max_batch=1)

    def _send_reports(self, reports: list[pb.LeaseReport]) -> None:
        for r in reports:
            self.pool.Report(r, timeout=self.rpc_timeout)

    def servicers(self) -> list[Servicer]:
        return [(pbg.add_SpotWorkerServicer_to_server, _SpotWorkerService(self))]

    def after_bind(self) -> None:
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
        self.to_sink.close(timeout=2.0)

    # ------------------------------------------------------------------ control
    def assign(self, a: pb.ReplicaAssignment) -> None:
        t = a.timing
        timing = BatchTiming(tuple(t.prefill_s), tuple(t.step_s), tuple(t.embed_s))
        with self.cond:
            self.assigned[a.worker] = a.replica
            if a.members[0] != a.worker or a.replica in self.engines:
                return
            core = ReplicaCore(Assignment(a.replica, a.batch, timing, a.output_len, a.ready_at, a.config))
            engine = _Engine(core, a.worker)
            self.engines[a.replica] = engine
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
            engine.core.drain(request.deadline, request.keep_progress)
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
            return pb.WorkerStatus(name=worker, plan_id=replica, busy=busy, completed=self.completed,
                                   now=self.clock.now())  # fmt: skip

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

    def _pull(self, engine: _Engine) -> None:
        a = engine.core.a
        t = a.timing
        request = pb.NextBatchRequest(
            replica=a.replica, max_batch=a.batch, wait_s=PULL_WAIT_WALL_S, output_len=a.output_len,
            timing=pb.BatchTiming(prefill_s=t.prefill_s, step_s=t.step_s, embed_s=t.embed_s),
            received=engine.received,
        )  # fmt: skip
        try:
            reply = self.pool.NextBatch(request, timeout=self.rpc_timeout + PULL_WAIT_WALL_S)
        except grpc.RpcError as err:
            self.log.warning("Pulling a batch failed <code=%s>", err.code())
            self.stopping.wait(PULL_WAIT_WALL_S)
            return
        if reply.lease < 0:
            return
        ids = tuple(q.id for q in reply.queries)
        run = Run(reply.started_at, len(ids), reply.start_step, a.output_len, t, reply.recompute)
        with self.cond:
            engine.core.start(Lease(reply.lease, a.replica, ids, reply.start_step, reply.recompute, run))
            engine.queries, engine.received = list(reply.queries), reply.lease

    def _report(self, engine: _Engine, outcome: Finished | Interrupted) -> None:
        """Under the lock: stamp the batch's stage and tell the pool (and the sink) how it ended."""
        finished = isinstance(outcome, Finished)
        end = outcome.finished_at if isinstance(outcome, Finished) else outcome.stopped_at
        queries, engine.queries = engine.queries, []
        for q in queries:
            q.stages.append(pb.Stage(worker=engine.leader, started_at=outcome.started_at, finished_at=end,
                                     batch_size=len(queries)))  # fmt: skip
        if isinstance(outcome, Finished):
            for q in queries:
                q.tokens_done, q.replica = engine.core.a.output_len, engine.core.id
            self.completed += len(queries)
            self.to_sink.put(queries)
            self.reports.put([pb.LeaseReport(lease=outcome.lease.id, finished=True)])
        else:
            for q in queries:
                q.tokens_done = outcome.tokens
            engine.interrupted = (tuple(q.id for q in queries), outcome.tokens)
            self.reports.put([pb.LeaseReport(lease=outcome.lease.id, finished=finished, tokens=outcome.tokens)])
            self.log.info(
                "Drained mid-batch <replica=%d n=%d committed=%d>", engine.core.id, len(queries), outcome.tokens
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
