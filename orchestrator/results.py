"""From the roles' files to one record per query, and the accounting check.

The client knows every query it sent and how its notice came back; the sink knows the
timeline of every query that reached the end of the cascade. `merge_records` joins them on
the query id and decides each query's outcome (docs/metrics.md); `accounting_problems`
lists every way the two disagree, so that a run that lost or double-counted a query says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from runtime.records import DropReason, Outcome

SINK_COLUMNS = [
    "query_id", "admitted_at", "sink_at", "dropped", "drop_reason", "confidence", "threshold", "image_path", "note",
    "light_worker", "light_enqueued_at", "light_started_at", "light_finished_at", "light_batch_size",
    "heavy_worker", "heavy_enqueued_at", "heavy_started_at", "heavy_finished_at", "heavy_batch_size",
]  # fmt: skip


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


def accounting_problems(client: pd.DataFrame, sink: pd.DataFrame, meta: dict[str, Any]) -> list[str]:
    """Every disagreement between what the client saw and what the sink recorded."""
    problems: list[str] = []
    sent_ids = set(client.loc[client["sent_at"].notna(), "query_id"].astype(int))
    if meta.get("conflicts"):
        problems.append(f"the client got {meta['conflicts']} conflicting notices for queries already decided")
    if meta.get("unknown"):
        problems.append(f"the client got {meta['unknown']} notices for queries it never sent")
    if len(sink):
        sink_ids = sink["query_id"].astype(int)
        dup = int(sink_ids.duplicated().sum())
        if dup:
            problems.append(f"{dup} queries reached the sink more than once")
        stray = set(sink_ids) - sent_ids
        if stray:
            problems.append(f"{len(stray)} queries reached the sink but were never sent (e.g. id {min(stray)})")
        noticed = set(client.loc[client["notice_at"].notna(), "query_id"].astype(int))
        lost = set(sink_ids) - noticed - set(meta.get("after_close", []))
        if lost:
            problems.append(
                f"{len(lost)} queries reached the sink but their notice never reached the client (e.g. id {min(lost)})"
            )
    completed = client["notice_at"].notna() & ~client["notice_dropped"].astype(bool)
    no_timeline = set(client.loc[completed, "query_id"].astype(int)) - set(
        sink["query_id"].astype(int) if len(sink) else []
    )
    if no_timeline:
        problems.append(f"{len(no_timeline)} completed queries have no sink record (e.g. id {min(no_timeline)})")
    return problems


def count_outcomes(records: pd.DataFrame) -> dict[str, int]:
    counts = records["outcome"].value_counts()
    return {o.value: int(counts.get(o.value, 0)) for o in Outcome}
