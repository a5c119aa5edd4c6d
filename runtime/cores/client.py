"""The client's books: which query was sent when, and which notice came back for it.

Latency is measured here, on the client's clock only (send to notice). A query is decided by
its first notice; a repeat of the same notice (a retried delivery) is harmless, a different
one is a conflict that the accounting reports; notices that come after the books are closed
(the drain ended) leave their queries unfinished.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from math import isnan
from typing import TYPE_CHECKING, Any

import numpy as np

from runtime.columns import Columns, Kind
from runtime.query import Query
from runtime.spec import ClientTerms

if TYPE_CHECKING:
    import pyarrow as pa

RATE_WINDOW_S = 5.0  # the progress line's sending rate is measured over this many trace seconds

CLIENT_BOOKS: dict[str, Kind] = {
    "sent_at": "float",  # null: never sent
    "notice_at": "float",  # null: no notice (yet)
    "notice_dropped": "bool",
    "notice_reason": "str",
    "notice_path": "str",
    "submit_error": "str",  # the grpc code of a failed submit call
}


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
        # Views of the trace's arrays (no copy): an item read through a memoryview is a plain
        # float or int, a third of the cost of a numpy scalar's read and conversion, and the
        # virtual clock reads two a query.
        self.arrival_s = np.ascontiguousarray(arrival_s, dtype=np.float64).data
        self.prompt_index = np.ascontiguousarray(prompt_index, dtype=np.int64).data
        self.slo_s = slo_s
        self.output_len = output_len
        n = len(arrival_s)
        # One typed column per field (runtime/columns.py): 8 bytes a time, 4 a string code.
        self.books = Columns(CLIENT_BOOKS)
        for name, empty in (("sent_at", None), ("notice_at", None), ("notice_dropped", False)):
            self.books.fill(name, empty, n)
        for name in ("notice_reason", "notice_path", "submit_error"):
            self.books.fill(name, "", n)
        data = self.books.data
        self._sent_at, self._notice_at, self._dropped = data["sent_at"], data["notice_at"], data["notice_dropped"]
        self._reason, self._path, self._error = data["notice_reason"], data["notice_path"], data["submit_error"]
        self._codes = {n: self.books.strings[n].code for n in ("notice_reason", "notice_path", "submit_error")}
        self._reason_code, self._path_code = self._codes["notice_reason"], self._codes["notice_path"]
        self.submit_errors = 0  # queries whose submit call failed
        self.repeats = 0  # the same notice again (a retried delivery): harmless
        self.conflicts = 0  # a different notice for a query already decided: a real double count
        self.unknown = 0  # a notice for a query never sent
        self.after_close: list[int] = []  # notices that came after the drain: those queries stay unfinished
        self.sent = self.noticed = self.violations = self.drops = 0
        self.closed = False
        self.closed_at: float | None = None  # when the books closed (a notice later cannot count)
        self.done = False

    @classmethod
    def for_run(cls, terms: ClientTerms, arrival_s: np.ndarray, prompt_index: np.ndarray) -> ClientCore:
        """The client's books for a run on the system's terms (no SLO: a request counts until the
        trace's end, then it is unfinished)."""
        return cls(arrival_s, prompt_index, math.inf if terms.slo_s is None else terms.slo_s, terms.output_len)

    def __len__(self) -> int:
        return len(self.arrival_s)

    # ------------------------------------------------------------------ sending
    def send(self, i: int, now: float, prompt: str = "") -> Query:
        """Query `i` leaves now: its record on the wire."""
        self._sent_at[i] = now
        self.sent += 1
        q = Query(i, self.prompt_index[i], now)  # positional: keywords cost 60 % more
        if prompt:
            q.prompt = prompt
        if self.output_len:
            q.output_len = self.output_len
        return q

    def submit_failed(self, i: int, code: str) -> None:
        """The submit call failed: the load balancer may still have taken it, so a notice may still
        come; without one the query counts as dropped (submit_failed) at the end."""
        if not self.books.get("submit_error", i):
            self.submit_errors += 1
        self._error[i] = self._codes["submit_error"](code)

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
        sent_at = self._sent_at
        if not 0 <= i < len(sent_at) or isnan(sent_at[i]):
            self.unknown += 1
            return
        path_code = self._path_code(path)
        if not isnan(self._notice_at[i]):
            if (bool(self._dropped[i]), self._path[i]) == (dropped, path_code):
                self.repeats += 1
            else:
                self.conflicts += 1
            return
        self._notice_at[i] = now
        self._dropped[i], self._reason[i], self._path[i] = dropped, self._reason_code(reason), path_code
        self.noticed += 1
        self.drops += int(dropped)
        if dropped or now - sent_at[i] > self.slo_s:
            self.violations += 1

    @property
    def all_noticed(self) -> bool:
        return self.noticed >= self.sent

    def progress(self, now: float) -> Progress:
        # Queries leave in trace order, so the send times so far are sorted: the window's sends
        # are found by bisection when the progress line asks, not kept on every send.
        recent = self.sent - bisect_left(self._sent_at, now - RATE_WINDOW_S, 0, self.sent)
        return Progress(
            len(self),
            self.sent,
            self.noticed,
            self.violations,
            now,
            recent / RATE_WINDOW_S,
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

    def table(self) -> pa.Table:
        """One row per query of the trace (client.parquet)."""
        import pyarrow as pa

        n = len(self)
        table = self.books.table()
        trace = {
            "query_id": pa.array(np.arange(n, dtype=np.int64)),
            "prompt_index": pa.array(np.asarray(self.prompt_index, dtype=np.int64)),
            "arrival_s": pa.array(np.asarray(self.arrival_s, dtype=np.float64)),
        }
        for k, (name, column) in enumerate(trace.items()):
            table = table.add_column(k, name, column)
        return table

    def meta(self) -> dict[str, Any]:
        """The accounting counters (client_meta.json)."""
        return {
            "conflicts": self.conflicts,
            "repeats": self.repeats,
            "unknown": self.unknown,
            "after_close": sorted(set(self.after_close)),
            "closed_at": self.closed_at,
        }
