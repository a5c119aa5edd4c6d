"""The sink's books: one row per query that reached the end of its pipeline, with its timeline,
and the notice the client gets. A retried delivery of what the sink already has is ignored; a
second, different ending of one query is counted as a duplicate (a real double count)."""

from __future__ import annotations

from typing import Any

from runtime.protos import servelab_pb2 as pb
from runtime.records import Tier

_TIERS = {pb.LIGHT: Tier.LIGHT, pb.HEAVY: Tier.HEAVY}
_STAGE_COLUMNS = {
    p: (f"{p}_worker", f"{p}_enqueued_at", f"{p}_started_at", f"{p}_finished_at", f"{p}_batch_size")
    for p in ("light", "heavy")
}


def query_row(q: pb.Query, sink_at: float) -> dict[str, Any]:
    """A query's timeline as one flat row (one column set per tier); a stage that never ran
    (skipped: set aside by the drop rule) gives only its worker and enqueue time."""
    ran = [st for st in q.stages if not st.skipped]
    row: dict[str, Any] = {
        "query_id": q.id,
        "prompt_index": q.prompt_index,
        "sent_at": q.sent_at,
        "admitted_at": q.admitted_at,
        "sink_at": sink_at,
        "dropped": q.dropped,
        "drop_reason": q.drop_reason,
        "confidence": float(q.confidence) if q.scored else None,
        "threshold": float(q.threshold) if q.scored else None,
        "image_path": q.image_path,
        "note": q.note,
        "tokens_done": q.tokens_done,
        "restarts": q.restarts,
        "replica": q.replica,
        "attempts": len(ran),
        "first_started_at": ran[0].started_at if ran else None,
    }
    first: dict[Tier, pb.Stage] = {}
    for stage in q.stages:
        tier = _TIERS.get(stage.tier)
        if tier is not None and tier not in first:
            first[tier] = stage
    for tier, p in ((Tier.LIGHT, "light"), (Tier.HEAVY, "heavy")):
        st = first.get(tier)
        if st is None:
            row.update(dict.fromkeys(_STAGE_COLUMNS[p]))
        else:
            names = _STAGE_COLUMNS[p]
            row[names[0]], row[names[1]] = st.worker, st.enqueued_at
            if not st.skipped:
                row[names[2]], row[names[3]], row[names[4]] = st.started_at, st.finished_at, st.batch_size
            else:
                row.update(dict.fromkeys(names[2:]))
    return row


def served_path(q: pb.Query) -> str:
    """The tier whose output the user got: the last stage that ran, or '' if none did (or the
    stage has no tier, as in SpotServe)."""
    ran = [st for st in q.stages if not st.skipped]
    if not ran or q.dropped:
        return ""
    tier = _TIERS.get(ran[-1].tier)
    return tier.value if tier is not None else ""


class SinkCore:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.seen: dict[int, tuple[int, float, bool]] = {}
        self.duplicates = 0
        self.repeats = 0

    def complete(self, queries: list[pb.Query], now: float) -> list[pb.Notice]:
        """Record what arrived; the notices to send to the client (none for repeats)."""
        notices = []
        for q in queries:
            fingerprint = (len(q.stages), q.stages[-1].finished_at if q.stages else -1.0, q.dropped)
            known = self.seen.get(q.id)
            if known == fingerprint:
                self.repeats += 1
                continue
            if known is not None:
                self.duplicates += 1
            self.seen[q.id] = fingerprint
            self.rows.append(query_row(q, now))
            notices.append(pb.Notice(id=q.id, dropped=q.dropped, drop_reason=q.drop_reason, path=served_path(q)))
        return notices
