"""Sink role: the end of every pipeline, a gRPC shell over `SinkCore`. It records each completed
or dropped query with its timeline and tells the client."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc

from runtime import rolefiles
from runtime.cores.sink import SinkCore
from runtime.journal import Journal
from runtime.outbox import Outbox
from runtime.protos import servelab_pb2 as pb
from runtime.protos import servelab_pb2_grpc as pbg
from runtime.query import Notice, Query, from_pb, notice_to_pb
from runtime.roles.base import Role, Servicer
from runtime.schema import Config
from runtime.spec import RunSpec


class SinkRole(Role[Config]):
    schema = Config
    role = "sink"

    def __init__(self, spec: RunSpec, name: str, out_dir: Path) -> None:
        super().__init__(spec, name, out_dir)
        self.lock = threading.Lock()
        self.core = SinkCore()
        self.journal = Journal(out_dir / rolefiles.SINK_JOURNAL, self.config.run.journal_sync_s)
        client = pbg.ClientStub(self.channel_to(spec.only("client").name))
        self.to_client: Outbox[Notice] = Outbox(
            "client",
            lambda ns: client.Notify(pb.NoticeBatch(notices=map(notice_to_pb, ns)), timeout=self.rpc_timeout),
            self.log,
            1024,
        )

    def servicers(self) -> list[Servicer]:
        return [(pbg.add_SinkServicer_to_server, _SinkService(self))]

    def complete(self, queries: list[Query]) -> None:
        with self.lock:
            duplicates, known = self.core.duplicates, len(self.core)
            notices = self.core.complete(queries, self.clock.now())
            self.journal.add(*self.core.rows_since(known))  # before the client hears of them
            if self.core.duplicates > duplicates:
                self.log.warning("%d queries reached the sink twice", self.core.duplicates - duplicates)
        self.to_client.put(notices)

    def finish(self) -> None:
        self.to_client.close(timeout=3.0)
        with self.lock:
            rolefiles.write_sink(self.core, self.out_dir)
            self.journal.close()
            self.journal.path.unlink()  # sink.parquet holds the same rows
            c = self.core
            self.log.info("Wrote the sink's rows <rows=%d duplicates=%d repeats=%d>", len(c), c.duplicates, c.repeats)


class _SinkService(pbg.SinkServicer):
    def __init__(self, sink: SinkRole) -> None:
        self.s = sink

    def Complete(self, request: pb.QueryBatch, context: grpc.ServicerContext) -> pb.Empty:
        self.s.complete([from_pb(q) for q in request.queries])
        return pb.Empty()
