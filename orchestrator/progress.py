"""The live progress line of a run: queries sent / total, current rate, completions, and how
the system judges the rest (SLO violations so far, or requests still in flight).

On a terminal it is one line redrawn in place (rich); otherwise a plain line every
`interval_s` wall seconds, so that logs and CI output stay readable.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

Outcome = Callable[[int, int, int], str]  # (sent, completed, violations) -> the line's end


def line(p: Any, outcome: Outcome) -> str:
    """One progress line from a ProgressReply."""
    head = f"t={p.trace_time:7.1f}s  sent {p.sent}/{p.total}  rate {p.rate:5.1f} q/s  completed {p.completed}"
    return f"{head}  {outcome(p.sent, p.completed, p.violations)}"


class ProgressLine:
    def __init__(self, enabled: bool, outcome: Outcome, interval_s: float = 10.0) -> None:
        self.enabled = enabled
        self.outcome = outcome
        self.tty = sys.stderr.isatty()
        self.interval_s = interval_s
        self._last = 0.0
        self._live: Live | None = None

    def __enter__(self) -> ProgressLine:
        if self.enabled and self.tty:
            self._live = Live(Text(""), console=Console(stderr=True), refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def update(self, progress: Any) -> None:
        if not self.enabled:
            return
        text = line(progress, self.outcome)
        if self._live is not None:
            self._live.update(Text(text))
        elif time.monotonic() - self._last >= self.interval_s or progress.done:
            self._last = time.monotonic()
            print(text, file=sys.stderr, flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
