"""The DiffServe load balancer's core: admission, routing and the deferred-query rule.

New queries go to the light tier (or straight to the heavy tier when the plan has no light
worker, or for the plan's random heavy share: proteus); deferred queries come back from light workers and go to the heavy tier. Routing is
join-the-shortest-queue over the controller's routing table merged with the router's own
count of what it sent since (runtime/policies/diffserve/router.py). The shell tries up to
`ATTEMPTS` workers per query: `pick`, `send`, the RPC, then `taken` or `failed`; a query no worker takes is
dropped with a reason, or, if it is a deferred one, keeps its light result. A call whose outcome
is unknown (a deadline passed: the worker may have taken it) is repeated at the same worker up to
`SAME_WORKER_RETRIES` times: workers take a query once per tier, so a repeat never runs it twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.columns import IdSet
from runtime.policies.diffserve.proteus import route_heavy
from runtime.policies.diffserve.router import ShortestQueueRouter
from runtime.policies.diffserve.rules import keeps_light_result, kept_light_note
from runtime.query import Query
from runtime.records import HEAVY, LIGHT, DropReason, Tier

ATTEMPTS = 2  # workers tried per query before it is dropped as unreachable
SAME_WORKER_RETRIES = 2  # repeats of an enqueue whose outcome is unknown, at the same worker


@dataclass(slots=True)  # not frozen: made every tick, and a frozen one costs 3x (executors/base.py)
class RoutingTable:
    """The controller's view for the load balancer: the workers with a tier, their queues as
    reported at `reported_at` (trace seconds), under plan `plan_id`."""

    plan_id: int
    routes: tuple[tuple[str, Tier, int], ...]
    reported_at: float
    heavy_share: float = 0.0  # new queries sent straight to the heavy tier at random (proteus)


class LoadBalancerCore:
    def __init__(self) -> None:
        self.router = ShortestQueueRouter()
        self.submitted = self.forwarded = self.rejected = 0
        self.kept_light = 0
        self.ambiguous = 0  # sends whose outcome is unknown (the worker may have taken them)
        self.plan_id = -1
        self.reported_at = -float("inf")
        self.heavy_share = 0.0
        self._forwarded_ids = IdSet()  # workers retry Forward: route each query once

    # ------------------------------------------------------------------ admission
    def admit(self, query: Query, now: float) -> Tier:
        """A new query from the client: stamp it and say which tier it goes to."""
        query.admitted_at = now
        self.submitted += 1
        tier = self.router.entry_tier()
        if tier is LIGHT and route_heavy(query.id, self.heavy_share) and self.router.workers(HEAVY):
            return HEAVY
        return tier

    def deferred(self, queries: list[Query]) -> list[Query]:
        """The deferred queries not seen before (a retried Forward is routed once)."""
        fresh = []
        for q in queries:
            if self._forwarded_ids.add(q.id):
                fresh.append(q)
        self.forwarded += len(fresh)
        return fresh

    # ------------------------------------------------------------------ routing
    def pick(self, tier: Tier, tried: frozenset[str] = frozenset()) -> str | None:
        return self.router.pick(tier, tried)

    def send(self, worker: str, now: float) -> None:
        self.router.on_sent(worker, now)

    def taken(self, worker: str, queue_length: int, sent_at: float) -> None:
        """The worker took what was sent at `sent_at`; its queue is `queue_length` now."""
        self.router.on_reply(worker, queue_length, sent_at)

    def delivered(self, worker: str, queue_length: int, now: float) -> None:
        """`send` then `taken` at the same `now` (the engine's enqueue, which takes no time): the
        reply forgets every send up to `now`, this one included, so the send needs no record
        and the router's buckets move once, not twice."""
        self.router.on_reply(worker, queue_length, now)

    def failed(self, worker: str) -> None:
        """The worker could not be reached: it gets nothing until the next routing table."""
        self.router.on_failure(worker)

    @staticmethod
    def unrouted(tried: frozenset[str]) -> DropReason:
        """Why no worker took a query: none of its tier existed, or every one tried failed."""
        return DropReason.NO_WORKER if not tried else DropReason.WORKER_UNREACHABLE

    def settle_unrouted(self, query: Query, reason: DropReason) -> Query | None:
        """A deferred query the heavy tier cannot take keeps its light result: it goes to the
        sink as is (returned). A new query is refused (None: the client is told)."""
        if keeps_light_result(query.scored):
            query.note = kept_light_note(reason.value)
            self.kept_light += 1
            return query
        self.rejected += 1
        return None

    def set_routing(self, table: RoutingTable) -> bool:
        """Take the controller's table (unless it is older than the one in use: tables are sent
        without waiting, so two may cross); True when it carries a new plan."""
        if table.reported_at < self.reported_at:
            return False
        self.reported_at = table.reported_at
        self.router.update(table.routes, table.reported_at)
        self.heavy_share = table.heavy_share
        changed = table.plan_id != self.plan_id
        self.plan_id = table.plan_id
        return changed
