"""Records and accounting: every sent query gets exactly one outcome, and disagreements between
the client and the sink are reported."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orchestrator.metrics import percentile, slo_violation_ratio, summarize
from orchestrator.results import account, count_outcomes, merge_records
from orchestrator.systems.diffserve.metrics import light_fraction
from runtime.exceptions import RunFailedError
from tests.conftest import compose_config


def client_frame(rows: list[tuple[int, float | None, float | None, bool, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "query_id": i,
                "prompt_index": i,
                "arrival_s": float(i),
                "sent_at": sent,
                "notice_at": notice,
                "notice_dropped": dropped,
                "notice_reason": reason,
                "notice_path": path,
            }
            for i, sent, notice, dropped, reason, path in rows
        ]
    )


def sink_frame(ids: list[int], dropped: list[int] | None = None) -> pd.DataFrame:
    dropped = dropped or []
    return pd.DataFrame(
        {
            "query_id": ids,
            "sink_at": [1.0] * len(ids),
            "dropped": [i in dropped for i in ids],
            "light_worker": "worker-0",
        }
    )


CLIENT = client_frame(
    [
        (0, 0.0, 1.0, False, "", "light"),  # on time
        (1, 1.0, 9.0, False, "", "heavy"),  # late (8 s > 5 s)
        (2, 2.0, 3.0, True, "slo_unreachable", ""),  # dropped by a worker
        (3, 3.0, None, False, "", ""),  # unfinished
        (4, 4.0, 4.1, True, "no_worker", ""),  # refused by the load balancer (never at the sink)
        (5, None, None, False, "", ""),  # never sent (run stopped early)
    ]
)


def test_each_sent_query_has_exactly_one_outcome() -> None:
    rec = merge_records(CLIENT, sink_frame([0, 1, 2], dropped=[2]), slo_s=5.0)
    assert list(rec["query_id"]) == [0, 1, 2, 3, 4]
    assert list(rec["outcome"]) == ["completed_on_time", "completed_late", "dropped", "unfinished", "dropped"]
    assert list(rec["drop_reason"]) == ["", "", "slo_unreachable", "", "no_worker"]
    assert list(rec["path"]) == ["light", "heavy", "", "", ""]
    assert rec.loc[0, "latency_s"] == 1.0 and rec.loc[1, "latency_s"] == 8.0 and math.isnan(rec.loc[2, "latency_s"])
    assert count_outcomes(rec) == {"completed_on_time": 1, "completed_late": 1, "dropped": 2, "unfinished": 1}
    books = account(CLIENT, sink_frame([0, 1, 2], dropped=[2]), {})
    assert books.problems == [] and books.unaccounted == set()


def test_a_failed_submit_without_notice_is_a_drop() -> None:
    client = client_frame([(0, 0.0, None, False, "", ""), (1, 1.0, 2.0, False, "", "light")])
    client["submit_error"] = ["DEADLINE_EXCEEDED", "DEADLINE_EXCEEDED"]  # the second got through anyway
    rec = merge_records(client, sink_frame([1]), slo_s=5.0)
    assert list(rec["outcome"]) == ["dropped", "completed_on_time"]
    assert rec.loc[0, "drop_reason"] == "submit_failed"


def test_disagreements_are_reported() -> None:
    books = account(CLIENT, sink_frame([0, 1, 2, 2, 3, 99]), {"conflicts": 2, "repeats": 5})
    text = " ".join(books.problems)
    assert "2 conflicting notices" in text and "repeat" not in text
    assert "1 queries reached the sink more than once" in text
    assert "never sent (e.g. id 99)" in text
    assert "notice never reached the client (e.g. id 3)" in text
    assert books.unaccounted == {2, 3, 99}
    missing = account(CLIENT, sink_frame([1, 2]), {})
    assert any("completed queries have no sink record (e.g. id 0)" in p for p in missing.problems)
    assert missing.unaccounted == {0}


def test_a_dead_client_missing_notices_is_not_a_disagreement() -> None:
    """Queries that reached the sink after the client ended: the sink knows their fate."""
    sink = sink_frame([0, 1, 2, 3])
    sink.loc[3, "sink_at"] = 9.5  # query 3 reached the sink at 9.5 s, the client had closed its books at 9 s
    books = account(CLIENT, sink, {"closed_at": 9.0})
    assert books.problems == [] and books.after_client_ended == 1


def test_summary_from_records() -> None:
    rec = merge_records(CLIENT, sink_frame([0, 1, 2], dropped=[2]), slo_s=5.0)
    s = summarize(rec)
    assert s["queries_sent"] == 5
    assert s["slo_violation_ratio"] == pytest.approx(4 / 5)
    assert light_fraction(rec) == pytest.approx(0.5)
    assert s["drop_reasons"] == {"slo_unreachable": 1, "no_worker": 1}
    assert s["latency_p50_s"] == 1.0 and s["latency_p99_s"] == 8.0


def test_nearest_rank_percentile_by_hand() -> None:
    values = np.arange(1, 101, dtype=float)  # 1..100
    assert percentile(values, 50) == 50 and percentile(values, 99) == 99 and percentile(values, 100) == 100
    assert percentile(np.array([3.0, 1.0, 2.0]), 50) == 2.0
    assert percentile(np.array([1.0, 2.0, 3.0, 4.0]), 90) == 4.0  # rank ceil(0.9 * 4) = 4
    assert math.isnan(percentile(np.array([]), 50))
    assert slo_violation_ratio({"completed_on_time": 3, "completed_late": 1, "dropped": 0, "unfinished": 0}) == 0.25


def test_progress_line_shows_violations_with_an_slo_and_requests_in_flight_without() -> None:
    from types import SimpleNamespace

    from orchestrator.progress import line
    from orchestrator.systems import get_system

    p = SimpleNamespace(trace_time=12.0, sent=40, total=100, rate=3.5, completed=30, violations=3, dropped=2)
    ds = line(p, get_system("diffserve").progress_outcome, 100.0, 10.0, 2.0)
    # trace time against the end and its share, the wall time left ((100 - 12 + 10) / 2 s), drops apart
    assert ds.startswith("t=  12.0/100s   12%  ETA 49s  sent 40/100")
    assert ds.endswith("done 28  dropped 2  violations 3 (10.0%)")
    assert line(p, get_system("spotserve").progress_outcome, 100.0, 0.0, 1.0).endswith("in flight 10")
    p.trace_time, p.sent = 104.0, 100
    assert line(p, get_system("diffserve").progress_outcome, 100.0, 10.0, 2.0).startswith("draining  100%  ETA 3s")


def test_results_and_figures_come_from_whatever_the_roles_left(tmp_path: Path) -> None:
    """A controller killed before it wrote its logs (no decisions, no ticks): the results are
    computed from the rest, the figures drawn (the threshold unknown), no traceback."""
    from orchestrator.experiment import results_of, run_experiment

    overrides = (
        "cascade=sdxs",
        "trace=1to8qps",
        "trace.duration_s=30",
        "clock=virtual",
        "hostfile.workers=4",
        "tracking.enabled=false",
        "run.progress=false",
        f"paths.output_dir={tmp_path}",
    )
    run_dir = tmp_path / "run"
    run_experiment(compose_config(*overrides), run_dir)
    for f in (run_dir / "roles" / "controller").iterdir():
        f.unlink()
    result = results_of(compose_config(*overrides), run_dir)
    s = result.summary
    assert s["partial"] and s["queries_sent"] > 0 and s["plans"] == 0
    assert {p.name for p in (run_dir / "figures").iterdir()} >= {"threshold.png", "slo_violation_ratio.png", "fid.png"}
    assert not list(run_dir.glob(".*.tmp"))


# ----------------------------------------------------------------------------- exit codes


@pytest.mark.parametrize(
    ("changes", "error", "text"),
    [
        ({"accounting_problems": ["3 completed queries have no sink row"]}, "AccountingError", "accounting failed"),
        ({"missing_files": ["roles/sink/sink.parquet"], "partial": True}, "PartialRunError", "sink.parquet missing"),
        (
            {"queries_lost": 289, "lost_reasons": {"submit_failed": 289}},
            "LostQueriesError",
            "289 of 310 queries were lost by the testbed (289 submit_failed)",
        ),
        ({"partial": True}, "PartialRunError", "a role ended before the run did"),
        ({"tracking": "the store is down"}, "TrackingError", "python -m orchestrator.log"),
    ],
)
def test_a_run_that_lost_something_fails_with_its_result(changes: dict, error: str, text: str) -> None:
    """`_checked`: a whole run passes through; anything lost is an error that carries the
    result (the command prints the summary, then the one line, and exits 1)."""
    from orchestrator import experiment

    whole = {
        "queries_sent": 310,
        "queries_lost": 0,
        "lost_reasons": {},
        "partial": False,
        "missing_files": [],
        "accounting_problems": [],
    }
    ok = experiment.RunResult(Path("/run"), whole, "abc")
    assert experiment._checked(ok) is ok
    tracking_error = changes.pop("tracking", None)
    bad = experiment.RunResult(Path("/run"), {**whole, **changes}, "abc", tracking_error)
    with pytest.raises(RunFailedError) as caught:
        experiment._checked(bad)
    assert type(caught.value).__name__ == error and text in str(caught.value)
    assert caught.value.result is bad
