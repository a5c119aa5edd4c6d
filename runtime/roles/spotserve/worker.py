"""SpotServe worker: one GPU of a spot instance.

The controller assigns it a position in a replica; the replica's first worker leads: it pulls
batches from the request pool and runs them with the simulated executor (a prefill, then one
decode step after another, each committing a token), and sends finished requests to the sink.
Told to drain, the leader stops at the deadline with whatever progress it committed (or none)
and hands back the requests it stopped in. Told its instance is preempted, the worker exits.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc

from runtime.outbox import Outbox
from runtime.policies.spotserve.engine import BatchTiming, Run, worth_starting
from runtime.protos import servelab_pb2 as pb
from runtime.protos import servelab_pb2_grpc as pbg
from runtime.roles.base import Role, Servicer
from runtime.spec import RunSpec

PULL_WAIT_WALL_S = 0.2


class SpotWorkerRole(Role):
    role = "worker"

    def __init__(self, spec: RunSpec, name: str, out_dir: Path) -> None:
        super().__init__(spec, name, out_dir)
        self.cond = threading.Condition()
        self.assignment: pb.ReplicaAssignment | None = None
        self.generation = 0  # bumped by every Assign/Release: an old engine loop ends
        self.drain: pb.DrainRequest | None = None
        self.stopped = threading.Event()  # the current engine has stopped after a drain
        self.interrupted: list[pb.Query] = []
        self.tokens = 0
        self.run: Run | None = None
        self.completed = 0
        self.registered = False
        self.pool = pbg.RequestPoolStub(self.channel_to(spec.only("load_balancer").name))
        sink = pbg.SinkStub(self.channel_to(spec.only("sink").name))
        self.to_sink: Outbox[pb.Query] = Outbox(
            "sink", lambda qs: sink.Complete(pb.QueryBatch(queries=qs), timeout=self.rpc_timeout), self.log
        )

    def servicers(self) -> list[Servicer]:
        return [(pbg.add_SpotWorkerServicer_to_server, _SpotWorkerService(self))]

    def after_bind(self) -> None:
        self.register_with_controller()
        self.registered = True

    def ready(self) -> bool:
        return self.registered

    def finish(self) -> None:
        with self.cond:
            self.generation += 1
            self.cond.notify_all()
        self.to_sink.close(timeout=2.0)

    # ------------------------------------------------------------------ control
    def assign(self, a: pb.ReplicaAssignment) -> None:
        with self.cond:
            self.generation += 1
            self.assignment, self.drain, self.run = a, None, None
            self.interrupted, self.tokens = [], 0
            self.stopped.clear()
            generation = self.generation
            self.cond.notify_all()
        self.log.info(
            "Assigned <replica=%d config=%s leader=%s ready_at=%.1f>", a.replica, a.config, a.leader, a.ready_at
        )
        if a.leader:
            threading.Thread(target=self._engine, args=(a, generation), name=f"engine-{a.replica}", daemon=True).start()

    def release(self) -> None:
        with self.cond:
            self.generation += 1
            self.assignment, self.drain = None, None
            self.cond.notify_all()

    def drain_now(self, request: pb.DrainRequest) -> pb.DrainReply:
        with self.cond:
            a = self.assignment
            if a is None or not a.leader or a.replica != request.replica:
                self.log.warning(
                    "Drain for replica %d, which this worker does not lead (%s)",
                    request.replica,
                    a.replica if a else None,
                )
                return pb.DrainReply(replica=request.replica)
            self.drain = request
            self.cond.notify_all()
        wait = max(0.0, self.clock.wall(request.deadline - self.clock.now())) + 10.0
        stopped = self.stopped.wait(wait)
        with self.cond:
            self.log.debug(
                "Drain done <replica=%d stopped=%s interrupted=%d>", request.replica, stopped, len(self.interrupted)
            )
            return pb.DrainReply(replica=request.replica, interrupted=self.interrupted, tokens=self.tokens)

    # ------------------------------------------------------------------ the replica's engine
    def _live(self, generation: int) -> bool:
        return self.generation == generation and not self.stopping.is_set()

    def _wait_until(self, generation: int, t: float) -> None:
        """Sleep until trace time t, waking when a drain or another assignment arrives."""
        with self.cond:
            while self._live(generation) and self.clock.now() < t:
                if self.drain is not None and self.drain.deadline <= t and self.clock.now() >= self.drain.deadline:
                    return
                horizon = min(t, self.drain.deadline) if self.drain is not None else t
                self.cond.wait(max(0.001, self.clock.wall(horizon - self.clock.now())))

    def _engine(self, a: pb.ReplicaAssignment, generation: int) -> None:
        timing = BatchTiming(tuple(a.timing.prefill_s), tuple(a.timing.step_s), tuple(a.timing.embed_s))
        self._wait_until(generation, a.ready_at)
        while self._live(generation):
            with self.cond:
                drain = self.drain
            # Draining, a replica still serves until its deadline: it takes a batch only if a
            # full one would finish (or, keeping progress, commit a token) before then.
            if drain is not None and not worth_starting(
                timing, a.batch, 0, a.output_len, self.clock.now(), drain.deadline, drain.keep_progress
            ):
                self._stop([], 0)
                return
            try:
                reply = self.pool.NextBatch(
                    pb.NextBatchRequest(replica=a.replica, max_batch=a.batch, wait_s=PULL_WAIT_WALL_S),
                    timeout=self.rpc_timeout + PULL_WAIT_WALL_S,
                )
            except grpc.RpcError as err:
                self.log.warning("Pulling a batch failed <code=%s>", err.code())
                time.sleep(PULL_WAIT_WALL_S)
                continue
            if not reply.queries:
                continue
            if self._run_batch(a, generation, timing, list(reply.queries), reply.start_step):
                return  # drained mid-batch: this engine is done

    def _run_batch(
        self, a: pb.ReplicaAssignment, generation: int, timing: BatchTiming, queries: list[pb.Query], start_step: int
    ) -> bool:
        """Run one batch; True when a drain (or a stop) ended it before it finished."""
        run = Run(self.clock.now(), len(queries), start_step, a.output_len, timing)
        with self.cond:
            self.run = run
        self._wait_until(generation, run.finish_at)
        if not self._live(generation):
            return True  # stopped or reassigned without a drain: the batch is lost (unfinished)
        now = self.clock.now()
        with self.cond:
            drain, self.run = self.drain, None
        if now >= run.finish_at or drain is None or drain.deadline >= run.finish_at:
            for q in queries:
                q.stages.append(
                    pb.Stage(
                        worker=self.name, started_at=run.started_at, finished_at=run.finish_at, batch_size=len(queries)
                    )
                )
                q.tokens_done, q.replica = a.output_len, a.replica
            self.to_sink.put(queries)
            self.completed += len(queries)
            return False
        committed = run.committed_at(drain.deadline) if drain.keep_progress else 0
        for q in queries:
            q.stages.append(
                pb.Stage(
                    worker=self.name, started_at=run.started_at, finished_at=drain.deadline, batch_size=len(queries)
                )
            )
            q.tokens_done = committed
        self._stop(queries, committed)
        return True

    def _stop(self, interrupted: list[pb.Query], tokens: int) -> None:
        with self.cond:
            self.interrupted, self.tokens = interrupted, tokens
        self.stopped.set()
        if interrupted:
            self.log.info("Drained mid-batch <n=%d committed=%d>", len(interrupted), tokens)

    def status(self) -> pb.WorkerStatus:
        with self.cond:
            a = self.assignment
            return pb.WorkerStatus(
                name=self.name,
                plan_id=a.replica if a is not None else -1,
                busy=self.run is not None,
                completed=self.completed,
                now=self.clock.now(),
            )


class _SpotWorkerService(pbg.SpotWorkerServicer):
    def __init__(self, worker: SpotWorkerRole) -> None:
        self.w = worker

    def Assign(self, request: pb.ReplicaAssignment, context: grpc.ServicerContext) -> pb.Empty:
        self.w.assign(request)
        return pb.Empty()

    def Release(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.Empty:
        self.w.release()
        return pb.Empty()

    def Drain(self, request: pb.DrainRequest, context: grpc.ServicerContext) -> pb.DrainReply:
        return self.w.drain_now(request)

    def Preempt(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.Empty:
        self.w.log.info("Preempted: the instance is gone; exiting")
        self.w.stopping.set()
        return pb.Empty()

    def Heartbeat(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.WorkerStatus:
        return self.w.status()
