"""Load balancer routing: join the shortest queue among the workers of a tier.

The router's view of a worker's queue is the length last reported (through the controller's
heartbeat, taken at `reported_at`, or a worker's own enqueue reply) plus what the router sent
it after that moment: a new report is merged with the router's own count of what it sent since,
not taken as the whole truth, so queries sent between a heartbeat and the routing update that
carries it are not forgotten. Ties rotate so that equal workers share the load evenly.

A pick costs O(log n), not a scan of the tier: each tier keeps its workers' positions bucketed
by their estimate (`_Shortest`), so the shortest queue is the smallest bucket and the rotation
a bisection in it. It picks exactly the worker the scan did (tests/test_router.py compares the
two on random sequences; tests/test_records_identity.py the records of whole runs).
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from runtime.records import HEAVY, LIGHT, Tier

FAILED_QUEUE = 1_000_000  # a worker that just failed looks this busy until the next update


@dataclass(slots=True)
class Route:
    name: str
    tier: Tier
    queue: int = 0  # reported queue length
    sent: deque[float] = field(default_factory=deque)  # send times after the report

    @property
    def estimate(self) -> int:
        return self.queue + len(self.sent)


class _Shortest:
    """One tier's workers, by position, bucketed by their queue estimate: the first position at
    or after `start` (cyclically) among those with the smallest estimate, in O(log n)."""

    def __init__(self, estimates: list[int]) -> None:
        self.estimates = estimates
        self.buckets: dict[int, list[int]] = {}  # estimate -> positions, ascending
        for position, estimate in enumerate(estimates):
            self.buckets.setdefault(estimate, []).append(position)
        self.heap = list(self.buckets)  # estimates with a bucket, and stale ones (lazily dropped)
        heapq.heapify(self.heap)
        self.in_heap = set(self.heap)

    def set(self, position: int, estimate: int) -> None:
        old = self.estimates[position]
        if old == estimate:
            return
        left = self.buckets[old]
        del left[bisect_left(left, position)]
        if not left:
            del self.buckets[old]
        self.estimates[position] = estimate
        joined = self.buckets.get(estimate)
        if joined is not None:
            insort(joined, position)
            return
        self.buckets[estimate] = [position]
        if estimate not in self.in_heap:
            heapq.heappush(self.heap, estimate)
            self.in_heap.add(estimate)

    def first(self, start: int) -> int:
        heap = self.heap
        while heap[0] not in self.buckets:
            self.in_heap.discard(heapq.heappop(heap))
        bucket = self.buckets[heap[0]]
        i = bisect_left(bucket, start)
        return bucket[i] if i < len(bucket) else bucket[0]


class ShortestQueueRouter:
    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._by_tier: dict[Tier, list[Route]] = {}
        self._position: dict[str, int] = {}  # a worker's place in its tier's list
        self._shortest: dict[Tier, _Shortest] = {}
        self._turn = 0
        self._entry = Tier.HEAVY  # entry_tier(), kept with the table (it is asked once a query)

    def update(self, routes: Iterable[tuple[str, Tier, int]], reported_at: float) -> None:
        """A new routing table, (worker, tier, queue length) as reported at `reported_at`:
        workers keep the sends the report cannot have seen yet."""
        known, merged = self._routes, {}
        by_tier: dict[Tier, list[Route]] = {}
        position = self._position
        for name, tier, queue in routes:
            route = known.get(name)
            if route is not None and route.tier is tier:
                route.queue = queue
                sent = route.sent
                while sent and sent[0] <= reported_at:
                    sent.popleft()
            else:
                route = Route(name, tier, queue)
            merged[name] = route
            members = by_tier.get(tier)
            if members is None:
                members = by_tier[tier] = []
            position[name] = len(members)
            members.append(route)
        self._routes, self._by_tier = merged, by_tier
        self._shortest = {t: _Shortest([r.queue + len(r.sent) for r in rs]) for t, rs in by_tier.items()}
        self._entry = LIGHT if LIGHT in by_tier else HEAVY

    def _changed(self, route: Route) -> None:
        self._shortest[route.tier].set(self._position[route.name], route.queue + len(route.sent))

    def workers(self, tier: Tier) -> list[Route]:
        return list(self._by_tier.get(tier, ()))

    def pick(self, tier: Tier, exclude: frozenset[str] = frozenset()) -> str | None:
        """The worker of `tier` with the shortest queue, or None if the tier has none. Among
        equal queues the search starts one place further each time, so they share the load."""
        candidates = self._by_tier.get(tier, [])
        if not exclude and candidates:
            self._turn += 1
            return candidates[self._shortest[tier].first(self._turn % len(candidates))].name
        candidates = [r for r in candidates if r.name not in exclude]  # a retry: rare, a scan
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
        return best.name if best is not None else None

    def on_sent(self, name: str, now: float) -> None:
        route = self._routes.get(name)
        if route is not None:
            route.sent.append(now)
            self._changed(route)

    def on_reply(self, name: str, queue: int, now: float) -> None:
        """The worker's own count right after it enqueued what we sent at `now`."""
        route = self._routes.get(name)
        if route is not None:
            route.queue = queue
            sent = route.sent
            while sent and sent[0] <= now:
                sent.popleft()
            self._shortest[route.tier].set(self._position[name], queue + len(sent))  # _changed, inline

    def on_failure(self, name: str) -> None:
        """The worker did not take a query: send it nothing more until the next routing update
        (the controller evicts it if it stays silent)."""
        route = self._routes.get(name)
        if route is not None:
            route.queue = FAILED_QUEUE
            self._changed(route)

    def entry_tier(self) -> Tier:
        """Where a new query goes: the light tier, or the heavy one when no light worker exists."""
        return self._entry
