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
