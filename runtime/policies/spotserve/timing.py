"""How long a replica's batch takes, and how far it got when it must stop (pure).

Request-level batching, as in the artifact: a batch of b requests runs a prefill (skipped
when it resumes with its KV cache; a batch that lost its KV cache with a dead GPU keeps its
committed tokens but recomputes them with a prefill), then decode steps until output_len
tokens, then the embedding/LM-head cost; every request of the batch finishes together.
Progress is committed per decode step, so a replica stopped at time t has committed
floor((t - decode start)/step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from runtime.policies.spotserve.cost_model import ParallelConfig, decode_step_ms, embed_ms, prefill_ms
from runtime.schema.spotserve import ModelConfig


@dataclass(frozen=True)
class BatchTiming:
    """Seconds per batch size b (index b - 1), final_fix_factor included."""

    prefill_s: tuple[float, ...]
    step_s: tuple[float, ...]
    embed_s: tuple[float, ...]

    def scaled(self, k: float) -> BatchTiming:
        return BatchTiming(*(tuple(v * k for v in col) for col in (self.prefill_s, self.step_s, self.embed_s)))

    def duration_s(self, batch: int, start_step: int, output_len: int, recompute: bool = False) -> float:
        prefill = self.prefill_s[batch - 1] if start_step == 0 or recompute else 0.0
        return prefill + (output_len - start_step) * self.step_s[batch - 1] + self.embed_s[batch - 1]


def timing(model: ModelConfig, cfg: ParallelConfig, fix_factor: bool = True) -> BatchTiming:
    """Seconds per batch size of `cfg`: the profile x final_fix_factor (the planners' figure,
    which our simulated replicas take by default), or the profile itself (`fix_factor` False)."""
    f = (model.final_fix_factor if fix_factor else 1.0) / 1000.0
    rows = []
    for b in range(1, cfg.batch + 1):
        c = ParallelConfig(cfg.dp, cfg.tp, cfg.pp, b, cfg.m1, cfg.m2)
        rows.append((prefill_ms(model, c) * f, decode_step_ms(model, c) * f, 2 * embed_ms(model, b) * f))
    prefill, step, embed = (tuple(col) for col in zip(*rows, strict=True))
    return BatchTiming(prefill, step, embed)


@dataclass(frozen=True)
class Run:
    """One batch on a replica: when it started and how it is timed. With `steps` (the
    artifact's iter_step, spot.mechanics.jit_interruption) it runs only that many decode steps
    and stops there, short of its end."""

    started_at: float
    batch: int
    start_step: int
    output_len: int
    timing: BatchTiming
    recompute: bool = False  # its KV cache was lost: a prefill recomputes the committed tokens
    steps: int | None = None  # decode steps it runs before it stops; None: to the end

    @property
    def limited(self) -> bool:
        """It stops after `steps` decode steps, before its last token."""
        return self.steps is not None and self.start_step + self.steps < self.output_len

    @property
    def last_token(self) -> int:
        return self.start_step + self.steps if self.limited and self.steps is not None else self.output_len

    @property
    def decode_start(self) -> float:
        prefill = self.timing.prefill_s[self.batch - 1] if self.start_step == 0 or self.recompute else 0.0
        return self.started_at + prefill

    @property
    def finish_at(self) -> float:
        if self.limited and self.steps is not None:
            return self.decode_start + self.steps * self.timing.step_s[self.batch - 1]
        return self.started_at + self.timing.duration_s(self.batch, self.start_step, self.output_len, self.recompute)

    def committed_at(self, t: float) -> int:
        """Tokens committed (the KV length in decode steps) if the replica stops at time t."""
        if t >= self.finish_at:
            return self.last_token
        if t < self.decode_start:
            return self.start_step
        step = self.timing.step_s[self.batch - 1]
        return min(self.last_token, self.start_step + math.floor((t - self.decode_start) / step + 1e-9))


@dataclass
class MeasuredRun:
    """One batch in real execution: the same questions as `Run`, answered from what happened.
    Each token is committed when the step that made it ended (the prefill makes the first of
    a fresh batch); the batch finishes when the leader says so."""

    started_at: float
    batch: int
    start_step: int
    output_len: int
    commits: list[float] = field(default_factory=list)  # when each committed token was done
    finished: float | None = None

    @property
    def finish_at(self) -> float:
        return self.finished if self.finished is not None else math.inf

    @property
    def tokens(self) -> int:
        return self.start_step + len(self.commits)

    def commit(self, at: float) -> None:
        self.commits.append(at)

    def committed_at(self, t: float) -> int:
        return self.start_step + sum(1 for c in self.commits if c <= t)


def worth_starting(
    timing: BatchTiming,
    batch: int,
    start_step: int,
    output_len: int,
    now: float,
    deadline: float,
    keep_progress: bool,
    recompute: bool = False,
) -> bool:
    """Whether a replica that must stop at `deadline` should start this batch now: when the
    whole batch fits, or (progress kept) when its prefill and at least one step fit."""
    run = Run(now, batch, start_step, output_len, timing, recompute)
    if run.finish_at <= deadline:
        return True
    return keep_progress and run.committed_at(deadline) > start_step
