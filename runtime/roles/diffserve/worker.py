"""DiffServe worker role: one GPU worker of the cascade, a gRPC shell over `WorkerCore`.

The core holds the queues, batch formation, the drop rule and deferral; this role adds the
lock, the batch thread that runs the executor (simulated: sleep the profiled latency; real: the
models), and the outboxes that deliver results: deferred queries to the load balancer, the rest
to the sink.
"""

from __future__ import annotations

import threading
from pathlib import Path

import grpc

from runtime.cores.diffserve.worker import TIER_PB, WorkerCore, WorkerSetting
from runtime.executors.base import Executor
from runtime.outbox import Outbox
from runtime.protos import servelab_pb2 as pb
from runtime.protos import servelab_pb2_grpc as pbg
from runtime.query import Query, from_pb, to_pb
from runtime.roles.base import Role, Servicer
from runtime.rpc import TIER_FROM_PB
from runtime.schema.diffserve import DiffServeConfig
from runtime.spec import RunSpec
from runtime.traces.confidence import for_cascade


def make_executor(role: Role[DiffServeConfig]) -> Executor:
    c = role.config.cascade
    confidence = for_cascade(c.deferral_curve.x, c.deferral_curve.y, c.num_prompts, role.config.seed, c.confidence_path)
    if role.config.execution.mode == "real":
        from runtime.executors.real import RealExecutor  # heavy imports only when asked for

        return RealExecutor(role.config, role.me, role.out_dir, confidence)
    from runtime.executors.simulated import SimulatedExecutor

    return SimulatedExecutor(c, confidence, role.clock.sleep)


class WorkerRole(Role[DiffServeConfig]):
    schema = DiffServeConfig
    role = "worker"

    def __init__(self, spec: RunSpec, name: str, out_dir: Path) -> None:
        super().__init__(spec, name, out_dir)
        self.executor = make_executor(self)
        self.core = WorkerCore(
            name, self.config.cascade.slo_s, self.config.run.drop_factor, self.executor.expected_latency_s
        )
        self.cond = threading.Condition()
        self.registered = False
        sink = pbg.SinkStub(self.channel_to(spec.only("sink").name))
        self.to_sink: Outbox[Query] = Outbox(
            "sink", lambda qs: sink.Complete(pb.QueryBatch(queries=map(to_pb, qs)), timeout=self.rpc_timeout), self.log
        )
        lb = pbg.LoadBalancerStub(self.channel_to(spec.only("load_balancer").name))
        self.to_heavy: Outbox[Query] = Outbox(
            "load_balancer",
            lambda qs: lb.Forward(pb.ForwardRequest(tier=pb.HEAVY, queries=map(to_pb, qs)), timeout=self.rpc_timeout),
            self.log,
        )
        self._service = self.work_thread(self._serve_batches, "batches")

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
            left = self.core.queued
            self.cond.notify_all()
        if left:
            self.log.info("Stopped with %d queries queued (the client counts them unfinished)", left)
        if self.core.repeats:
            self.log.info("%d repeated enqueues were taken once (the load balancer asked again)", self.core.repeats)
        self.to_heavy.close(timeout=2.0)
        self.to_sink.close(timeout=2.0)

    # ------------------------------------------------------------------ RPC bodies
    def enqueue(self, request: pb.EnqueueRequest) -> int:
        with self.cond:
            n = self.core.enqueue(TIER_FROM_PB[request.tier], from_pb(request.query), self.clock.now())
            self.cond.notify()
            return n

    def configure(self, cfg: pb.WorkerConfig) -> None:
        setting = WorkerSetting(cfg.plan_id, TIER_FROM_PB[cfg.tier], cfg.light_batch, cfg.heavy_batch, cfg.threshold)
        with self.cond:
            self.core.configure(setting)

    def status(self) -> pb.WorkerStatus:
        with self.cond:
            c = self.core
            r = c.report()
            return pb.WorkerStatus(
                name=self.name,
                tier=TIER_PB[c.tier],
                queue_length=r.queue_length,
                light_queue=r.light_queue,
                heavy_queue=r.heavy_queue,
                enqueued=c.enqueued,
                completed=c.completed,
                dropped=c.dropped,
                plan_id=c.plan_id,
                now=self.clock.now(),
                busy=c.running is not None,
                running=r.running,
            )

    # ------------------------------------------------------------------ the batch loop
    def _serve_batches(self) -> None:
        while not self.stopping.is_set():
            with self.cond:
                batch = self.core.take_batch(self.clock.now())
                if batch is None:
                    self.cond.wait(0.2)
                    continue
            if batch.settled:
                self.to_sink.put(batch.settled)
            if not batch.items:
                continue
            try:
                results = self.executor.execute(batch.tier, batch.batch_items())
            except Exception:  # one bad batch must not stop the worker
                self.log.exception("Batch failed")
                with self.cond:
                    failed = self.core.fail_batch(batch)
                self.to_sink.put(failed)
                continue
            with self.cond:
                out = self.core.finish_batch(batch, results, self.clock.now())
            if out.to_heavy:
                self.to_heavy.put(out.to_heavy)
            if out.to_sink:
                self.to_sink.put(out.to_sink)


class _WorkerService(pbg.WorkerServicer):
    def __init__(self, worker: WorkerRole) -> None:
        self.w = worker

    def Enqueue(self, request: pb.EnqueueRequest, context: grpc.ServicerContext) -> pb.EnqueueReply:
        return pb.EnqueueReply(queue_length=self.w.enqueue(request))

    def Configure(self, request: pb.WorkerConfig, context: grpc.ServicerContext) -> pb.Empty:
        self.w.configure(request)
        return pb.Empty()

    def Heartbeat(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.WorkerStatus:
        return self.w.status()
