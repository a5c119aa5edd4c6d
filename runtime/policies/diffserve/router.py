"""Load balancer routing: join the shortest queue among the workers of a tier.

The router's view of a worker's queue is the length last reported (through the controller's
heartbeat, taken at `reported_at`, or a worker's own enqueue reply) plus what the router sent
it after that moment: a new report is merged with the router's own count of what it sent since,
not taken as the whole truth, so queries sent between a heartbeat and the routing update that
carries it are not forgotten. Ties rotate so that equal workers share the load evenly.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from runtime.records import Tier

FAILED_QUEUE = 1_000_000  # a worker that just failed looks this busy until the next update


@dataclass
class Route:
    name: str
    tier: Tier
    queue: int = 0  # reported queue length
    sent: deque[float] = field(default_factory=deque)  # send times after the report

    @property
    def estimate(self) -> int:
        return self.queue + len(self.sent)


class ShortestQueueRouter:
    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._by_tier: dict[Tier, list[Route]] = {}
        self._turn = 0

    def update(self, routes: list[Route], reported_at: float) -> None:
        """A new routing table (tiers and queue lengths reported at `reported_at`): workers keep
        the sends the report cannot have seen yet."""
        merged = {}
        for r in routes:
            old = self._routes.get(r.name)
            sent: deque[float] = deque()
            if old is not None and old.tier is r.tier:
                sent = old.sent
                while sent and sent[0] <= reported_at:
                    sent.popleft()
            merged[r.name] = Route(r.name, r.tier, r.queue, sent)
        self._routes = merged
        self._by_tier = {}
        for r in merged.values():
            self._by_tier.setdefault(r.tier, []).append(r)

    def workers(self, tier: Tier) -> list[Route]:
        return list(self._by_tier.get(tier, ()))

    def pick(self, tier: Tier, exclude: frozenset[str] = frozenset()) -> Route | None:
        """The worker of `tier` with the shortest queue, or None if the tier has none. Among
        equal queues the search starts one place further each time, so they share the load."""
        candidates = self._by_tier.get(tier, [])
        if exclude:
            candidates = [r for r in candidates if r.name not in exclude]
        n = len(candidates)
        if not n:
            return None
        self._turn += 1
        start = self._turn % n
        best, best_estimate = None, 0
        for k in range(n):
            r = candidates[(start + k) % n]
            estimate = r.queue + len(r.sent)
            if best is None or estimate < best_estimate:
                best, best_estimate = r, estimate
        return best

    def on_sent(self, name: str, now: float) -> None:
        if name in self._routes:
            self._routes[name].sent.append(now)

    def on_reply(self, name: str, queue: int, now: float) -> None:
        """The worker's own count right after it enqueued what we sent at `now`."""
        route = self._routes.get(name)
        if route is not None:
            route.queue = queue
            while route.sent and route.sent[0] <= now:
                route.sent.popleft()

    def on_failure(self, name: str) -> None:
        """The worker did not take a query: send it nothing more until the next routing update
        (the controller evicts it if it stays silent)."""
        if name in self._routes:
            self._routes[name].queue = FAILED_QUEUE

    def entry_tier(self) -> Tier:
        """Where a new query goes: the light tier, or the heavy one when no light worker exists."""
        return Tier.LIGHT if self._by_tier.get(Tier.LIGHT) else Tier.HEAVY
