"""Load balancer routing: join the shortest queue among the workers of a tier.

The router's view of a queue is the length the worker last reported (through the controller's
heartbeat or an enqueue reply) plus what the router sent it since; ties rotate so that equal
workers share the load evenly.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.records import Tier

FAILED_QUEUE = 1_000_000  # a worker that just failed looks this busy until the next update


@dataclass
class Route:
    name: str
    address: str
    tier: Tier
    queue: int = 0


class ShortestQueueRouter:
    def __init__(self) -> None:
        self._routes: dict[str, Route] = {}
        self._turn = 0

    def update(self, routes: list[Route]) -> None:
        """Replace the routing table (tiers and reported queue lengths) with `routes`."""
        self._routes = {r.name: r for r in routes}

    def workers(self, tier: Tier) -> list[Route]:
        return [r for r in self._routes.values() if r.tier is tier]

    def pick(self, tier: Tier, exclude: frozenset[str] = frozenset()) -> Route | None:
        """The worker of `tier` with the shortest queue, or None if the tier has none."""
        candidates = [r for r in self.workers(tier) if r.name not in exclude]
        if not candidates:
            return None
        self._turn += 1
        start = self._turn % len(candidates)
        rotated = candidates[start:] + candidates[:start]
        return min(rotated, key=lambda r: r.queue)

    def on_sent(self, name: str) -> None:
        if name in self._routes:
            self._routes[name].queue += 1

    def on_reply(self, name: str, queue: int) -> None:
        """The worker's own count right after it enqueued what we sent."""
        if name in self._routes:
            self._routes[name].queue = queue

    def on_failure(self, name: str) -> None:
        """The worker did not take a query: send it nothing more until the next routing update
        (the controller evicts it if it stays silent)."""
        if name in self._routes:
            self._routes[name].queue = FAILED_QUEUE

    def entry_tier(self) -> Tier:
        """Where a new query goes: the light tier, or the heavy one when no light worker exists."""
        return Tier.LIGHT if self.workers(Tier.LIGHT) else Tier.HEAVY
