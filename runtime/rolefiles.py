"""The files a role leaves in its directory, written from its core's books by the gRPC role at
its end and by the virtual-clock engine, so that one analysis reads both clocks' runs; and the
journals (runtime.journal) the client and the sink keep as they go, from which the same books
are rebuilt when the role was killed before its end.

Client journal events: ["s", i, sent_at], ["f", i, grpc code] (submit failed),
["n", i, dropped, reason, path, at] (notice), ["c", at] (books closed). Sink journal: its rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runtime.cores.client import ClientCore
from runtime.cores.sink import SinkCore
from runtime.cores.spotserve.pool import RequestPoolCore
from runtime.journal import read
from runtime.tables import RowGroups, write_rows, write_table

CLIENT_FILE = "client.parquet"
CLIENT_META_FILE = "client_meta.json"
SINK_FILE = "sink.parquet"
DECISIONS_FILE = "decisions.parquet"
TICKS_FILE = "ticks.parquet"
TRANSFERS_FILE = "transfers.parquet"
POOL_FILE = "pool.json"
CLIENT_JOURNAL = "client.journal.jsonl"
SINK_JOURNAL = "sink.journal.jsonl"


def write_client(core: ClientCore, out_dir: Path) -> None:
    write_client_meta(core, out_dir)
    write_table(core.table(), out_dir / CLIENT_FILE)


def write_client_meta(core: ClientCore, out_dir: Path) -> None:
    (out_dir / CLIENT_META_FILE).write_text(json.dumps(core.meta()), encoding="utf-8")


SPILL_ROWS = 1 << 18  # a virtual run's sink writes its rows in row groups of this many


def spilling_sink(out_dir: Path) -> SinkCore:
    """A sink core whose rows leave for out_dir/sink.parquet in row groups as they fill, so a
    virtual run of any length holds at most SPILL_ROWS of them (`write_sink` adds the rest)."""
    return SinkCore(spill=RowGroups(out_dir / SINK_FILE), spill_every=SPILL_ROWS)


def write_sink(core: SinkCore, out_dir: Path) -> None:
    """out_dir/sink.parquet: the rows the sink holds, after those it spilled (spilling_sink)."""
    groups = core.spill if isinstance(core.spill, RowGroups) else RowGroups(out_dir / SINK_FILE)
    groups.close(core.columns.take())


def write_controller(decisions: list[dict[str, Any]], ticks: list[dict[str, Any]], out_dir: Path) -> None:
    write_rows(decisions, out_dir / DECISIONS_FILE)
    write_rows(ticks, out_dir / TICKS_FILE)


def write_pool(pool: RequestPoolCore, out_dir: Path) -> None:
    """What the SpotServe pool still holds at the end: the unfinished requests, by place."""
    state = {"counts": pool.counts(), "held_ids": sorted(pool.held_ids())}
    (out_dir / POOL_FILE).write_text(json.dumps(state), encoding="utf-8")


def replay_client(core: ClientCore, journal: Path) -> ClientCore:
    """`core` (fresh, over the run's trace) brought to where the client's journal left it; its
    books are closed, at its last event when the client died first (a notice sent later could
    not reach it)."""
    last = 0.0
    for event in read(journal):
        kind, args = event[0], event[1:]
        if kind == "s":
            last = float(args[1])
            core.send(int(args[0]), last)
        elif kind == "f":
            core.submit_failed(int(args[0]), str(args[1]))
        elif kind == "n":
            last = float(args[4])
            core.notice(int(args[0]), bool(args[1]), str(args[2]), str(args[3]), last)
        elif kind == "c":
            core.close(float(args[0]))
    core.close(last)
    return core


def sink_rows(journal: Path) -> list[dict[str, Any]]:
    """The sink's rows as its journal holds them."""
    return [row for row in read(journal) if isinstance(row, dict)]
