"""Sink role: the end of the cascade. It receives every completed or dropped query with its
timeline, keeps one row per query for the records, and tells the client."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import grpc

from runtime.outbox import Outbox
from runtime.protos import servelab_pb2 as pb
from runtime.protos import servelab_pb2_grpc as pbg
from runtime.records import Tier
from runtime.roles.base import Role, Servicer
from runtime.rpc import TIER_FROM_PB
from runtime.spec import RunSpec
from runtime.tables import write_rows

SINK_FILE = "sink.parquet"


def query_row(q: pb.Query, sink_at: float) -> dict[str, Any]:
    """A query's timeline as one flat row (one column set per tier)."""
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
        "attempts": len(q.stages),
        "first_started_at": q.stages[0].started_at if q.stages else None,
    }
    for tier in (Tier.LIGHT, Tier.HEAVY):
        stage = next((s for s in q.stages if TIER_FROM_PB[s.tier] is tier), None)
        p = tier.value
        row[f"{p}_worker"] = stage.worker if stage else None
        row[f"{p}_enqueued_at"] = stage.enqueued_at if stage else None
        row[f"{p}_started_at"] = stage.started_at if stage else None
        row[f"{p}_finished_at"] = stage.finished_at if stage else None
        row[f"{p}_batch_size"] = stage.batch_size if stage else None
    return row


def served_path(q: pb.Query) -> str:
    """The tier whose image the user got: the last stage that ran, or '' if none did (or the
    stage has no tier, as in SpotServe)."""
    if not q.stages or q.dropped or q.stages[-1].tier == pb.TIER_UNSPECIFIED:
        return ""
    return TIER_FROM_PB[q.stages[-1].tier].value


class SinkRole(Role):
    role = "sink"

    def __init__(self, spec: RunSpec, name: str, out_dir: Path) -> None:
        super().__init__(spec, name, out_dir)
        self.lock = threading.Lock()
        self.rows: list[dict[str, Any]] = []
        self.seen: dict[int, tuple[int, float, bool]] = {}
        self.duplicates = 0
        self.repeats = 0
        client = pbg.ClientStub(self.channel_to(spec.only("client").name))
        self.to_client: Outbox[pb.Notice] = Outbox(
            "client", lambda ns: client.Notify(pb.NoticeBatch(notices=ns), timeout=self.rpc_timeout), self.log, 1024
        )

    def servicers(self) -> list[Servicer]:
        return [(pbg.add_SinkServicer_to_server, _SinkService(self))]

    def complete(self, queries: list[pb.Query]) -> None:
        now = self.clock.now()
        notices = []
        with self.lock:
            for q in queries:
                fingerprint = (len(q.stages), q.stages[-1].finished_at if q.stages else -1.0, q.dropped)
                known = self.seen.get(q.id)
                if known == fingerprint:
                    self.repeats += 1  # a retried delivery of what we already have
                    continue
                if known is not None:
                    self.duplicates += 1  # a second, different ending: a real double count
                    self.log.warning("Query reached the sink twice <id=%d>", q.id)
                self.seen[q.id] = fingerprint
                self.rows.append(query_row(q, now))
                notices.append(pb.Notice(id=q.id, dropped=q.dropped, drop_reason=q.drop_reason, path=served_path(q)))
        self.to_client.put(notices)

    def finish(self) -> None:
        self.to_client.close(timeout=3.0)
        with self.lock:
            write_rows(self.rows, self.out_dir / SINK_FILE)
        self.log.info(
            "Wrote %s <rows=%d duplicates=%d repeats=%d>", SINK_FILE, len(self.rows), self.duplicates, self.repeats
        )


class _SinkService(pbg.SinkServicer):
    def __init__(self, sink: SinkRole) -> None:
        self.s = sink

    def Complete(self, request: pb.QueryBatch, context: grpc.ServicerContext) -> pb.Empty:
        self.s.complete(list(request.queries))
        return pb.Empty()
