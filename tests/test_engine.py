"""The discrete-event loop: one ordering rule (time, priority, sequence) and no global state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from runtime.engine.loop import Engine


@dataclass
class Log:
    seen: list[tuple[float, str]] = field(default_factory=list)


@dataclass
class Mark:
    PRIORITY: ClassVar[int] = 1
    time: float
    label: str
    then: tuple[tuple[float, str], ...] = ()

    def handle(self, log: Log) -> list[Mark]:
        log.seen.append((self.time, self.label))
        return [Mark(t, label) for t, label in self.then]


@dataclass
class Urgent(Mark):
    PRIORITY: ClassVar[int] = 0


def test_events_run_by_time_then_priority_then_scheduling_order() -> None:
    engine = Engine(Log())
    engine.schedule_all([Mark(2.0, "b"), Mark(1.0, "a"), Mark(2.0, "c"), Urgent(2.0, "urgent")])
    engine.run()
    assert engine.model.seen == [(1.0, "a"), (2.0, "urgent"), (2.0, "b"), (2.0, "c")]


def test_handlers_schedule_follow_ups_and_run_stops_at_until() -> None:
    engine = Engine(Log())
    engine.schedule(Mark(0.0, "start", ((1.0, "x"), (5.0, "late"))))
    assert engine.run(until=3.0) == 3.0
    assert engine.model.seen == [(0.0, "start"), (1.0, "x")] and len(engine) == 1
    engine.run()
    assert engine.model.seen[-1] == (5.0, "late") and engine.handled == 3


def test_a_stop_condition_ends_the_run_after_the_event_that_met_it() -> None:
    engine = Engine(Log())
    engine.schedule_all([Mark(float(t), str(t)) for t in range(10)])
    engine.run(stop=lambda: len(engine.model.seen) == 4)
    assert len(engine.model.seen) == 4 and engine.now == 3.0


def test_the_past_is_refused() -> None:
    engine = Engine(Log())
    engine.schedule(Mark(2.0, "now", ((1.0, "before"),)))
    with pytest.raises(ValueError, match="in the past"):
        engine.run()


def test_two_engines_do_not_share_state() -> None:
    a, b = Engine(Log()), Engine(Log())
    a.schedule(Mark(1.0, "a"))
    b.schedule(Mark(1.0, "b"))
    a.run()
    assert a.model.seen == [(1.0, "a")] and b.model.seen == [] and len(b) == 1
