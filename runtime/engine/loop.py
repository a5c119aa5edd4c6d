"""The discrete-event loop of the virtual clock.

Events are small objects with a `time`, a class-level `PRIORITY` and `handle(model)`, which
acts on the model (the roles' cores) and returns the events it schedules; only the engine
touches the heap. One ordering rule: (time, priority, seq), where seq comes from a counter the
engine instance owns, so events at the same time run in priority order and then in the order
they were scheduled, and two runs of the same model give the same sequence. No global state:
several engines can run side by side in one process.

A plain heap (heapq) was measured against SimPy's event loop on this workload
(benchmarks/engine.py; figures in the README) and kept for its speed.

Python's garbage collections scan every object alive, and a replay keeps every query's record
alive to its end, so they made a long run superlinear (58 µs a query at 10x the default trace
against 42 at 1x, benchmarks/scaling.py). The loop makes no cyclic garbage (a replay of twice
the default trace leaves 20 objects to collect: tests/test_records_identity.py), so the
collector is off while it runs, and back on after.
"""

from __future__ import annotations

import gc
import heapq
import itertools
from collections.abc import Callable, Iterable
from typing import Any, ClassVar


class Event:
    """The one base of every system's events (runtime/engine/<system>.py): slotted dataclasses
    that set `PRIORITY` and take their model, the system's cores wired together, in `handle`."""

    __slots__ = ()
    PRIORITY: ClassVar[int]
    time: float

    def handle(self, model: Any) -> Iterable[Event]:
        """Act on `model` at `time`; return the events this schedules."""
        raise NotImplementedError


class Engine:
    def __init__(self, model: Any) -> None:
        self.model = model
        self.now = 0.0
        self.handled = 0
        self._heap: list[tuple[float, int, int, Any]] = []
        self._seq = itertools.count()

    def schedule(self, event: Event) -> None:
        if event.time < self.now:
            raise ValueError(f"event {type(event).__name__} at {event.time} is before now ({self.now})")
        heapq.heappush(self._heap, (event.time, event.PRIORITY, next(self._seq), event))

    def schedule_all(self, events: Iterable[Event]) -> None:
        for e in events:
            self.schedule(e)

    def run(self, until: float = float("inf"), stop: Callable[[], bool] | None = None) -> float:
        """Handle events in order until none is left, the next is after `until`, or `stop()` is
        true after an event; returns the time reached."""
        automatic = gc.isenabled()
        gc.disable()
        try:
            return self._run(until, stop)
        finally:
            if automatic:
                gc.enable()

    def _run(self, until: float, stop: Callable[[], bool] | None) -> float:
        heap, model = self._heap, self.model
        push, pop, seq = heapq.heappush, heapq.heappop, self._seq
        handled, now = self.handled, self.now  # locals, written back once (handlers return events)
        try:
            while heap:
                entry = pop(heap)
                time, _, _, event = entry
                if time > until:
                    push(heap, entry)  # left for a later run, as it was
                    now = until
                    break
                now = time
                handled += 1
                for follow in event.handle(model):
                    at = follow.time
                    if at < time:
                        raise ValueError(
                            f"{type(event).__name__} at {time} scheduled {type(follow).__name__} in the past"
                        )
                    push(heap, (at, follow.PRIORITY, next(seq), follow))
                if stop is not None and stop():
                    break
        finally:
            self.handled, self.now = handled, now
        return now

    def __len__(self) -> int:
        return len(self._heap)
