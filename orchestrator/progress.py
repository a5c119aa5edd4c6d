"""The live progress line of a run: trace time against the trace's end (then "draining"), the
share of the trace's time replayed, an ETA in wall time, queries sent, the current rate, what came back (drops apart
from completions) and how the system judges the rest (SLO violations, or requests in flight).

On a terminal it is one line redrawn in place (rich); the console's log lines are printed above
it, never inside it, for as long as it is shown. Off a terminal it is a plain line every
`interval_s` wall seconds, so that logs and CI output stay readable.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

Outcome = Callable[[int, int, int], str]  # (sent, completed, violations) -> the line's end


def clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def line(p: Any, outcome: Outcome, end_s: float, drain_s: float, time_scale: float) -> str:
    """One progress line from a ProgressReply: the trace replays at `time_scale`, so the wall
    time left is the trace time left (with the drain) over it."""
    left = max(0.0, end_s + drain_s - p.trace_time) / time_scale
    if p.trace_time < 0:
        where = "starting"
    elif p.trace_time < end_s:
        where = f"t={p.trace_time:6.1f}/{end_s:.0f}s"
    else:
        where = "draining"
    share = 100.0 * min(max(p.trace_time, 0.0) / end_s, 1.0) if end_s > 0 else 100.0  # of the trace's time
    done = p.completed - p.dropped
    head = (
        f"{where}  {share:3.0f}%  ETA {clock(left)}  sent {p.sent}/{p.total}  rate {p.rate:5.1f} q/s  "
        f"done {done}  dropped {p.dropped}"
    )
    return f"{head}  {outcome(p.sent, p.completed, p.violations)}"


class ProgressLine:
    def __init__(
        self,
        enabled: bool,
        outcome: Outcome,
        end_s: float,
        drain_s: float = 0.0,
        time_scale: float = 1.0,
        interval_s: float = 10.0,
    ) -> None:
        self.enabled = enabled
        self.outcome = outcome
        self.end_s, self.drain_s, self.time_scale = end_s, drain_s, time_scale
        self.tty = sys.stderr.isatty()
        self.interval_s = interval_s
        self._last = 0.0
        self._live: Live | None = None
        self._streams: list[tuple[logging.StreamHandler[Any], Any]] = []

    def __enter__(self) -> ProgressLine:
        if self.enabled and self.tty:
            stderr = sys.stderr
            self._live = Live(Text(""), console=Console(stderr=True), refresh_per_second=4, transient=False)
            self._live.__enter__()
            # Live redirects sys.stderr to print above the line; log handlers opened the real
            # stream before, so point them at the redirect while the line is shown.
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is stderr:
                    self._streams.append((handler, handler.setStream(sys.stderr)))
        return self

    def update(self, progress: Any) -> None:
        if not self.enabled:
            return
        text = line(progress, self.outcome, self.end_s, self.drain_s, self.time_scale)
        if self._live is not None:
            self._live.update(Text(text))
        elif time.monotonic() - self._last >= self.interval_s or progress.done:
            self._last = time.monotonic()
            sys.stderr.write(text + "\n")  # one write: a log line cannot land inside it
            sys.stderr.flush()

    def __exit__(self, *exc: object) -> None:
        for handler, stream in self._streams:
            handler.setStream(stream)
        self._streams = []
        if self._live is not None:
            self._live.__exit__(None, None, None)
