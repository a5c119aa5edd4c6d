"""The sink's books: one row per query that reached the end of its pipeline, with its timeline,
and the notice the client gets. A retried delivery of what the sink already has is ignored; a
second, different ending of one query is counted as a duplicate (a real double count).

The rows are typed columns (runtime/columns.py), appended field by field, a few hundred bytes a
query; a long virtual run hands them to a Parquet writer in row groups as they fill
(`spill_every`), so the sink holds at most that many rows however long the trace.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from runtime.columns import INT_NULL, Columns, Kind
from runtime.protos import servelab_pb2 as pb
from runtime.query import Notice, Query, Stage
from runtime.records import Tier

if TYPE_CHECKING:
    import pyarrow as pa

_SERVED: dict[int, str] = {pb.LIGHT: Tier.LIGHT.value, pb.HEAVY: Tier.HEAVY.value}  # a stage's tier -> a path
_STAGE: dict[str, Kind] = {
    "worker": "str",
    "enqueued_at": "float",
    "started_at": "float",
    "finished_at": "float",
    "batch_size": "int",
}
SINK_COLUMNS: dict[str, Kind] = {
    "query_id": "int",
    "prompt_index": "int",
    "sent_at": "float",
    "admitted_at": "float",
    "sink_at": "float",
    "dropped": "bool",
    "drop_reason": "str",
    "confidence": "float",  # null unless the light stage scored it
    "threshold": "float",
    "image_path": "str",
    "note": "str",
    "tokens_done": "int",
    "restarts": "int",
    "replica": "int",
    "attempts": "int",  # stages that ran
    "first_started_at": "float",  # null if none ran
    # the first stage of each tier: a stage that never ran (set aside by the drop rule) gives
    # only its worker and enqueue time; no stage of the tier, all null
    **{f"{p}_{f}": k for p in ("light", "heavy") for f, k in _STAGE.items()},
}
_NAN = math.nan
_NO_STAGE = (-1, _NAN, _NAN, _NAN, INT_NULL)


class SinkCore:
    def __init__(self, spill: Callable[[pa.Table], None] | None = None, spill_every: int = 1 << 20) -> None:
        self.columns = Columns(SINK_COLUMNS)
        self.rows_written = 0  # rows handed to `spill` already
        self._held = 0  # rows held, counted as they come: len(self.columns) is a Python call a time
        self.spill, self.spill_every = spill, spill_every
        # What the sink has of each query, for telling a repeat from a duplicate: by query id
        # (the client's dense index), its stage count (-1: not seen), last finish and drop flag.
        self._stages = array("i")
        self._last = array("d")
        self._dropped = array("b")
        self._other: dict[int, tuple[int, float, bool]] = {}  # ids outside the dense range
        self.duplicates = 0
        self.repeats = 0
        strings = self.columns.strings
        self._reason_code, self._path_code = strings["drop_reason"].code, strings["image_path"].code
        self._note_code = strings["note"].code
        self._light_worker = strings["light_worker"].code
        self._heavy_worker = strings["heavy_worker"].code

    def __len__(self) -> int:
        """Rows recorded, spilled ones included."""
        return self.rows_written + len(self.columns)

    def rows_since(self, start: int) -> Iterable[dict[str, Any]]:
        """The rows from number `start` on, as dicts (the wall sink's journal; never spilled)."""
        return self.columns.rows(start - self.rows_written)

    def _known(self, qid: int, fingerprint: tuple[int, float, bool]) -> tuple[int, float, bool] | None:
        if 0 <= qid < 1 << 32:
            if qid >= len(self._stages):
                grow = max(qid + 1, 2 * len(self._stages)) - len(self._stages)
                self._stages.extend(array("i", [-1]) * grow)
                self._last.extend(array("d", [0.0]) * grow)
                self._dropped.extend(array("b", [0]) * grow)
            n = self._stages[qid]
            known = None if n < 0 else (n, self._last[qid], bool(self._dropped[qid]))
            self._stages[qid], self._last[qid], self._dropped[qid] = fingerprint
            return known
        known = self._other.get(qid)
        self._other[qid] = fingerprint
        return known

    def complete(self, queries: list[Query], now: float) -> list[Notice]:
        """Record what arrived; the notices to send to the client (none for repeats)."""
        notices = []
        for q in queries:
            stages = q.stages
            fingerprint = (len(stages), stages[-1].finished_at if stages else -1.0, q.dropped)
            known = self._known(q.id, fingerprint)
            if known == fingerprint:
                self.repeats += 1
                continue
            if known is not None:
                self.duplicates += 1
            path = self._record(q, now)
            notices.append(Notice(q.id, q.dropped, q.drop_reason, path))
        self._held += len(notices)  # a row each
        if self.spill is not None and self._held >= self.spill_every:
            self.flush()
        return notices

    def flush(self) -> None:
        """Hand the rows held to `spill` (a row group of the run's Parquet file)."""
        if self.spill is not None and len(self.columns):
            n = len(self.columns)
            self.spill(self.columns.take())
            self.rows_written += n
            self._held = 0

    def _record(self, q: Query, sink_at: float) -> str:
        """Add q's row; the tier whose output the user got (the last stage that ran; '' if none
        did, it was dropped, or its stage has no tier, as in SpotServe's)."""
        light = heavy = None
        ran, first_started, last_tier = 0, _NAN, -1  # last_tier: a pb.Tier value
        for st in q.stages:
            tier = st.tier
            if tier == pb.LIGHT:
                if light is None:
                    light = st
            elif tier == pb.HEAVY and heavy is None:
                heavy = st
            if not st.skipped:
                if not ran:
                    first_started = st.started_at
                ran += 1
                last_tier = tier
        scored = q.scored
        self.columns.add(
            (
                q.id,
                q.prompt_index,
                q.sent_at,
                q.admitted_at,
                sink_at,
                q.dropped,
                self._reason_code(q.drop_reason),
                q.confidence if scored else _NAN,
                q.threshold if scored else _NAN,
                self._path_code(q.image_path),
                self._note_code(q.note),
                q.tokens_done,
                q.restarts,
                q.replica,
                ran,
                first_started,
                *_stage(light, self._light_worker),
                *_stage(heavy, self._heavy_worker),
            )
        )
        if not ran or q.dropped:
            return ""
        return _SERVED.get(last_tier, "")


def _stage(st: Stage | None, worker_code: Callable[[str | None], int]) -> tuple[Any, ...]:
    """A stage's five columns (its worker's code, when it was queued, started and finished, its
    batch): null when the query had no such stage; a skipped one never started."""
    if st is None:
        return _NO_STAGE
    if st.skipped:
        return (worker_code(st.worker), st.enqueued_at, _NAN, _NAN, INT_NULL)
    return (worker_code(st.worker), st.enqueued_at, st.started_at, st.finished_at, st.batch_size)
