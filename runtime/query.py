"""A query's record in flight: what the client sends, what every stage stamps on it and what the
sink keeps, as plain Python objects. The cores and the engine work on these; protobuf
(runtime/protos) is only the wire between roles, and each role converts at its gRPC edge
(`to_pb`, `from_pb`).

Why not the protobuf messages themselves: on the virtual clock a query is stamped a dozen times
and never leaves the process, and a protobuf field costs about five times a slot to read or
write (39 against 7 ns), a message 0.36 µs to make and a stage 0.33 µs to add (measured 2026-12-06); plain objects made
the engine about 12 % faster with the same records (benchmarks/engine.py).

The fields are the wire's, one for one (a test compares them with servelab.proto's), and hold
what the wire would: `confidence` and `threshold` are float32 there, so a core rounds them with
`float32()` when it sets them, and a record is the same on both clocks.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from runtime.protos import servelab_pb2 as pb

_F32 = struct.Struct("<f")
_pack, _unpack = _F32.pack, _F32.unpack


def float32(value: float) -> float:
    """`value` as a float32 field keeps it (unpacked, a Python float)."""
    return _unpack(_pack(value))[0]


@dataclass(slots=True)
class Stage:
    """One stage a query went through (a batch on a worker, or a queue it left unrun)."""

    tier: int = 0  # a pb.Tier value
    worker: str = ""
    enqueued_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    batch_size: int = 0
    skipped: bool = False  # taken into the queue, never run (set aside by the drop rule)


@dataclass(slots=True)
class Query:
    """servelab.proto's `Query`: see its comments for what each field means."""

    id: int = 0
    prompt_index: int = 0
    sent_at: float = 0.0
    admitted_at: float = 0.0
    stages: list[Stage] = field(default_factory=list)
    scored: bool = False
    confidence: float = 0.0  # float32 (float32())
    threshold: float = 0.0  # float32 (float32())
    dropped: bool = False
    drop_reason: str = ""
    prompt: str = ""
    image_path: str = ""
    note: str = ""
    tokens_done: int = 0
    restarts: int = 0
    replica: int = 0
    output_len: int = 0
    elapsed_s: float = 0.0


@dataclass(slots=True)  # not frozen: it costs three times as much to make (executors/base.py)
class Notice:
    """What the sink tells the client of one query."""

    id: int
    dropped: bool
    drop_reason: str
    path: str  # "light" | "heavy" | ""


STAGE_FIELDS = tuple(Stage.__dataclass_fields__)
QUERY_FIELDS = tuple(Query.__dataclass_fields__)
_SCALARS = tuple(f for f in QUERY_FIELDS if f != "stages")


def from_pb(message: pb.Query) -> Query:
    q = Query(**{f: getattr(message, f) for f in _SCALARS})
    q.stages = [Stage(*(getattr(s, f) for f in STAGE_FIELDS)) for s in message.stages]
    return q


def to_pb(query: Query) -> pb.Query:
    message = pb.Query(**{f: getattr(query, f) for f in _SCALARS})
    message.stages.extend(pb.Stage(**{f: getattr(s, f) for f in STAGE_FIELDS}) for s in query.stages)
    return message


def notice_to_pb(notice: Notice) -> pb.Notice:
    return pb.Notice(id=notice.id, dropped=notice.dropped, drop_reason=notice.drop_reason, path=notice.path)
