"""A SpotServe replica's core, run by its leader: when it may take a batch, how its batch is
timed, which tokens it has committed, and the drain rule.

A replica is ready at `ready_at` (after its migration or reload); then, whenever it is idle,
it pulls a batch from the pool (`wants_batch`, `start`). Its batch runs a prefill and one
decode step after another, committing a token each (runtime/policies/spotserve/timing.py).
Told to drain by a deadline, it still serves until then: it starts a batch only if the whole
batch fits, or (keeping progress) if the prefill and at least one step do; a batch that
crosses the deadline is interrupted there with the tokens it committed (none when the drain
keeps no progress). With the artifact's just-in-time interruption (`Assignment.jit`,
runtime/policies/spotserve/mechanics.py) the batch it runs always completes, and before each
new batch it estimates the decode steps that fit before the deadline: it runs the whole
batch, or only those steps and stops, or stops at once. `advance(now)` says what happened by
`now`; `wake_at()` when to look next.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from runtime.cores.spotserve.pool import Lease
from runtime.policies.spotserve.mechanics import WHOLE, remaining_steps, stop_now
from runtime.policies.spotserve.timing import BatchTiming, Run, worth_starting
from runtime.query import Query, Stage


@dataclass(frozen=True)
class Assignment:
    """What the controller tells a replica's leader."""

    replica: int
    batch: int  # its max batch
    timing: BatchTiming
    output_len: int
    ready_at: float
    config: str = ""
    jit: bool = False  # the artifact's just-in-time interruption (spot.mechanics.jit_interruption)
    fix_factor: float = 1.0  # the profile's final_fix_factor, for the jit estimator
    charged_factor: bool = True  # `timing` includes the fix factor (else it is the profile itself)

    @property
    def profile(self) -> BatchTiming:
        """The profiled timing, without the fix factor (what the jit estimator scales)."""
        return self.timing.scaled(1.0 / self.fix_factor) if self.charged_factor else self.timing


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
class Drained:
    """The replica drained with no batch running: it takes nothing more."""

    at: float


Progress = Finished | Interrupted | Drained


class ReplicaCore:
    def __init__(self, assignment: Assignment) -> None:
        self.a = assignment
        self.deadline: float | None = None
        self.keep_progress = False
        self.conservative = True
        self.lease: Lease | None = None
        self.stopped = False

    @property
    def id(self) -> int:
        return self.a.replica

    def drain(self, deadline: float, keep_progress: bool, conservative: bool = True) -> None:
        """Stop by `deadline` (a later drain may move it; an infinite one cancels it).
        `conservative`: the jit estimator's side (False when the fleet grows)."""
        self.deadline = None if math.isinf(deadline) else deadline
        self.keep_progress = keep_progress
        self.conservative = conservative

    def wants_batch(self, now: float) -> bool:
        """Idle, ready, and (draining) a new full batch would gain something before the deadline
        (jit: the slot left is longer than one request's prefill)."""
        if self.stopped or self.lease is not None or now < self.a.ready_at:
            return False
        if self.deadline is None:
            return True
        if self.a.jit:
            return not stop_now(self.a.profile, self.deadline - now, self.a.fix_factor)
        return worth_starting(self.a.timing, self.a.batch, 0, self.a.output_len, now, self.deadline, self.keep_progress)

    def start(self, lease: Lease) -> Interrupted | None:
        """Run `lease`. Draining with the jit estimator, the batch may run only the steps that
        fit (its run is cut short), or none: then the replica stops at once and the batch is
        returned as interrupted, keeping the tokens it came with when the drain keeps progress."""
        if self.a.jit and self.deadline is not None:
            run = lease.run
            steps = remaining_steps(
                self.a.profile,
                len(lease.requests),
                self.deadline - run.started_at,
                self.conservative,
                self.a.fix_factor,
                self.a.output_len,
            )
            if steps == 0:
                self.stopped = True
                return Interrupted(lease, run.started_at, run.started_at, lease.start_step if self.keep_progress else 0)
            if steps != WHOLE and isinstance(run, Run):
                lease = dataclasses.replace(lease, run=dataclasses.replace(run, steps=steps))
        self.lease = lease
        return None

    def wake_at(self, now: float) -> float | None:
        """The next time after `now` that something may happen by itself: the replica is
        ready, its batch ends, or its drain deadline comes (an idle replica otherwise waits
        for requests)."""
        if self.stopped:
            return None
        times = [self.lease.run.finish_at] if self.lease is not None else [self.a.ready_at]
        if self.deadline is not None:
            # jit: an idle replica stops once its slot is down to one prefill
            times.append(
                self.deadline - self.a.profile.prefill_s[0] * self.a.fix_factor if self.a.jit else self.deadline
            )
        later = [t for t in times if t > now]
        return min(later) if later else None

    def advance(self, now: float) -> Progress | None:
        """What happened by `now`: the batch finished, a drain interrupted it, or the drained
        replica stopped idle; None when nothing did."""
        if self.lease is not None:
            return self._advance_jit(now, self.lease) if self.a.jit else self._advance_batch(now, self.lease)
        if self.stopped or self.deadline is None or (now < self.a.ready_at and now < self.deadline):
            return None
        stop = (
            stop_now(self.a.profile, self.deadline - now, self.a.fix_factor)
            if self.a.jit
            else now >= self.deadline or not self.wants_batch(now)
        )
        if stop:
            self.stopped = True
            return Drained(now)
        return None

    def _advance_batch(self, now: float, lease: Lease) -> Progress | None:
        """Our drain: a batch that crosses the deadline is cut there."""
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

    def _advance_jit(self, now: float, lease: Lease) -> Progress | None:
        """The artifact's: the batch runs to its end, or to the steps the estimator gave it."""
        run = lease.run
        if now < run.finish_at:
            return None
        self.lease = None
        if isinstance(run, Run) and run.limited:
            self.stopped = True
            return Interrupted(lease, run.started_at, run.finish_at, run.last_token if self.keep_progress else 0)
        return Finished(lease, run.started_at, run.finish_at)


# --------------------------------------------------------------------------- records
# The role shells (load balancer, worker) and the engine stamp a request's record through these
# two, so that both clocks write the same fields the same way.


def stamp_leased(queries: Sequence[Query], lease: Lease, restarts: Mapping[int, int]) -> None:
    """A batch leased to a replica: how often each request restarted so far, and the token it
    resumes from (0 unless the batch resumes with its KV cache)."""
    for q in queries:
        q.restarts = restarts.get(q.id, 0)
        q.tokens_done = lease.start_step


def stamp_outcome(
    queries: Sequence[Query], outcome: Finished | Interrupted, leader: str, replica: int, output_len: int
) -> None:
    """A batch that finished or was cut: its stage on the leader, and the tokens each request
    holds (all of them and the replica that served it, or those its batch committed)."""
    end = outcome.finished_at if isinstance(outcome, Finished) else outcome.stopped_at
    for q in queries:
        q.stages.append(Stage(worker=leader, started_at=outcome.started_at, finished_at=end, batch_size=len(queries)))
        if isinstance(outcome, Finished):
            q.tokens_done, q.replica = output_len, replica
        else:
            q.tokens_done = outcome.tokens
