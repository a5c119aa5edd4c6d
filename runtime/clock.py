"""Trace time on the wall clock.

Every role reads time through a clock so that policies never import `time`: trace time is
(unix time - epoch) x time_scale, and sleeping d trace seconds sleeps d / time_scale wall
seconds. All roles of a run share the epoch the orchestrator hands them at Start.
"""

from __future__ import annotations

import time


class WallClock:
    def __init__(self, time_scale: float = 1.0, epoch: float | None = None) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        self.time_scale = time_scale
        self.epoch = time.time() if epoch is None else epoch

    def start(self, epoch: float) -> None:
        self.epoch = epoch

    def now(self) -> float:
        """Trace seconds since the epoch (negative before it)."""
        return (time.time() - self.epoch) * self.time_scale

    def wall(self, trace_seconds: float) -> float:
        """Wall seconds that `trace_seconds` of trace time take."""
        return trace_seconds / self.time_scale

    def sleep(self, trace_seconds: float) -> None:
        if trace_seconds > 0:
            time.sleep(trace_seconds / self.time_scale)

    def sleep_until(self, trace_time: float) -> None:
        self.sleep(trace_time - self.now())


class Cadence:
    """The heartbeat ticks of a controller, at k x period_s trace seconds (k = 0, 1, 2, ...), as
    both clocks take them: the controller role's loop (wall clock) and the engine's Tick event
    (virtual clock). A tick is due on the grid, never re-based on when the last one ran; when
    the machine fell behind, the ticks already past are skipped and counted, and the next one
    is taken at once. The tick at 0 is the start's (the role takes it when the run starts)."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self.k = 0
        self.skipped = 0

    @property
    def due(self) -> float:
        """Trace time of the next tick."""
        return self.k * self.period_s

    def take(self, now: float) -> float:
        """The due tick runs at `now` (a wait may end a hair before `due`: it is still that
        tick); returns when the next one is due."""
        late = int((now - self.due) // self.period_s)
        if late > 0:
            self.skipped += late
            self.k += late
        self.k += 1
        return self.due
