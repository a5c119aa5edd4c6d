"""SpotServe load balancer: the request pool, a gRPC shell over `RequestPoolCore`.

The client submits requests; an idle replica's leader pulls its next batch, leased to it until
it reports the batch finished (with its requests, which this role hands to the sink as it takes
the lease off the pool) or interrupted (`Report`); the controller moves interrupted
batches (`Requeue`, idempotent by request id) and takes back what replicas that are gone still
hold (`Gone`). At its end the role writes `pool.json`: what it still holds, which is exactly
the unfinished requests.
"""

from __future__ import annotations

import threading
from pathlib import Path

import grpc

from runtime import rolefiles
from runtime.cores.spotserve.pool import Lease
from runtime.cores.spotserve.replica import stamp_leased
from runtime.outbox import Outbox
from runtime.policies.spotserve.registry import request_pool
from runtime.policies.spotserve.timing import BatchTiming
from runtime.protos import servelab_pb2 as pb
from runtime.protos import servelab_pb2_grpc as pbg
from runtime.query import Query, from_pb, to_pb
from runtime.roles.base import Role, Servicer
from runtime.schema.spotserve import SpotServeConfig
from runtime.spec import RunSpec


class SpotLoadBalancerRole(Role[SpotServeConfig]):
    schema = SpotServeConfig
    role = "load_balancer"

    def __init__(self, spec: RunSpec, name: str, out_dir: Path) -> None:
        super().__init__(spec, name, out_dir)
        self.cond = threading.Condition()
        self.core = request_pool(self.config.approach.name, self.config.spot, self.config.approach.plugin)
        self.pulling = 0  # replicas waiting in NextBatch
        self.queries: dict[int, Query] = {}
        sink = pbg.SinkStub(self.channel_to(spec.only("sink").name))
        self.to_sink: Outbox[Query] = Outbox(
            "sink", lambda qs: sink.Complete(pb.QueryBatch(queries=map(to_pb, qs)), timeout=self.rpc_timeout), self.log
        )

    def servicers(self) -> list[Servicer]:
        return [
            (pbg.add_LoadBalancerServicer_to_server, _Submit(self)),
            (pbg.add_RequestPoolServicer_to_server, _Pool(self)),
        ]

    def submit(self, query: Query) -> pb.SubmitReply:
        with self.cond:
            if self.core.add(query.id):
                query.admitted_at = self.clock.now()
                self.queries[query.id] = query
                self.cond.notify_all()
                if not self.pulling:  # no idle replica to take it: dispatch ahead (old batching)
                    self.core.dispatch_ahead()
        return pb.SubmitReply(accepted=True)

    def next_batch(self, request: pb.NextBatchRequest) -> pb.NextBatchReply:
        t = request.timing
        timing = BatchTiming(tuple(t.prefill_s), tuple(t.step_s), tuple(t.embed_s))
        with self.cond:
            lease = self._lease(request, timing)
            if lease is None and request.wait_s > 0:
                self.pulling += 1
                try:
                    self.cond.wait(request.wait_s)
                finally:
                    self.pulling -= 1
                lease = self._lease(request, timing)
            if lease is None:
                return pb.NextBatchReply(lease=-1)
            queries = [self.queries[r] for r in lease.requests]
            stamp_leased(queries, lease, self.core.restarts)
            return pb.NextBatchReply(
                queries=map(to_pb, queries),
                start_step=lease.start_step,
                lease=lease.id,
                recompute=lease.recompute,
                started_at=lease.run.started_at,
            )

    def _lease(self, request: pb.NextBatchRequest, timing: BatchTiming) -> Lease | None:
        r = request
        return self.core.next_batch(r.replica, r.max_batch, self.clock.now(), timing, r.output_len, r.received)

    def report(self, report: pb.LeaseReport) -> None:
        with self.cond:
            if report.finished:
                done = self.core.finish(report.lease)  # () for a lease it no longer has (a repeat)
                for r in done:
                    self.queries.pop(r, None)
                if done:  # off the pool and on to the sink in one step: never one without the other
                    self.to_sink.put([from_pb(q) for q in report.queries])
            else:
                self.core.interrupt(report.lease, report.tokens)
            if not self.pulling:
                self.core.dispatch_ahead()

    def requeue(self, request: pb.RequeueRequest) -> None:
        pinned = [(p.replica, tuple(p.requests), p.start_step) for p in request.pinned]
        with self.cond:
            moved = self.core.requeue(pinned, list(request.restarted))
            self.cond.notify_all()
        self.log.info("Requeued <moved=%d pinned=%d restarted=%d>", moved, len(pinned), len(request.restarted))

    def gone(self, request: pb.GoneRequest) -> None:
        with self.cond:
            back = [r for replica in request.replicas for r in self.core.replica_gone(replica, request.at)]
            self.cond.notify_all()
        if back:
            self.log.warning(
                "Replicas %s gone holding %d requests: back in the pool", list(request.replicas), len(back)
            )

    def finish(self) -> None:
        self.to_sink.close(timeout=2.0)  # the sink stops after the load balancer (STOP_ORDER)
        with self.cond:
            rolefiles.write_pool(self.core, self.out_dir)
            counts = self.core.counts()
        self.log.info("Wrote the pool's state <%s>", " ".join(f"{k}={v}" for k, v in counts.items()))


class _Submit(pbg.LoadBalancerServicer):
    def __init__(self, lb: SpotLoadBalancerRole) -> None:
        self.lb = lb

    def Submit(self, request: pb.Query, context: grpc.ServicerContext) -> pb.SubmitReply:
        return self.lb.submit(from_pb(request))

    def Stats(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.LoadBalancerStats:
        with self.lb.cond:
            return pb.LoadBalancerStats(submitted=self.lb.core.submitted, now=self.lb.clock.now())


class _Pool(pbg.RequestPoolServicer):
    def __init__(self, lb: SpotLoadBalancerRole) -> None:
        self.lb = lb

    def NextBatch(self, request: pb.NextBatchRequest, context: grpc.ServicerContext) -> pb.NextBatchReply:
        return self.lb.next_batch(request)

    def Report(self, request: pb.LeaseReport, context: grpc.ServicerContext) -> pb.Empty:
        self.lb.report(request)
        return pb.Empty()

    def Requeue(self, request: pb.RequeueRequest, context: grpc.ServicerContext) -> pb.Empty:
        self.lb.requeue(request)
        return pb.Empty()

    def Gone(self, request: pb.GoneRequest, context: grpc.ServicerContext) -> pb.Empty:
        self.lb.gone(request)
        return pb.Empty()

    def PoolStatus(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.PoolStats:
        with self.lb.cond:
            c = self.lb.core.counts()
            return pb.PoolStats(
                submitted=c["submitted"],
                waiting=c["waiting"] + c["ahead"],
                pinned=c["pinned"],
                now=self.lb.clock.now(),
                leased=c["leased"],
                held=c["held"],
                resumable=c["resumable"],
            )
