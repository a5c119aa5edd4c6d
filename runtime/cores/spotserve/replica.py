"""A SpotServe replica's core, run by its leader: when it may take a batch, how its batch is
timed, which tokens it has committed, and the drain rule.

A replica is ready at `ready_at` (after its migration or reload); then, whenever it is idle,
it pulls a batch from the pool (`wants_batch`, `start`). Its batch runs a prefill and one
decode step after another, committing a token each (runtime/policies/spotserve/engine.py).
Told to drain by a deadline, it still serves until then: it starts a batch only if the whole
batch fits, or (keeping progress) if the prefill and at least one step do; a batch that
crosses the deadline is interrupted there with the tokens it committed (none when the drain
keeps no progress). `advance(now)` says what happened by `now`; `wake_at()` when to look next.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from runtime.cores.spotserve.pool import Lease
from runtime.policies.spotserve.engine import BatchTiming, worth_starting


@dataclass(frozen=True)
class Assignment:
    """What the controller tells a replica's leader."""

    replica: int
    batch: int  # its max batch
    timing: BatchTiming
    output_len: int
    ready_at: float
    config: str = ""


@dataclass(frozen=True)
class Finished:
    lease: Lease
    started_at: float
    finished_at: float


@dataclass(frozen=True)
class Interrupted:
    lease: Lease
    started_at: float
    stopped_at: float
    tokens: int  # committed tokens it keeps (0: its progress is lost)


@dataclass(frozen=True)
class Stopped:
    """The replica drained with no batch running: it takes nothing more."""

    at: float


Outcome = Finished | Interrupted | Stopped


class ReplicaCore:
    def __init__(self, assignment: Assignment) -> None:
        self.a = assignment
        self.deadline: float | None = None
        self.keep_progress = False
        self.lease: Lease | None = None
        self.stopped = False

    @property
    def id(self) -> int:
        return self.a.replica

    def drain(self, deadline: float, keep_progress: bool) -> None:
        """Stop by `deadline` (a later drain may move it; an infinite one cancels it)."""
        self.deadline = None if math.isinf(deadline) else deadline
        self.keep_progress = keep_progress

    def wants_batch(self, now: float) -> bool:
        """Idle, ready, and (draining) a new full batch would gain something before the deadline."""
        if self.stopped or self.lease is not None or now < self.a.ready_at:
            return False
        if self.deadline is None:
            return True
        return worth_starting(self.a.timing, self.a.batch, 0, self.a.output_len, now, self.deadline, self.keep_progress)

    def start(self, lease: Lease) -> None:
        self.lease = lease

    def wake_at(self, now: float) -> float | None:
        """The next time after `now` that something may happen by itself: the replica is
        ready, its batch ends, or its drain deadline comes (an idle replica otherwise waits
        for requests)."""
        if self.stopped:
            return None
        times = [self.lease.run.finish_at] if self.lease is not None else [self.a.ready_at]
        if self.deadline is not None:
            times.append(self.deadline)
        later = [t for t in times if t > now]
        return min(later) if later else None

    def advance(self, now: float) -> Outcome | None:
        """What happened by `now`: the batch finished, a drain interrupted it, or the drained
        replica stopped idle; None when nothing did."""
        lease = self.lease
        if lease is not None:
            run = lease.run
            cut = self.deadline is not None and self.deadline < run.finish_at
            if cut and self.deadline is not None and now >= self.deadline:
                self.lease, self.stopped = None, True
                tokens = run.committed_at(self.deadline) if self.keep_progress else 0
                return Interrupted(lease, run.started_at, self.deadline, tokens)
            if not cut and now >= run.finish_at:
                self.lease = None
                return Finished(lease, run.started_at, run.finish_at)
            return None
        if self.stopped or self.deadline is None or (now < self.a.ready_at and now < self.deadline):
            return None
        if now >= self.deadline or not self.wants_batch(now):
            self.stopped = True
            return Stopped(now)
        return None
