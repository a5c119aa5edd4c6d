"""The client's books: which query was sent when, and which notice came back for it.

Latency is measured here, on the client's clock only (send to notice). A query is decided by
its first notice; a repeat of the same notice (a retried delivery) is harmless, a different
one is a conflict that the accounting reports; notices that come after the books are closed
(the drain ended) leave their queries unfinished.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.protos import servelab_pb2 as pb
from runtime.spec import ClientTerms

RATE_WINDOW_S = 5.0  # the progress line's sending rate is measured over this many trace seconds


@dataclass(frozen=True)
class Progress:
    """What the progress line shows (trace seconds)."""

    total: int
    sent: int
    completed: int
    violations: int
    trace_time: float
    rate: float
    done: bool
    drops: int = 0  # of `completed`: the notices that were drops


class ClientCore:
    def __init__(self, arrival_s: np.ndarray, prompt_index: np.ndarray, slo_s: float, output_len: int = 0) -> None:
        self.arrival_s = arrival_s
        self.prompt_index = prompt_index
        self.slo_s = slo_s
        self.output_len = output_len
        n = len(arrival_s)
        self.sent_at: list[float | None] = [None] * n
        self.notice_at: list[float | None] = [None] * n
        self.dropped = [False] * n
        self.reason = [""] * n
        self.path = [""] * n
        self.submit_error = [""] * n
        self.repeats = 0  # the same notice again (a retried delivery): harmless
        self.conflicts = 0  # a different notice for a query already decided: a real double count
        self.unknown = 0  # a notice for a query never sent
        self.after_close: list[int] = []  # notices that came after the drain: those queries stay unfinished
        self.sent = self.noticed = self.violations = self.drops = 0
        self.closed = False
        self.closed_at: float | None = None  # when the books closed (a notice later cannot count)
        self.done = False
        self._recent: deque[float] = deque()

    @classmethod
    def for_run(cls, terms: ClientTerms, arrival_s: np.ndarray, prompt_index: np.ndarray) -> ClientCore:
        """The client's books for a run on the system's terms (no SLO: a request counts until the
        trace's end, then it is unfinished)."""
        return cls(arrival_s, prompt_index, math.inf if terms.slo_s is None else terms.slo_s, terms.output_len)

    def __len__(self) -> int:
        return len(self.arrival_s)

    # ------------------------------------------------------------------ sending
    def send(self, i: int, now: float, prompt: str = "") -> pb.Query:
        """Query `i` leaves now: its record on the wire."""
        self.sent_at[i] = now
        self.sent += 1
        self._recent.append(now)
        q = pb.Query(id=i, prompt_index=int(self.prompt_index[i]), output_len=self.output_len, sent_at=now)
        if prompt:
            q.prompt = prompt
        return q

    def submit_failed(self, i: int, code: str) -> None:
        """The submit call failed: the load balancer may still have taken it, so a notice may still
        come; without one the query counts as dropped (submit_failed) at the end."""
        self.submit_error[i] = code

    def drain_until(self, duration_s: float, drain_s: float) -> float:
        """Trace time the client waits until for the last notices: the last arrival (or the trace's
        end, whichever is later when there is no SLO) plus the drain."""
        last = float(self.arrival_s[-1]) if len(self) else 0.0
        return max(last, duration_s) if math.isinf(self.slo_s) else last + drain_s

    # ------------------------------------------------------------------ receiving
    def notice(self, i: int, dropped: bool, reason: str, path: str, now: float) -> None:
        if self.closed:
            self.after_close.append(i)
            return
        if not 0 <= i < len(self) or self.sent_at[i] is None:
            self.unknown += 1
            return
        if self.notice_at[i] is not None:
            if (self.dropped[i], self.path[i]) == (dropped, path):
                self.repeats += 1
            else:
                self.conflicts += 1
            return
        self.notice_at[i] = now
        self.dropped[i], self.reason[i], self.path[i] = dropped, reason, path
        self.noticed += 1
        self.drops += int(dropped)
        sent = self.sent_at[i]
        assert sent is not None
        if dropped or now - sent > self.slo_s:
            self.violations += 1

    @property
    def all_noticed(self) -> bool:
        return self.noticed >= self.sent

    def progress(self, now: float) -> Progress:
        while self._recent and self._recent[0] < now - RATE_WINDOW_S:
            self._recent.popleft()
        return Progress(
            len(self),
            self.sent,
            self.noticed,
            self.violations,
            now,
            len(self._recent) / RATE_WINDOW_S,
            self.done,
            self.drops,
        )

    # ------------------------------------------------------------------ the books
    def close(self, now: float | None = None) -> bool:
        """Close the books (at `now`, when known): later notices are late. False if they were
        closed already."""
        if self.closed:
            return False
        self.closed, self.closed_at = True, now
        return True

    def rows(self) -> list[dict[str, Any]]:
        """One row per query of the trace (client.parquet)."""
        return [
            {
                "query_id": i,
                "prompt_index": int(self.prompt_index[i]),
                "arrival_s": float(self.arrival_s[i]),
                "sent_at": self.sent_at[i],
                "notice_at": self.notice_at[i],
                "notice_dropped": self.dropped[i],
                "notice_reason": self.reason[i],
                "notice_path": self.path[i],
                "submit_error": self.submit_error[i],
            }
            for i in range(len(self))
        ]

    def meta(self) -> dict[str, Any]:
        """The accounting counters (client_meta.json)."""
        return {
            "conflicts": self.conflicts,
            "repeats": self.repeats,
            "unknown": self.unknown,
            "after_close": sorted(set(self.after_close)),
            "closed_at": self.closed_at,
        }
