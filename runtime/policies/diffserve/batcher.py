"""Worker batching: work-conserving, one tier per batch, oldest head first.

A worker keeps one FIFO per tier (after a tier switch it still finishes the queries it had
accepted for the old tier, with the model they were sent to). The next batch takes up to the
tier's max batch from the tier whose first query has waited longest; it never waits for a
batch to fill.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol, TypeVar

from runtime.records import Tier


class Queued(Protocol):
    enqueued_at: float


Q = TypeVar("Q", bound=Queued)


def next_batch(queues: dict[Tier, deque[Q]], max_batch: dict[Tier, int]) -> tuple[Tier, list[Q]] | None:
    """Pop the next batch from `queues`; None when every queue is empty."""
    best: deque[Q] | None = None
    tier = None
    for t, q in queues.items():  # the first of equal heads wins
        if q and (best is None or q[0].enqueued_at < best[0].enqueued_at):
            best, tier = q, t
    if best is None or tier is None:
        return None
    n = max(1, max_batch[tier])
    if n >= len(best):  # the whole queue (the common case under light load)
        taken = list(best)
        best.clear()
        return tier, taken
    return tier, [best.popleft() for _ in range(n)]
