"""From the roles' files to one record per query, and the accounting check.

The client knows every query it sent and how its notice came back; the sink knows the
timeline of every query that reached the end of the cascade. `merge_records` joins them on
the query id and decides each query's outcome (docs/metrics.md); `account`
lists every way the two disagree, so that a run that lost or double-counted a query says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from runtime.records import DropReason, Outcome

CLOCK_SLACK_S = 0.05  # trace clocks of roles on different hosts agree to within this (NTP)

SINK_COLUMNS = [
    "query_id",
    "admitted_at",
    "sink_at",
    "dropped",
    "drop_reason",
    "confidence",
    "threshold",
    "image_path",
    "note",
    "light_worker",
    "light_enqueued_at",
    "light_started_at",
    "light_finished_at",
    "light_batch_size",
    "heavy_worker",
    "heavy_enqueued_at",
    "heavy_started_at",
    "heavy_finished_at",
    "heavy_batch_size",
]


def _sink_frame(sink: pd.DataFrame) -> pd.DataFrame:
    sink = sink.reindex(columns=list(dict.fromkeys([*SINK_COLUMNS, *sink.columns])))
    return sink.drop(columns=[c for c in ("prompt_index", "sent_at") if c in sink.columns])


def merge_records(client: pd.DataFrame, sink: pd.DataFrame, slo_s: float) -> pd.DataFrame:
    """One row per query the client sent, with its outcome, path and timeline."""
    sent = client[client["sent_at"].notna()].copy()
    first = _sink_frame(sink).drop_duplicates("query_id", keep="first")
    rec = sent.merge(first, on="query_id", how="left", validate="one_to_one")
    if "submit_error" not in rec:
        rec["submit_error"] = ""
    rec["submit_error"] = rec["submit_error"].fillna("")
    # No notice after a failed submit: the load balancer never took it.
    lost_submit = rec["notice_at"].isna() & (rec["submit_error"] != "")
    rec.loc[lost_submit, "notice_dropped"] = True
    rec.loc[lost_submit, "notice_reason"] = DropReason.SUBMIT_FAILED.value
    rec.loc[lost_submit, "notice_at"] = rec.loc[lost_submit, "sent_at"]
    latency = rec["notice_at"] - rec["sent_at"]
    noticed = rec["notice_at"].notna()
    dropped = noticed & rec["notice_dropped"].astype(bool)
    completed = noticed & ~dropped
    rec["latency_s"] = latency.where(completed)
    outcome = np.where(
        ~noticed,
        Outcome.UNFINISHED.value,
        np.where(
            dropped,
            Outcome.DROPPED.value,
            np.where(latency <= slo_s, Outcome.COMPLETED_ON_TIME.value, Outcome.COMPLETED_LATE.value),
        ),
    )
    rec["outcome"] = outcome
    rec["drop_reason"] = rec["notice_reason"].where(dropped, "")
    rec["path"] = rec["notice_path"].where(completed, "")
    rec = rec.drop(columns=["notice_dropped", "notice_reason", "notice_path", "dropped"])
    return rec.sort_values("query_id").reset_index(drop=True)


@dataclass
class Accounting:
    """The accounting's verdict: each disagreement in words, the queries it leaves unaccounted
    for, and the queries that reached the sink after the client had ended (their fate is known
    to the sink; no notice could reach a dead client, so that is not a disagreement)."""

    problems: list[str] = field(default_factory=list)
    unaccounted: set[int] = field(default_factory=set)
    after_client_ended: int = 0

    def add(self, ids: set[int], text: str) -> None:
        if ids:
            self.problems.append(text.format(n=len(ids), first=min(ids)))
            self.unaccounted |= ids

    def merged(self, other: Accounting) -> Accounting:
        return Accounting(
            self.problems + other.problems,
            self.unaccounted | other.unaccounted,
            self.after_client_ended + other.after_client_ended,
        )


def account(client: pd.DataFrame, sink: pd.DataFrame, meta: dict[str, Any]) -> Accounting:
    """Every disagreement between what the client saw and what the sink recorded. A query that
    reached the sink once the client's books were closed (`closed_at`: the client stopped, or
    died, first) is not one: no notice could reach it."""
    books = Accounting()
    sent_ids = set(client.loc[client["sent_at"].notna(), "query_id"].astype(int))
    if meta.get("conflicts"):
        books.problems.append(f"the client got {meta['conflicts']} conflicting notices for queries already decided")
    if meta.get("unknown"):
        books.problems.append(f"the client got {meta['unknown']} notices for queries it never sent")
    if len(sink):
        sink_ids = sink["query_id"].astype(int)
        books.add(set(sink_ids[sink_ids.duplicated()]), "{n} queries reached the sink more than once")
        books.add(set(sink_ids) - sent_ids, "{n} queries reached the sink but were never sent (e.g. id {first})")
        noticed = set(client.loc[client["notice_at"].notna(), "query_id"].astype(int))
        lost = set(sink_ids) - noticed - set(meta.get("after_close", [])) - (set(sink_ids) - sent_ids)
        closed_at = meta.get("closed_at")
        if closed_at is not None and lost:
            at = sink.drop_duplicates("query_id").set_index("query_id")["sink_at"]
            late = {i for i in lost if at[i] >= closed_at - CLOCK_SLACK_S}
            books.after_client_ended, lost = len(late), lost - late
        books.add(lost, "{n} queries reached the sink but their notice never reached the client (e.g. id {first})")
    completed = client["notice_at"].notna() & ~client["notice_dropped"].astype(bool)
    no_timeline = set(client.loc[completed, "query_id"].astype(int)) - set(
        sink["query_id"].astype(int) if len(sink) else []
    )
    books.add(no_timeline, "{n} completed queries have no sink record (e.g. id {first})")
    return books


def count_outcomes(records: pd.DataFrame) -> dict[str, int]:
    counts = records["outcome"].value_counts()
    return {o.value: int(counts.get(o.value, 0)) for o in Outcome}
