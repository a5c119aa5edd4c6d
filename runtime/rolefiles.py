"""The files a role leaves in its directory, written from its core's books by the gRPC role at
its end and by the virtual-clock engine, so that one analysis reads both clocks' runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runtime.cores.client import ClientCore
from runtime.cores.sink import SinkCore
from runtime.cores.spotserve.pool import RequestPoolCore
from runtime.tables import write_rows

CLIENT_FILE = "client.parquet"
CLIENT_META_FILE = "client_meta.json"
SINK_FILE = "sink.parquet"
DECISIONS_FILE = "decisions.parquet"
TICKS_FILE = "ticks.parquet"
POOL_FILE = "pool.json"


def write_client(core: ClientCore, out_dir: Path) -> None:
    write_client_meta(core, out_dir)
    write_rows(core.rows(), out_dir / CLIENT_FILE)


def write_client_meta(core: ClientCore, out_dir: Path) -> None:
    (out_dir / CLIENT_META_FILE).write_text(json.dumps(core.meta()), encoding="utf-8")


def write_sink(core: SinkCore, out_dir: Path) -> None:
    write_rows(core.rows, out_dir / SINK_FILE)


def write_controller(decisions: list[dict[str, Any]], ticks: list[dict[str, Any]], out_dir: Path) -> None:
    write_rows(decisions, out_dir / DECISIONS_FILE)
    write_rows(ticks, out_dir / TICKS_FILE)


def write_pool(pool: RequestPoolCore, out_dir: Path) -> None:
    """What the SpotServe pool still holds at the end: the unfinished requests, by place."""
    state = {"counts": pool.counts(), "held_ids": sorted(pool.held_ids())}
    (out_dir / POOL_FILE).write_text(json.dumps(state), encoding="utf-8")
