"""DiffServe load balancer role: a gRPC shell over `LoadBalancerCore`.

It admits the client's queries and the light workers' deferred ones and sends each to the
worker the core picks, trying another one when a worker is unreachable. An enqueue whose
outcome is unknown (a deadline that passed after the worker may have taken the query) is not
retried elsewhere, so a query never runs twice; its notice decides its fate.
"""

from __future__ import annotations

import threading
from pathlib import Path

import grpc

from runtime.cores.diffserve.load_balancer import ATTEMPTS, SAME_WORKER_RETRIES, LoadBalancerCore, RoutingTable
from runtime.cores.diffserve.worker import TIER_PB
from runtime.outbox import Outbox
from runtime.protos import servelab_pb2 as pb
from runtime.protos import servelab_pb2_grpc as pbg
from runtime.query import Query, from_pb, to_pb
from runtime.records import DropReason, Tier
from runtime.roles.base import Role, Servicer
from runtime.rpc import TIER_FROM_PB
from runtime.schema.diffserve import DiffServeConfig
from runtime.spec import RunSpec


class LoadBalancerRole(Role[DiffServeConfig]):
    schema = DiffServeConfig
    role = "load_balancer"

    def __init__(self, spec: RunSpec, name: str, out_dir: Path) -> None:
        super().__init__(spec, name, out_dir)
        self.core = LoadBalancerCore()
        self.lock = threading.Lock()
        self._stubs = {w.name: pbg.WorkerStub(self.channel_to(w.name)) for w in spec.of("worker")}
        sink = pbg.SinkStub(self.channel_to(spec.only("sink").name))
        self.to_sink: Outbox[Query] = Outbox(
            "sink", lambda qs: sink.Complete(pb.QueryBatch(queries=map(to_pb, qs)), timeout=self.rpc_timeout), self.log
        )

    def servicers(self) -> list[Servicer]:
        return [(pbg.add_LoadBalancerServicer_to_server, _LoadBalancerService(self))]

    def route(self, tier: Tier, query: Query) -> DropReason | None:
        """Enqueue `query` at a worker of `tier`; the reason if no worker took it."""
        tried: frozenset[str] = frozenset()
        for _ in range(ATTEMPTS):
            with self.lock:
                target = self.core.pick(tier, tried)
                if target is None:
                    return self.core.unrouted(tried)
                sent_at = self.clock.now()
                self.core.send(target, sent_at)
            request = pb.EnqueueRequest(tier=TIER_PB[tier], query=to_pb(query))
            reply, err = None, None
            for _ in range(1 + SAME_WORKER_RETRIES):
                try:
                    reply = self._stubs[target].Enqueue(request, timeout=self.rpc_timeout)
                    break
                except grpc.RpcError as error:
                    err = error
                    if err.code() is grpc.StatusCode.UNAVAILABLE:
                        break  # it never got there: another worker
                    self.log.warning("Enqueue outcome unknown, asking again <worker=%s code=%s>", target, err.code())
            if reply is not None:
                with self.lock:
                    self.core.taken(target, reply.queue_length, sent_at)
                return None
            assert err is not None
            if err.code() is not grpc.StatusCode.UNAVAILABLE:
                with self.lock:
                    self.core.ambiguous += 1
                self.log.warning("Enqueue outcome still unknown <worker=%s code=%s>", target, err.code())
                return None
            self.log.warning("Enqueue failed <worker=%s code=%s>", target, err.code())
            with self.lock:
                self.core.failed(target)
            tried = tried | {target}
        return self.core.unrouted(tried)

    def submit(self, query: Query) -> pb.SubmitReply:
        with self.lock:
            tier = self.core.admit(query, self.clock.now())
        reason = self.route(tier, query)
        if reason is None:
            return pb.SubmitReply(accepted=True)
        with self.lock:
            self.core.settle_unrouted(query, reason)
        return pb.SubmitReply(accepted=False, reason=reason.value)

    def forward(self, queries: list[Query]) -> None:
        with self.lock:
            fresh = self.core.deferred(queries)
        kept = []
        for query in fresh:
            reason = self.route(Tier.HEAVY, query)
            if reason is not None:
                with self.lock:
                    settled = self.core.settle_unrouted(query, reason)
                if settled is not None:
                    kept.append(settled)
        if kept:
            self.to_sink.put(kept)

    def set_routing(self, table: pb.RoutingTable) -> None:
        routes = tuple((w.name, TIER_FROM_PB[w.tier], w.queue_length) for w in table.workers)
        with self.lock:
            changed = self.core.set_routing(RoutingTable(table.plan_id, routes, table.reported_at, table.heavy_share))
        if changed:
            light = sum(t is Tier.LIGHT for _, t, _ in routes)
            self.log.info("Routing <plan=%d light=%d heavy=%d>", table.plan_id, light, len(routes) - light)

    def finish(self) -> None:
        self.to_sink.close(timeout=2.0)
        if self.core.ambiguous:
            self.log.warning("%d enqueues had an unknown outcome", self.core.ambiguous)
        if self.core.kept_light:
            self.log.warning("%d deferred queries kept their light result (no heavy worker)", self.core.kept_light)


class _LoadBalancerService(pbg.LoadBalancerServicer):
    def __init__(self, lb: LoadBalancerRole) -> None:
        self.lb = lb

    def Submit(self, request: pb.Query, context: grpc.ServicerContext) -> pb.SubmitReply:
        return self.lb.submit(from_pb(request))

    def Forward(self, request: pb.ForwardRequest, context: grpc.ServicerContext) -> pb.Empty:
        self.lb.forward([from_pb(q) for q in request.queries])
        return pb.Empty()

    def SetRouting(self, request: pb.RoutingTable, context: grpc.ServicerContext) -> pb.Empty:
        self.lb.set_routing(request)
        return pb.Empty()

    def Stats(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.LoadBalancerStats:
        with self.lb.lock:
            c = self.lb.core
            return pb.LoadBalancerStats(
                submitted=c.submitted, forwarded=c.forwarded, rejected=c.rejected, now=self.lb.clock.now()
            )
