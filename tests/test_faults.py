"""Faults injected into real wall runs (benchmarks/faults.py prints the whole table): every row
must account for every query it can and leave no process of the run behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import faults

pytestmark = pytest.mark.slow


def test_kill_9_of_the_sink_loses_no_record(tmp_path: Path) -> None:
    row = faults.kill_role("sink", tmp_path)
    assert row.exit_code == 1 and row.left == 0
    assert row.unaccounted == 0, "every notice the client got has its sink row (the sink journals first)"
    assert "sink.parquet" in row.note


def test_kill_9_of_the_client_keeps_its_books(tmp_path: Path) -> None:
    row = faults.kill_role("client", tmp_path)
    assert row.exit_code == 1 and row.left == 0 and row.unaccounted == 0
    assert "client.parquet" in row.note
    summary = json.loads(next(tmp_path.glob("*/runs/*/summary.json")).read_text())
    assert summary["partial"] and summary["queries_sent"] >= 20, "the sends before the kill were recovered"


def test_sigkill_of_the_orchestrator_leaves_nothing_running(tmp_path: Path) -> None:
    row = faults.kill_orchestrator(tmp_path, lease_s=4.0)
    assert row.left == 0 and row.detected_s is not None, "every role stopped by itself"
    assert row.unaccounted == 0, row.note
    summary = json.loads(next(tmp_path.glob("*/runs/*/summary.json")).read_text())
    assert summary["partial"] and summary["queries_sent"] >= 20


def test_ctrl_c_twice_stops_everything_and_exits_130(tmp_path: Path) -> None:
    row = faults.double_interrupt(tmp_path)
    assert row.exit_code == 130 and row.left == 0 and row.unaccounted == 0
    assert row.note == "second one held off"


def test_ctrl_c_while_spotserve_workers_start(tmp_path: Path) -> None:
    row = faults.interrupt_while_starting(tmp_path)
    assert row.exit_code == 130 and row.left == 0 and row.note == "no records yet"


def test_a_call_without_the_run_token_is_refused(tmp_path: Path) -> None:
    row = faults.unauthenticated_stop(tmp_path)
    assert row.note == "refused: UNAUTHENTICATED"
    assert row.exit_code == 0 and row.unaccounted == 0 and row.unfinished == 0 and row.left == 0
