"""SpotServe load balancer: the request pool the replicas pull batches from.

The client submits requests; an idle replica leader asks for its next batch (waiting briefly
when the pool is empty); after a reconfiguration the controller hands back the requests the
drained replicas stopped in, either pinned to the replica that received their KV cache (they
resume from their committed token) or back in the queue from token 0.
"""

from __future__ import annotations

import threading
from pathlib import Path

import grpc

from runtime.policies.spotserve.dispatch import RequestPool
from runtime.protos import servelab_pb2 as pb
from runtime.protos import servelab_pb2_grpc as pbg
from runtime.roles.base import Role, Servicer
from runtime.spec import RunSpec


class SpotLoadBalancerRole(Role):
    role = "load_balancer"

    def __init__(self, spec: RunSpec, name: str, out_dir: Path) -> None:
        super().__init__(spec, name, out_dir)
        self.cond = threading.Condition()
        self.pool = RequestPool()
        self.queries: dict[int, pb.Query] = {}
        self.submitted = 0

    def servicers(self) -> list[Servicer]:
        return [
            (pbg.add_LoadBalancerServicer_to_server, _Submit(self)),
            (pbg.add_RequestPoolServicer_to_server, _Pool(self)),
        ]

    def submit(self, query: pb.Query) -> pb.SubmitReply:
        query.admitted_at = self.clock.now()
        with self.cond:
            self.queries[query.id] = query
            self.pool.add(query.id)
            self.submitted += 1
            self.cond.notify_all()
        return pb.SubmitReply(accepted=True)

    def next_batch(self, request: pb.NextBatchRequest) -> pb.NextBatchReply:
        with self.cond:
            ids, step = self.pool.next_batch(request.replica, request.max_batch)
            if not ids and request.wait_s > 0:
                self.cond.wait(request.wait_s)
                ids, step = self.pool.next_batch(request.replica, request.max_batch)
            queries = [self.queries.pop(i) for i in ids]
        return pb.NextBatchReply(queries=queries, start_step=step)

    def requeue(self, request: pb.RequeueRequest) -> None:
        with self.cond:
            for q in request.queries:
                self.queries[q.id] = q
            ids = [q.id for q in request.queries]
            if request.pin_replica >= 0:
                self.pool.pin(request.pin_replica, ids, request.start_step)
            else:
                self.pool.restart(ids)
            self.cond.notify_all()
        self.log.info("Requeued <n=%d pinned_to=%d start_step=%d>", len(ids), request.pin_replica, request.start_step)

    def unpin(self, replica: int) -> None:
        with self.cond:
            lost = self.pool.unpin(replica)
            for i in lost:
                q = self.queries[i]
                q.tokens_done, q.restarts = 0, q.restarts + 1
            self.cond.notify_all()
        if lost:
            self.log.warning("Replica %d gone before resuming: %d requests restart", replica, len(lost))


class _Submit(pbg.LoadBalancerServicer):
    def __init__(self, lb: SpotLoadBalancerRole) -> None:
        self.lb = lb

    def Submit(self, request: pb.Query, context: grpc.ServicerContext) -> pb.SubmitReply:
        return self.lb.submit(request)

    def Stats(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.LoadBalancerStats:
        with self.lb.cond:
            return pb.LoadBalancerStats(submitted=self.lb.submitted, now=self.lb.clock.now())


class _Pool(pbg.RequestPoolServicer):
    def __init__(self, lb: SpotLoadBalancerRole) -> None:
        self.lb = lb

    def NextBatch(self, request: pb.NextBatchRequest, context: grpc.ServicerContext) -> pb.NextBatchReply:
        return self.lb.next_batch(request)

    def Requeue(self, request: pb.RequeueRequest, context: grpc.ServicerContext) -> pb.Empty:
        self.lb.requeue(request)
        return pb.Empty()

    def Unpin(self, request: pb.DrainRequest, context: grpc.ServicerContext) -> pb.Empty:
        self.lb.unpin(request.replica)
        return pb.Empty()

    def PoolStatus(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.PoolStats:
        with self.lb.cond:
            return pb.PoolStats(
                submitted=self.lb.submitted,
                waiting=len(self.lb.pool),
                pinned=self.lb.pool.pinned,
                now=self.lb.clock.now(),
            )
