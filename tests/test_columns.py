"""Records as typed columns (runtime/columns.py): the same table as rows of dicts would give, a
few hundred bytes a query, and the same Parquet file whether the sink spilled row groups or not."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from runtime import rolefiles
from runtime.columns import Columns, IdSet
from runtime.cores.sink import SINK_COLUMNS, SinkCore
from runtime.protos import servelab_pb2 as pb
from runtime.query import Query, Stage

KINDS = {"i": "int", "f": "float", "b": "bool", "s": "str"}


def random_rows(n: int, seed: int = 0) -> list[dict[str, object]]:
    rng = random.Random(seed)
    return [
        {
            "i": rng.choice([None, rng.randrange(-5, 1 << 40)]),
            "f": rng.choice([None, rng.uniform(-1, 1)]),
            "b": rng.random() < 0.5,
            "s": rng.choice([None, "", "light", "heavy", f"w{rng.randrange(3)}"]),
        }
        for _ in range(n)
    ]


def test_columns_give_the_table_rows_of_dicts_give() -> None:
    rows = random_rows(10_000)
    columns = Columns(KINDS)  # type: ignore[arg-type]
    for row in rows:
        columns.append(row)
    expected = pa.Table.from_pylist(rows, schema=columns.schema())
    assert columns.table().equals(expected)
    assert list(columns.rows(9_990)) == rows[9_990:]
    first = columns.take()
    assert first.equals(expected) and len(columns) == 0
    columns.append(rows[0])
    assert columns.table().to_pylist() == rows[:1]


def test_an_empty_column_set_gives_an_empty_table_with_its_schema() -> None:
    columns = Columns(KINDS)  # type: ignore[arg-type]
    assert len(columns.table()) == 0 and columns.table().schema == columns.schema()


def test_id_set_is_a_set() -> None:
    rng = random.Random(1)
    ids, plain = IdSet(), set()
    for _ in range(20_000):
        qid = rng.choice([rng.randrange(5_000), rng.randrange(-3, 0), (1 << 40) + rng.randrange(3)])
        assert ids.add(qid) == (qid not in plain)
        plain.add(qid)
        assert qid in ids
    assert all((q in ids) == (q in plain) for q in range(-5, 6_000))


def query(i: int) -> Query:
    q = Query(id=i, prompt_index=i % 7, sent_at=i * 0.1, admitted_at=i * 0.1 + 0.01)
    q.stages.append(
        Stage(pb.LIGHT, f"worker-{i % 3}", enqueued_at=i * 0.1, started_at=i * 0.1, finished_at=i * 0.1 + 1)
    )
    if i % 2:
        q.scored, q.confidence, q.threshold = True, 0.25, 0.5
        q.stages.append(Stage(pb.HEAVY, "worker-9", enqueued_at=i * 0.1 + 1, finished_at=i * 0.1 + 2, skipped=True))
    if i % 5 == 0:
        q.dropped, q.drop_reason = True, "slo_unreachable"
    return q


def test_a_spilling_sink_writes_the_file_a_holding_sink_writes(tmp_path: Path) -> None:
    held, spilled = SinkCore(), rolefiles.spilling_sink(tmp_path / "spilled")
    spilled.spill_every = 1_000
    for start in range(0, 10_500, 100):
        batch = [query(i) for i in range(start, start + 100)]
        held.complete(batch, start * 0.1 + 3)
        spilled.complete(batch, start * 0.1 + 3)
    assert len(spilled.columns) < 1_000 and len(spilled) == len(held) == 10_500
    rolefiles.write_sink(held, tmp_path / "held")
    rolefiles.write_sink(spilled, tmp_path / "spilled")
    a = pq.read_table(tmp_path / "held" / rolefiles.SINK_FILE)
    b = pq.ParquetFile(tmp_path / "spilled" / rolefiles.SINK_FILE)
    assert b.metadata.num_row_groups == 11
    assert a.equals(b.read())
    row = a.slice(1, 1).to_pylist()[0]
    assert row["heavy_worker"] == "worker-9" and row["heavy_started_at"] is None and row["attempts"] == 1


def test_a_sink_row_costs_what_its_values_take() -> None:
    """26 columns at 8 bytes a number, 4 a string code, 1 a flag: about 200 bytes a query
    (a dict a row cost about 2.4 KB)."""
    sink = SinkCore()
    sink.complete([query(i) for i in range(5_000)], 1.0)
    sink.columns.settle()
    held = sum(column.itemsize * len(column) for column in sink.columns.data.values())
    assert len(sink.columns.data) == len(SINK_COLUMNS) == 26
    assert held / len(sink) <= 200


def test_a_repeat_is_not_a_duplicate_and_a_different_ending_is() -> None:
    sink = SinkCore()
    q = query(3)
    assert len(sink.complete([q], 1.0)) == 1
    assert sink.complete([q], 2.0) == [] and sink.repeats == 1
    q.dropped = not q.dropped
    assert len(sink.complete([q], 3.0)) == 1 and sink.duplicates == 1
    far = query(5)
    far.id = 1 << 40  # outside the dense range: still told apart
    sink.complete([far, far], 4.0)
    assert sink.repeats == 2 and len(sink) == 3
