"""The load balancer's request pool (pure): who gets which requests next.

New requests and restarted ones (progress lost) wait in arrival order (by id, so a restarted
request goes back to its place). Interrupted requests whose KV cache moved to a new replica
are pinned to it and form its next batch, resuming from their committed token (the artifact's
priority to the largest start step). A replica asks for a batch when it is idle (a pull model:
the artifact's "send a batch only to a replica with an empty pool").
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable


class RequestPool:
    def __init__(self) -> None:
        self._waiting: list[int] = []  # sorted ids, start step 0
        self._pinned: dict[int, tuple[list[int], int]] = {}  # replica -> (ids, start step)

    def __len__(self) -> int:
        return len(self._waiting) + sum(len(ids) for ids, _ in self._pinned.values())

    @property
    def pinned(self) -> int:
        return sum(len(ids) for ids, _ in self._pinned.values())

    def add(self, request: int) -> None:
        bisect.insort(self._waiting, request)

    def restart(self, requests: Iterable[int]) -> None:
        """Back in the queue, in arrival order, from token 0."""
        for r in requests:
            bisect.insort(self._waiting, r)

    def pin(self, replica: int, requests: Iterable[int], start_step: int) -> None:
        ids = sorted(requests)
        if ids:
            self._pinned[replica] = (ids, start_step)

    def unpin(self, replica: int) -> list[int]:
        """The replica is gone before it took its pinned batch: those requests restart."""
        ids, _ = self._pinned.pop(replica, ([], 0))
        self.restart(ids)
        return ids

    def next_batch(self, replica: int, max_batch: int) -> tuple[list[int], int]:
        """(request ids, start step) of the replica's next batch; ([], 0) when nothing waits."""
        if replica in self._pinned:
            ids, step = self._pinned[replica]
            batch, rest = ids[:max_batch], ids[max_batch:]
            if rest:
                self._pinned[replica] = (rest, step)
            else:
                del self._pinned[replica]
            return batch, step
        batch, self._waiting = self._waiting[:max_batch], self._waiting[max_batch:]
        return batch, 0
