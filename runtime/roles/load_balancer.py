"""Load balancer role: admits the client's queries and routes every query to a worker.

New queries go to the light tier (or straight to the heavy tier when the plan has no light
worker); deferred queries come back from light workers and go to the heavy tier. Routing is
join-the-shortest-queue over the routing table the controller pushes every heartbeat. A
query no worker can take is dropped with a reason, never lost.
"""

from __future__ import annotations

import threading
from pathlib import Path

import grpc

from runtime.outbox import Outbox
from runtime.policies.diffserve.router import Route, ShortestQueueRouter
from runtime.protos import servelab_pb2 as pb
from runtime.protos import servelab_pb2_grpc as pbg
from runtime.records import DropReason, Tier
from runtime.roles.base import Role, Servicer
from runtime.rpc import TIER_FROM_PB, TIER_TO_PB, channel
from runtime.spec import RunSpec

ATTEMPTS = 2  # workers tried per query before it is dropped as unreachable


class LoadBalancerRole(Role):
    role = "load_balancer"

    def __init__(self, spec: RunSpec, name: str, out_dir: Path) -> None:
        super().__init__(spec, name, out_dir)
        self.router = ShortestQueueRouter()
        self.lock = threading.Lock()
        self.submitted = self.forwarded = self.rejected = 0
        self.plan_id = -1
        self.ambiguous = 0
        self.kept_light = 0
        self.forwarded_ids: set[int] = set()  # Forward is retried by workers: route each query once
        self._stubs: dict[str, pbg.WorkerStub] = {}
        sink = pbg.SinkStub(self.channel_to(spec.only("sink").name))
        self.to_sink: Outbox[pb.Query] = Outbox(
            "sink", lambda qs: sink.Complete(pb.QueryBatch(queries=qs), timeout=self.rpc_timeout), self.log
        )

    def servicers(self) -> list[Servicer]:
        return [(pbg.add_LoadBalancerServicer_to_server, _LoadBalancerService(self))]

    def _stub(self, route: Route) -> pbg.WorkerStub:
        if route.name not in self._stubs:
            self._stubs[route.name] = pbg.WorkerStub(channel(route.address))
        return self._stubs[route.name]

    def route(self, tier: Tier, query: pb.Query) -> DropReason | None:
        """Enqueue `query` at a worker of `tier`; the drop reason if no worker took it."""
        tried: frozenset[str] = frozenset()
        for _ in range(ATTEMPTS):
            with self.lock:
                target = self.router.pick(tier, exclude=tried)
                if target is None:
                    return DropReason.NO_WORKER if not tried else DropReason.WORKER_UNREACHABLE
                self.router.on_sent(target.name)
            try:
                reply = self._stub(target).Enqueue(
                    pb.EnqueueRequest(tier=TIER_TO_PB[tier], query=query), timeout=self.rpc_timeout
                )
            except grpc.RpcError as err:
                if err.code() is not grpc.StatusCode.UNAVAILABLE:
                    # The worker may have taken it (e.g. a deadline passed after it arrived):
                    # trying another worker could run it twice. Its notice decides its fate.
                    with self.lock:
                        self.ambiguous += 1
                    self.log.warning("Enqueue outcome unknown <worker=%s code=%s>", target.name, err.code())
                    return None
                self.log.warning("Enqueue failed <worker=%s code=%s>", target.name, err.code())
                with self.lock:
                    self.router.on_failure(target.name)
                tried = tried | {target.name}
                continue
            with self.lock:
                self.router.on_reply(target.name, reply.queue_length)
            return None
        return DropReason.WORKER_UNREACHABLE

    def submit(self, query: pb.Query) -> pb.SubmitReply:
        query.admitted_at = self.clock.now()
        with self.lock:
            self.submitted += 1
            tier = self.router.entry_tier()
        reason = self.route(tier, query)
        if reason is None:
            return pb.SubmitReply(accepted=True)
        with self.lock:
            self.rejected += 1
        return pb.SubmitReply(accepted=False, reason=reason.value)

    def forward(self, tier: Tier, queries: list[pb.Query]) -> None:
        """Route deferred queries to the heavy tier. One that no heavy worker can take keeps the
        light result it already has (a served image beats a drop) and goes to the sink."""
        kept = []
        with self.lock:
            fresh = [q for q in queries if q.id not in self.forwarded_ids]
            self.forwarded_ids.update(q.id for q in fresh)
        for query in fresh:
            reason = self.route(tier, query)
            if reason is not None:
                query.note = f"kept light result: {reason.value} at the heavy tier"
                kept.append(query)
        with self.lock:
            self.forwarded += len(fresh)
            self.kept_light += len(kept)
        if kept:
            self.to_sink.put(kept)

    def finish(self) -> None:
        self.to_sink.close(timeout=2.0)
        if self.ambiguous:
            self.log.warning("%d enqueues had an unknown outcome", self.ambiguous)
        if self.kept_light:
            self.log.warning("%d deferred queries kept their light result (no heavy worker)", self.kept_light)

    def set_routing(self, table: pb.RoutingTable) -> None:
        routes = [Route(w.name, w.address, TIER_FROM_PB[w.tier], w.queue_length) for w in table.workers]
        with self.lock:
            self.router.update(routes)
            if table.plan_id != self.plan_id:
                self.plan_id = table.plan_id
                light = sum(r.tier is Tier.LIGHT for r in routes)
                heavy = sum(r.tier is Tier.HEAVY for r in routes)
                self.log.info("Routing <plan=%d light=%d heavy=%d>", table.plan_id, light, heavy)


class _LoadBalancerService(pbg.LoadBalancerServicer):
    def __init__(self, lb: LoadBalancerRole) -> None:
        self.lb = lb

    def Submit(self, request: pb.Query, context: grpc.ServicerContext) -> pb.SubmitReply:
        return self.lb.submit(request)

    def Forward(self, request: pb.ForwardRequest, context: grpc.ServicerContext) -> pb.Empty:
        self.lb.forward(TIER_FROM_PB[request.tier], list(request.queries))
        return pb.Empty()

    def SetRouting(self, request: pb.RoutingTable, context: grpc.ServicerContext) -> pb.Empty:
        self.lb.set_routing(request)
        return pb.Empty()

    def Stats(self, request: pb.Empty, context: grpc.ServicerContext) -> pb.LoadBalancerStats:
        with self.lb.lock:
            return pb.LoadBalancerStats(
                submitted=self.lb.submitted,
                forwarded=self.lb.forwarded,
                rejected=self.lb.rejected,
                now=self.lb.clock.now(),
            )
