"""The router's O(log n) pick chooses exactly the worker a scan of the tier chooses: the
shortest estimate, ties broken from a rotating start, on random sends, replies, failures and
routing updates."""

from __future__ import annotations

import random

import pytest

from runtime.policies.diffserve.router import Route, ShortestQueueRouter
from runtime.records import Tier


def scan(router: ShortestQueueRouter, tier: Tier, turn: int) -> str | None:
    """The rule written as the plain scan: shortest estimate, the first of equals from turn % n."""
    candidates = router.workers(tier)
    if not candidates:
        return None
    start = turn % len(candidates)
    order = [candidates[(start + k) % len(candidates)] for k in range(len(candidates))]
    return min(order, key=lambda r: r.estimate).name  # min keeps the first of equals


@pytest.mark.parametrize(("workers", "seed"), [(1, 0), (3, 1), (12, 2), (64, 3), (300, 4)])
def test_the_pick_is_the_scans(workers: int, seed: int) -> None:
    rng = random.Random(seed)
    router = ShortestQueueRouter()
    names = [f"w{i}" for i in range(workers)]

    def table() -> list[Route]:
        return [Route(n, rng.choice([Tier.LIGHT, Tier.HEAVY]), rng.randrange(4)) for n in names if rng.random() < 0.9]

    now = 0.0
    router.update(table(), now)
    picks = failures = 0
    for _ in range(5_000):
        now += rng.random() / 10
        op = rng.random()
        if op < 0.5:
            tier = rng.choice([Tier.LIGHT, Tier.HEAVY])
            expected = scan(router, tier, router._turn + 1)
            got = router.pick(tier)
            assert (got.name if got else None) == expected
            if got is not None:
                router.on_sent(got.name, now)
                picks += 1
        elif op < 0.8:
            router.on_reply(rng.choice(names), rng.randrange(6), now - rng.random())
        elif op < 0.83:
            router.on_failure(rng.choice(names))
            failures += 1
        elif op < 0.85:
            router.update(table(), now - rng.random())
        else:
            tier = rng.choice([Tier.LIGHT, Tier.HEAVY])
            router.pick(tier, exclude=frozenset(rng.sample(names, min(2, workers))))  # the retry path: a scan
    assert picks > 1_000 and failures > 50  # a failed worker looks FAILED_QUEUE busy until replies or updates
