"""The router's O(log n) pick chooses exactly the worker a scan of the tier chooses: the
shortest estimate, ties broken from a rotating start, on random sends, replies, failures and
routing updates."""

from __future__ import annotations

import random

import pytest

from runtime.cores.diffserve.load_balancer import LoadBalancerCore
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

    def table() -> list[tuple[str, Tier, int]]:
        return [(n, rng.choice([Tier.LIGHT, Tier.HEAVY]), rng.randrange(4)) for n in names if rng.random() < 0.9]

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
            assert got == expected
            if got is not None:
                router.on_sent(got, now)
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


def test_a_delivery_is_a_send_then_its_reply() -> None:
    """The engine's one-step enqueue (`LoadBalancerCore.delivered`) leaves the router as the
    wall roles' send and reply at the same instant do: the same estimates, and so the same
    picks after."""
    rng = random.Random(11)
    names = [f"w{i}" for i in range(20)]
    routes = [Route(n, Tier.LIGHT if i % 3 else Tier.HEAVY, rng.randrange(4)) for i, n in enumerate(names)]
    wall, virtual = LoadBalancerCore(), LoadBalancerCore()
    for lb in (wall, virtual):
        lb.router.update([(x.name, x.tier, x.queue) for x in routes], 0.0)
    now = 0.0
    for step in range(5_000):
        now += rng.random() / 10
        tier = rng.choice([Tier.LIGHT, Tier.HEAVY])
        a, b = wall.pick(tier), virtual.pick(tier)
        assert a is not None and a == b
        if rng.random() < 0.2:  # an earlier send still unanswered (a wall send in flight)
            wall.send(a, now - 0.05)
            virtual.send(b, now - 0.05)
        queue = rng.randrange(8)
        wall.send(a, now)
        wall.taken(a, queue, now)
        virtual.delivered(b, queue, now)
        if step % 500 == 0:
            table = [Route(n, x.tier, rng.randrange(4)) for n, x in zip(names, routes, strict=True)]
            for lb in (wall, virtual):
                lb.router.update([(x.name, x.tier, x.queue) for x in table], now - 0.1)
        for t in (Tier.LIGHT, Tier.HEAVY):
            assert [w.estimate for w in wall.router.workers(t)] == [w.estimate for w in virtual.router.workers(t)]
