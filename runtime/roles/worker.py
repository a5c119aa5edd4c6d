"""Worker role: one GPU worker of the cascade.

It queues the queries the load balancer sends it (one FIFO per tier), forms work-conserving
batches up to the plan's max batch, drops queries that can no longer meet the SLO, runs the
executor, and sends each result on: a light result whose confidence is below the threshold
goes back to the load balancer for the heavy tier; everything else (and every drop) goes to
the sink with its timeline. The controller sets the tier, batch sizes and threshold.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from runtime.executors.base import BatchItem, Executor, ItemResult
from runtime.outbox import Outbox
from runtime.policies.diffserve.batcher import next_batch
from runtime.policies.diffserve.rules import defers, should_drop
from runtime.protos import servelab_pb2 as pb
from runtime.protos import servelab_pb2_grpc as pbg
from runtime.records import DropReason, Tier
from runtime.roles.base import Role, Servicer
from runtime.rpc import TIER_FROM_PB, TIER_TO_PB
from runtime.spec import RunSpec
from traces import confidence as conf_table


@dataclass
class _Queued:
    query: pb.Query
    enqueued_at: float


def confidence_table(spec: RunSpec) -> np.ndarray:
    cascade = spec.config.cascade
    assert cascade is not None
    if cascade.confidence_path:
        return conf_table.read_artifact_dist(cascade.confidence_path)
    return conf_table.draw(cascade.deferral_curve.x, cascade.deferral_curve.y, cascade.num_prompts, spec.config.seed)


def make_executor(role: Role) -> Executor:
    cascade = role.config.cascade
    assert cascade is not None
    if role.config.execution.mode == "real":
        from runtime.executors.real import RealExecutor  # heavy imports only when asked for

        return RealExecutor(role.config, role.me, role.out_dir, confidence_table(role.spec))
    from runtime.executors.simulated import SimulatedExecutor

    return SimulatedExecutor(cascade, confidence_table(role.spec), role.clock.sleep)


class WorkerRole(Role):
    role = "worker"

    def __init__(self, spec: RunSpec, name: str, out_dir: Path) -> None:
        super().__init__(spec, name, out_dir)
        cascade = self.config.cascade
        assert cascade is not None
        self.slo_s = cascade.slo_s
        self.drop_factor = self.config.run.drop_factor
        self.cond = threading.Condition()
        self.queues: dict[Tier, deque[_Queued]] = {Tier.LIGHT: deque(), Tier.HEAVY: deque()}
        self.tier = Tier.IDLE
        self.max_batch = {Tier.LIGHT: 1, Tier.HEAVY: 1}
        self.threshold = 0.0
        self.plan_id = -1
        self.enqueued = self.completed = self.dropped = 0
        self.busy = False
        self.running = 0
        self.registered = False
        self.executor = make_executor(self)
        sink = pbg.SinkStub(self.channel_to(spec.only("sink").name))
        self.to_sink: Outbox[pb.Query] = Outbox(
            "sink", lambda qs: sink.Complete(pb.QueryBatch(queries=qs), timeout=self.rpc_timeout), self.log
        )
        lb = pbg.LoadBalancerStub(self.channel_to(spec.only("load_balancer").name))
        self.to_heavy: Outbox[pb.Query] = Outbox(
            "load_balancer",
            lambda qs: lb.Forward(pb.ForwardRequest(tier=pb.HEAVY, queries=qs), timeout=self.rpc_timeout),
            self.log,
        )
        self._service = threading.Thread(target=self._serve_batches, name="batches", daemon=True)

    # ------------------------------------------------------------------ life
    def servicers(self) -> list[Servicer]:
        return [(pbg.add_WorkerServicer_to_server, _WorkerService(self))]

    def after_bind(self) -> None:
        self._service.start()
        self.register_with_controller()
        self.registered = True

    def ready(self) -> bool:
        return self.registered

    def finish(self) -> None:
        with self.cond:
            left = sum(len(q) for q in self.queues.values())
            self.cond.notify_all()
        if left:
            self.log.info("Stopped with %d queries queued (the client counts them unfinished)", left)
        self.to_heavy.close(timeout=2.0)
        self.to_sink.close(timeout=2.0)

    # ------------------------------------------------------------------ RPC bodies
    def enqueue(self, tier: Tier, query: pb.Query) -> int:
        with self.cond:
            self.queues[tier].append(_Queued(query, self.clock.now()))
            self.enqueued += 1
            self.cond.notify()
            return sum(len(q) for q in self.queues.values())

    def configure(self, cfg: pb.WorkerConfig) -> None:
        with self.cond:
            self.tier = TIER_FROM_PB[cfg.tier]
            self.max_batch = {Tier.LIGHT: cfg.light_batch, Tier.HEAVY: cfg.heavy_batch}
            self.threshold = cfg.threshold
            self.plan_id = cfg.plan_id

    def status(self) -> pb.WorkerStatus:
        with self.cond:
            light, heavy = len(self.queues[Tier.LIGHT]), len(self.queues[Tier.HEAVY])
            return pb.WorkerStatus(
                name=self.name,
                tier=TIER_TO_PB[self.tier],
                queue_length=light + heavy,
                light_queue=light,
                heavy_queue=heavy,
                enqueued=self.enqueued,
                completed=self.completed,
                dropped=self.dropped,
                plan_id=self.plan_id,
                now=self.clock.now(),
                busy=self.busy,
                running=self.running,
            )

    # ------------------------------------------------------------------ the batch loop
    def _serve_batches(self) -> None:
        while not self.stopping.is_set():
            with self.cond:
                batch = next_batch(self.queues, self.max_batch)
                if batch is None:
                    self.cond.wait(0.2)
                    continue
                self.busy, self.running = True, len(batch[1])
            try:
                self._run_batch(*batch)
            except Exception:  # one bad batch must not stop the worker
                self.log.exception("Batch failed")
                failed = [q.query for q in batch[1]]
                for query in failed:
                    query.dropped, query.drop_reason = True, DropReason.EXECUTION_FAILED.value
                self._to_sink(failed)
            finally:
                with self.cond:
                    self.busy, self.running = False, 0

    def _run_batch(self, tier: Tier, items: list[_Queued]) -> None:
        now = self.clock.now()
        expected = self.executor.expected_latency_s(tier, len(items))
        keep: list[_Queued] = []
        hopeless: list[_Queued] = []
        for item in items:
            hopeless_now = should_drop(now, item.query.sent_at, expected, self.slo_s, self.drop_factor)
            (hopeless if hopeless_now else keep).append(item)
        for item in hopeless:
            item.query.dropped, item.query.drop_reason = True, DropReason.SLO_UNREACHABLE.value
        finished: list[pb.Query] = [i.query for i in hopeless]
        deferred: list[pb.Query] = []
        if keep:
            started = self.clock.now()
            results: list[ItemResult] = self.executor.execute(
                tier, [BatchItem(i.query.id, i.query.prompt_index, i.query.prompt) for i in keep]
            )
            done_at = self.clock.now()
            threshold = self.threshold
            for item, result in zip(keep, results, strict=True):
                q = item.query
                q.stages.append(
                    pb.Stage(
                        tier=TIER_TO_PB[tier],
                        worker=self.name,
                        enqueued_at=item.enqueued_at,
                        started_at=started,
                        finished_at=done_at,
                        batch_size=len(keep),
                    )
                )
                if result.image_path:
                    q.image_path = result.image_path
                if tier is Tier.LIGHT and result.confidence is not None:
                    q.scored, q.confidence, q.threshold = True, result.confidence, threshold
                    if defers(result.confidence, threshold):
                        deferred.append(q)
                        continue
                finished.append(q)
        with self.cond:
            self.completed += len(keep)
            self.dropped += len(hopeless)
        if deferred:
            self._to_heavy(deferred)
        if finished:
            self._to_sink(finished)

    def _to_heavy(self, queries: list[pb.Query]) -> None:
        self.to_heavy.put(queries)

    def _to_sink(self, queries: list[pb.Query]) -> None:
        self.to_sink.put(queries)


class _WorkerService(pbg.WorkerServicer):
    def __init__(self, worker: WorkerRole) -> None:
        self.w = worker

    def Enqueue(self, request: pb.EnqueueRequest, context: grpc.ServicerContext) -> pb.EnqueueReply:
        return pb.EnqueueReply(queue_length=self.w.enqueue(TIER_FROM_PB[request.tier], request.query))

    def Configure(self, request: pb.WorkerConfig, context: grpc.ServicerContext) -> pb.Empty:
        self.w.configure(request)
        return pb.Empty()

    def Heartbeat(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.WorkerStatus:
        return self.w.status()
