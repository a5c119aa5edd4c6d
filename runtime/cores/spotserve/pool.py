"""The SpotServe request pool's core: who gets which requests next, and where every request is.

Every request the client submitted is in exactly one place until it finishes:

| place      | meaning                                                                        |
| ---------- | ------------------------------------------------------------------------------ |
| waiting    | new or restarted (token 0), served in arrival order (by id)                    |
| resumable  | a batch that lost its replica: it keeps its committed tokens and recomputes    |
|            | its KV cache with a prefill, served before new requests (largest step first)   |
| pinned     | an interrupted batch whose KV cache moved to a new replica: only that replica  |
|            | takes it, from its committed token                                             |
| leased     | a batch a replica is running; it stays leased until the replica reports it     |
|            | finished or interrupted, or the replica is gone                                |
| held       | a batch a drain interrupted: it waits for the controller's decision (pin it to |
|            | the replica that got its KV cache, or restart it)                              |
| ahead      | with the artifact's old batching: requests dispatched ahead to a busy replica, |
|            | bound to it until it takes them into a batch or is gone                        |

A replica pulls a batch when it is idle (`next_batch`, the artifact's "a batch only to a
replica with an empty pool"). With old batching (`ahead` > 0, spot.mechanics.old_batching;
api_server.py `select_replica`), the requests left waiting once every idle replica has pulled
are dispatched ahead (`dispatch_ahead`) to the busy replica holding the fewest, up to `ahead`
batches per replica (running and ahead together), a power of two at a time. A lease whose replica is gone returns to the pool with the
tokens its run had committed by then (`replica_gone`); requeue is idempotent by request id
(only a held request moves), so a repeated or late requeue changes nothing. At the end of a
run, the requests still in the pool are exactly the unfinished ones (`held_ids`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from runtime.policies.spotserve.mechanics import power_of_two_at_most
from runtime.policies.spotserve.timing import BatchTiming, MeasuredRun, Run


@dataclass(frozen=True)
class Lease:
    """A batch leased to a replica (the replica's run of it, for the progress it commits)."""

    id: int
    replica: int
    requests: tuple[int, ...]
    start_step: int
    recompute: bool
    run: Run | MeasuredRun


@dataclass(frozen=True)
class Held:
    """What a drain interrupted: the requests of a replica's batch and the tokens they committed."""

    requests: tuple[int, ...]
    tokens: int


@dataclass
class RequestPoolCore:
    waiting: list[int] = field(default_factory=list)  # sorted ids, token 0
    resumable: list[tuple[tuple[int, ...], int]] = field(default_factory=list)  # (ids, committed tokens)
    pinned: dict[int, tuple[tuple[int, ...], int]] = field(default_factory=dict)  # replica -> (ids, step)
    leases: dict[int, Lease] = field(default_factory=dict)
    held: dict[int, Held] = field(default_factory=dict)  # replica -> its interrupted batch
    tokens: dict[int, int] = field(default_factory=dict)  # request -> committed tokens
    restarts: dict[int, int] = field(default_factory=dict)  # request -> times it went back to token 0
    finished: set[int] = field(default_factory=set)
    submitted: int = 0
    power_of_two: bool = False  # batches of 1, 2, 4, ... requests (spot.mechanics.power_of_two_batches)
    ahead: int = 0  # old batching: batches a busy replica may hold (0: none dispatched ahead)
    local: dict[int, list[int]] = field(default_factory=dict)  # replica -> requests dispatched ahead to it
    batch_of: dict[int, int] = field(default_factory=dict)  # replica -> its max batch (from its pulls)
    _next_lease: int = 0

    # ------------------------------------------------------------------ arrivals
    def add(self, request: int) -> bool:
        """A new request; False for one the pool has seen (a retried submit)."""
        if request in self.tokens or request in self.finished:
            return False
        self.tokens[request] = 0
        self.submitted += 1
        bisect.insort(self.waiting, request)
        return True

    # ------------------------------------------------------------------ leases
    def next_batch(
        self, replica: int, max_batch: int, now: float, timing: BatchTiming, output_len: int, received: int = -1
    ) -> Lease | None:
        """The replica's next batch, leased to it: its pinned batch, else a resumable one, else
        the first waiting requests; None when nothing is there for it. `received` is the last
        lease the replica got: a later one of its leases is one whose answer was lost on the
        way, and goes back first (an earlier one is finished and its report is on its way)."""
        for orphan in self.leases_of(replica):
            if orphan.id > received:
                self._unlease(orphan)
        recompute = False
        self.batch_of[replica] = max_batch
        if self.power_of_two:
            max_batch = power_of_two_at_most(min(max_batch, self._available(replica)))
        if replica in self.pinned:
            ids, step = self.pinned[replica]
            batch, rest = ids[:max_batch], ids[max_batch:]
            if rest:
                self.pinned[replica] = (rest, step)
            else:
                del self.pinned[replica]
        elif self.resumable:
            self.resumable.sort(key=lambda b: (-b[1], b[0]))
            ids, step = self.resumable.pop(0)
            batch, rest = ids[:max_batch], ids[max_batch:]
            if rest:
                self.resumable.append((rest, step))
            recompute = step > 0
        elif self.local.get(replica):
            ahead = self.local[replica]
            batch, self.local[replica] = tuple(ahead[:max_batch]), ahead[max_batch:]
            step = 0
        elif self.waiting:
            batch, self.waiting = tuple(self.waiting[:max_batch]), self.waiting[max_batch:]
            step = 0
        else:
            return None
        run = Run(now, len(batch), step, output_len, timing, recompute)
        lease = Lease(self._next_lease, replica, tuple(batch), step, recompute, run)
        self._next_lease += 1
        self.leases[lease.id] = lease
        return lease

    def _available(self, replica: int) -> int:
        """How many requests `next_batch` could give this replica (its pinned batch, else the
        first resumable one, else the waiting requests)."""
        if replica in self.pinned:
            return len(self.pinned[replica][0])
        if self.resumable:
            return len(min(self.resumable, key=lambda b: (-b[1], b[0]))[0])
        return len(self.local.get(replica) or self.waiting)

    def dispatch_ahead(self) -> int:
        """Old batching: dispatch the waiting requests ahead to busy replicas (module docstring);
        returns how many moved. Call it once the idle replicas have pulled."""
        moved = 0
        while self.ahead and self.waiting:
            held: dict[int, int] = {}
            for lease in self.leases.values():
                held[lease.replica] = held.get(lease.replica, 0) + len(lease.requests)
            room = [r for r in sorted(held) if held[r] + len(self.local.get(r, ())) < self.ahead * self.batch_of[r]]
            if not room:
                break
            replica = min(room, key=lambda r: held[r] + len(self.local.get(r, ())))
            n = power_of_two_at_most(min(len(self.waiting), self.batch_of[replica]))
            self.local.setdefault(replica, []).extend(self.waiting[:n])
            self.waiting = self.waiting[n:]
            moved += n
        return moved

    def finish(self, lease_id: int) -> tuple[int, ...]:
        """The replica finished the batch: its requests leave the pool (none if unknown)."""
        lease = self.leases.pop(lease_id, None)
        if lease is None:
            return ()
        for r in lease.requests:
            self.finished.add(r)
            self.tokens[r] = lease.run.output_len
        return lease.requests

    def interrupt(self, lease_id: int, tokens: int) -> Held | None:
        """A drain stopped the batch after `tokens` committed tokens (0: its progress is lost)."""
        lease = self.leases.pop(lease_id, None)
        if lease is None:
            return None
        held = Held(lease.requests, tokens)
        self.held[lease.replica] = held
        for r in lease.requests:
            self.tokens[r] = tokens
        return held

    def _unlease(self, lease: Lease) -> None:
        del self.leases[lease.id]
        if lease.recompute:
            self.resumable.append((lease.requests, lease.start_step))
        elif lease.start_step > 0:
            ids, _ = self.pinned.get(lease.replica, ((), lease.start_step))
            self.pinned[lease.replica] = (tuple(sorted(lease.requests + ids)), lease.start_step)
        else:
            for r in lease.requests:
                bisect.insort(self.waiting, r)

    def leases_of(self, replica: int) -> list[Lease]:
        return [lease for lease in self.leases.values() if lease.replica == replica]

    # ------------------------------------------------------------------ the controller's moves
    def requeue(self, pinned: Iterable[tuple[int, Sequence[int], int]], restarted: Iterable[int]) -> int:
        """Held requests move: pinned to the replica their KV cache moved to, or back to token 0.
        Only held requests move (idempotent by id); returns how many moved."""
        holding = {r: replica for replica, h in self.held.items() for r in h.requests}
        moved: list[int] = []
        for replica, batch, step in pinned:
            ids = tuple(sorted(r for r in batch if r in holding and r not in moved))
            if ids:
                self.pinned[replica] = (ids, step)  # one batch resumes on one new replica
                moved += ids
        for r in restarted:
            if r in holding and r not in moved:
                self.tokens[r] = 0
                self.restarts[r] = self.restarts.get(r, 0) + 1
                bisect.insort(self.waiting, r)
                moved.append(r)
        for replica in {holding[r] for r in moved}:
            rest = tuple(r for r in self.held[replica].requests if r not in moved)
            if rest:
                self.held[replica] = Held(rest, self.held[replica].tokens)
            else:
                del self.held[replica]
        return len(moved)

    def replica_gone(self, replica: int, at: float) -> list[int]:
        """The replica is gone: its leases come back with the tokens their runs had committed
        by `at` (their KV cache went with it: they recompute it), and so do its pinned and
        held batches. Returns the requests that came back."""
        back: list[int] = []
        for lease in self.leases_of(replica):
            del self.leases[lease.id]
            tokens = lease.run.committed_at(at)
            self._resume(lease.requests, tokens)
            back += lease.requests
        pinned = self.pinned.pop(replica, None)
        if pinned is not None:  # the KV cache that moved there is lost with it
            self._resume(pinned[0], pinned[1])
            back += pinned[0]
        held = self.held.pop(replica, None)
        if held is not None:  # interrupted, and the controller never placed it
            self._resume(held.requests, held.tokens)
            back += held.requests
        for r in self.local.pop(replica, []):  # dispatched ahead, never started: back in arrival order
            bisect.insort(self.waiting, r)
            back.append(r)
        return back

    def _resume(self, ids: Sequence[int], tokens: int) -> None:
        for r in ids:
            self.tokens[r] = tokens
        if tokens > 0:
            self.resumable.append((tuple(ids), tokens))
        else:
            for r in ids:
                bisect.insort(self.waiting, r)

    # ------------------------------------------------------------------ what it holds
    def held_ids(self) -> set[int]:
        """Every request in the pool (waiting, resumable, pinned, leased or held)."""
        ids = set(self.waiting)
        ids.update(r for batch, _ in self.resumable for r in batch)
        ids.update(r for batch, _ in self.pinned.values() for r in batch)
        ids.update(r for lease in self.leases.values() for r in lease.requests)
        ids.update(r for h in self.held.values() for r in h.requests)
        ids.update(r for ahead in self.local.values() for r in ahead)
        return ids

    def counts(self) -> dict[str, int]:
        return {
            "waiting": len(self.waiting),
            "resumable": sum(len(b) for b, _ in self.resumable),
            "pinned": sum(len(b) for b, _ in self.pinned.values()),
            "leased": sum(len(lease.requests) for lease in self.leases.values()),
            "held": sum(len(h.requests) for h in self.held.values()),
            "ahead": sum(len(ahead) for ahead in self.local.values()),
            "finished": len(self.finished),
            "submitted": self.submitted,
        }
