from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Tier(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIER_UNSPECIFIED: _ClassVar[Tier]
    LIGHT: _ClassVar[Tier]
    HEAVY: _ClassVar[Tier]
TIER_UNSPECIFIED: Tier
LIGHT: Tier
HEAVY: Tier

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HealthReply(_message.Message):
    __slots__ = ("role", "name", "ready", "detail", "run_id")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    role: str
    name: str
    ready: bool
    detail: str
    run_id: str
    def __init__(self, role: _Optional[str] = ..., name: _Optional[str] = ..., ready: _Optional[bool] = ..., detail: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class StartRequest(_message.Message):
    __slots__ = ("epoch",)
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    epoch: float
    def __init__(self, epoch: _Optional[float] = ...) -> None: ...

class StopRequest(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: str
    def __init__(self, reason: _Optional[str] = ...) -> None: ...

class Stage(_message.Message):
    __slots__ = ("tier", "worker", "enqueued_at", "started_at", "finished_at", "batch_size", "skipped")
    TIER_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    ENQUEUED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    tier: Tier
    worker: str
    enqueued_at: float
    started_at: float
    finished_at: float
    batch_size: int
    skipped: bool
    def __init__(self, tier: _Optional[_Union[Tier, str]] = ..., worker: _Optional[str] = ..., enqueued_at: _Optional[float] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., batch_size: _Optional[int] = ..., skipped: _Optional[bool] = ...) -> None: ...

class Query(_message.Message):
    __slots__ = ("id", "prompt_index", "sent_at", "admitted_at", "stages", "scored", "confidence", "threshold", "dropped", "drop_reason", "prompt", "image_path", "note", "tokens_done", "restarts", "replica", "output_len", "elapsed_s")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_INDEX_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    ADMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    SCORED_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    DROP_REASON_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_PATH_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_DONE_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_LEN_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_S_FIELD_NUMBER: _ClassVar[int]
    id: int
    prompt_index: int
    sent_at: float
    admitted_at: float
    stages: _containers.RepeatedCompositeFieldContainer[Stage]
    scored: bool
    confidence: float
    threshold: float
    dropped: bool
    drop_reason: str
    prompt: str
    image_path: str
    note: str
    tokens_done: int
    restarts: int
    replica: int
    output_len: int
    elapsed_s: float
    def __init__(self, id: _Optional[int] = ..., prompt_index: _Optional[int] = ..., sent_at: _Optional[float] = ..., admitted_at: _Optional[float] = ..., stages: _Optional[_Iterable[_Union[Stage, _Mapping]]] = ..., scored: _Optional[bool] = ..., confidence: _Optional[float] = ..., threshold: _Optional[float] = ..., dropped: _Optional[bool] = ..., drop_reason: _Optional[str] = ..., prompt: _Optional[str] = ..., image_path: _Optional[str] = ..., note: _Optional[str] = ..., tokens_done: _Optional[int] = ..., restarts: _Optional[int] = ..., replica: _Optional[int] = ..., output_len: _Optional[int] = ..., elapsed_s: _Optional[float] = ...) -> None: ...

class QueryBatch(_message.Message):
    __slots__ = ("queries",)
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    queries: _containers.RepeatedCompositeFieldContainer[Query]
    def __init__(self, queries: _Optional[_Iterable[_Union[Query, _Mapping]]] = ...) -> None: ...

class SubmitReply(_message.Message):
    __slots__ = ("accepted", "reason")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    reason: str
    def __init__(self, accepted: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class ForwardRequest(_message.Message):
    __slots__ = ("tier", "queries")
    TIER_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    tier: Tier
    queries: _containers.RepeatedCompositeFieldContainer[Query]
    def __init__(self, tier: _Optional[_Union[Tier, str]] = ..., queries: _Optional[_Iterable[_Union[Query, _Mapping]]] = ...) -> None: ...

class WorkerRoute(_message.Message):
    __slots__ = ("name", "address", "tier", "queue_length")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    QUEUE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    tier: Tier
    queue_length: int
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., tier: _Optional[_Union[Tier, str]] = ..., queue_length: _Optional[int] = ...) -> None: ...

class RoutingTable(_message.Message):
    __slots__ = ("plan_id", "workers", "reported_at", "heavy_share")
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    REPORTED_AT_FIELD_NUMBER: _ClassVar[int]
    HEAVY_SHARE_FIELD_NUMBER: _ClassVar[int]
    plan_id: int
    workers: _containers.RepeatedCompositeFieldContainer[WorkerRoute]
    reported_at: float
    heavy_share: float
    def __init__(self, plan_id: _Optional[int] = ..., workers: _Optional[_Iterable[_Union[WorkerRoute, _Mapping]]] = ..., reported_at: _Optional[float] = ..., heavy_share: _Optional[float] = ...) -> None: ...

class LoadBalancerStats(_message.Message):
    __slots__ = ("submitted", "forwarded", "rejected", "now")
    SUBMITTED_FIELD_NUMBER: _ClassVar[int]
    FORWARDED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    submitted: int
    forwarded: int
    rejected: int
    now: float
    def __init__(self, submitted: _Optional[int] = ..., forwarded: _Optional[int] = ..., rejected: _Optional[int] = ..., now: _Optional[float] = ...) -> None: ...

class EnqueueRequest(_message.Message):
    __slots__ = ("tier", "query")
    TIER_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    tier: Tier
    query: Query
    def __init__(self, tier: _Optional[_Union[Tier, str]] = ..., query: _Optional[_Union[Query, _Mapping]] = ...) -> None: ...

class EnqueueReply(_message.Message):
    __slots__ = ("queue_length",)
    QUEUE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    queue_length: int
    def __init__(self, queue_length: _Optional[int] = ...) -> None: ...

class WorkerConfig(_message.Message):
    __slots__ = ("plan_id", "tier", "light_batch", "heavy_batch", "threshold")
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    LIGHT_BATCH_FIELD_NUMBER: _ClassVar[int]
    HEAVY_BATCH_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    plan_id: int
    tier: Tier
    light_batch: int
    heavy_batch: int
    threshold: float
    def __init__(self, plan_id: _Optional[int] = ..., tier: _Optional[_Union[Tier, str]] = ..., light_batch: _Optional[int] = ..., heavy_batch: _Optional[int] = ..., threshold: _Optional[float] = ...) -> None: ...

class WorkerStatus(_message.Message):
    __slots__ = ("name", "tier", "queue_length", "light_queue", "heavy_queue", "enqueued", "completed", "dropped", "plan_id", "now", "busy", "running", "store_port")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIER_FIELD_NUMBER: _ClassVar[int]
    QUEUE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    LIGHT_QUEUE_FIELD_NUMBER: _ClassVar[int]
    HEAVY_QUEUE_FIELD_NUMBER: _ClassVar[int]
    ENQUEUED_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    PLAN_ID_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    BUSY_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    STORE_PORT_FIELD_NUMBER: _ClassVar[int]
    name: str
    tier: Tier
    queue_length: int
    light_queue: int
    heavy_queue: int
    enqueued: int
    completed: int
    dropped: int
    plan_id: int
    now: float
    busy: bool
    running: int
    store_port: int
    def __init__(self, name: _Optional[str] = ..., tier: _Optional[_Union[Tier, str]] = ..., queue_length: _Optional[int] = ..., light_queue: _Optional[int] = ..., heavy_queue: _Optional[int] = ..., enqueued: _Optional[int] = ..., completed: _Optional[int] = ..., dropped: _Optional[int] = ..., plan_id: _Optional[int] = ..., now: _Optional[float] = ..., busy: _Optional[bool] = ..., running: _Optional[int] = ..., store_port: _Optional[int] = ...) -> None: ...

class Notice(_message.Message):
    __slots__ = ("id", "dropped", "drop_reason", "path")
    ID_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    DROP_REASON_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    id: int
    dropped: bool
    drop_reason: str
    path: str
    def __init__(self, id: _Optional[int] = ..., dropped: _Optional[bool] = ..., drop_reason: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class NoticeBatch(_message.Message):
    __slots__ = ("notices",)
    NOTICES_FIELD_NUMBER: _ClassVar[int]
    notices: _containers.RepeatedCompositeFieldContainer[Notice]
    def __init__(self, notices: _Optional[_Iterable[_Union[Notice, _Mapping]]] = ...) -> None: ...

class ProgressReply(_message.Message):
    __slots__ = ("total", "sent", "completed", "violations", "trace_time", "rate", "done", "dropped")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    TRACE_TIME_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    total: int
    sent: int
    completed: int
    violations: int
    trace_time: float
    rate: float
    done: bool
    dropped: int
    def __init__(self, total: _Optional[int] = ..., sent: _Optional[int] = ..., completed: _Optional[int] = ..., violations: _Optional[int] = ..., trace_time: _Optional[float] = ..., rate: _Optional[float] = ..., done: _Optional[bool] = ..., dropped: _Optional[int] = ...) -> None: ...

class RegisterRequest(_message.Message):
    __slots__ = ("name", "role")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...

class BatchTiming(_message.Message):
    __slots__ = ("prefill_s", "step_s", "embed_s")
    PREFILL_S_FIELD_NUMBER: _ClassVar[int]
    STEP_S_FIELD_NUMBER: _ClassVar[int]
    EMBED_S_FIELD_NUMBER: _ClassVar[int]
    prefill_s: _containers.RepeatedScalarFieldContainer[float]
    step_s: _containers.RepeatedScalarFieldContainer[float]
    embed_s: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, prefill_s: _Optional[_Iterable[float]] = ..., step_s: _Optional[_Iterable[float]] = ..., embed_s: _Optional[_Iterable[float]] = ...) -> None: ...

class ReplicaAssignment(_message.Message):
    __slots__ = ("replica", "config", "members", "worker", "ready_at", "batch", "timing", "output_len", "tp", "pp", "reload", "transfers")
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    READY_AT_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_LEN_FIELD_NUMBER: _ClassVar[int]
    TP_FIELD_NUMBER: _ClassVar[int]
    PP_FIELD_NUMBER: _ClassVar[int]
    RELOAD_FIELD_NUMBER: _ClassVar[int]
    TRANSFERS_FIELD_NUMBER: _ClassVar[int]
    replica: int
    config: str
    members: _containers.RepeatedScalarFieldContainer[str]
    worker: str
    ready_at: float
    batch: int
    timing: BatchTiming
    output_len: int
    tp: int
    pp: int
    reload: bool
    transfers: _containers.RepeatedCompositeFieldContainer[PlannedTransfer]
    def __init__(self, replica: _Optional[int] = ..., config: _Optional[str] = ..., members: _Optional[_Iterable[str]] = ..., worker: _Optional[str] = ..., ready_at: _Optional[float] = ..., batch: _Optional[int] = ..., timing: _Optional[_Union[BatchTiming, _Mapping]] = ..., output_len: _Optional[int] = ..., tp: _Optional[int] = ..., pp: _Optional[int] = ..., reload: _Optional[bool] = ..., transfers: _Optional[_Iterable[_Union[PlannedTransfer, _Mapping]]] = ...) -> None: ...

class PlannedTransfer(_message.Message):
    __slots__ = ("kind", "layer_lo", "layer_hi", "slice", "slices", "replica", "src", "nbytes")
    KIND_FIELD_NUMBER: _ClassVar[int]
    LAYER_LO_FIELD_NUMBER: _ClassVar[int]
    LAYER_HI_FIELD_NUMBER: _ClassVar[int]
    SLICE_FIELD_NUMBER: _ClassVar[int]
    SLICES_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    SRC_FIELD_NUMBER: _ClassVar[int]
    NBYTES_FIELD_NUMBER: _ClassVar[int]
    kind: str
    layer_lo: int
    layer_hi: int
    slice: int
    slices: int
    replica: int
    src: str
    nbytes: float
    def __init__(self, kind: _Optional[str] = ..., layer_lo: _Optional[int] = ..., layer_hi: _Optional[int] = ..., slice: _Optional[int] = ..., slices: _Optional[int] = ..., replica: _Optional[int] = ..., src: _Optional[str] = ..., nbytes: _Optional[float] = ...) -> None: ...

class TransferDone(_message.Message):
    __slots__ = ("planned", "nbytes", "seconds", "blocks")
    PLANNED_FIELD_NUMBER: _ClassVar[int]
    NBYTES_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    planned: PlannedTransfer
    nbytes: float
    seconds: float
    blocks: int
    def __init__(self, planned: _Optional[_Union[PlannedTransfer, _Mapping]] = ..., nbytes: _Optional[float] = ..., seconds: _Optional[float] = ..., blocks: _Optional[int] = ...) -> None: ...

class MigrationReport(_message.Message):
    __slots__ = ("replica", "worker", "transfers", "seconds", "group_s", "ready_at")
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    TRANSFERS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    GROUP_S_FIELD_NUMBER: _ClassVar[int]
    READY_AT_FIELD_NUMBER: _ClassVar[int]
    replica: int
    worker: str
    transfers: _containers.RepeatedCompositeFieldContainer[TransferDone]
    seconds: float
    group_s: float
    ready_at: float
    def __init__(self, replica: _Optional[int] = ..., worker: _Optional[str] = ..., transfers: _Optional[_Iterable[_Union[TransferDone, _Mapping]]] = ..., seconds: _Optional[float] = ..., group_s: _Optional[float] = ..., ready_at: _Optional[float] = ...) -> None: ...

class BlockRequest(_message.Message):
    __slots__ = ("names", "kv_replica", "kv_layers", "kv_heads")
    NAMES_FIELD_NUMBER: _ClassVar[int]
    KV_REPLICA_FIELD_NUMBER: _ClassVar[int]
    KV_LAYERS_FIELD_NUMBER: _ClassVar[int]
    KV_HEADS_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    kv_replica: int
    kv_layers: _containers.RepeatedScalarFieldContainer[int]
    kv_heads: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, names: _Optional[_Iterable[str]] = ..., kv_replica: _Optional[int] = ..., kv_layers: _Optional[_Iterable[int]] = ..., kv_heads: _Optional[_Iterable[int]] = ...) -> None: ...

class BlockChunk(_message.Message):
    __slots__ = ("data", "last")
    DATA_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    last: bool
    def __init__(self, data: _Optional[bytes] = ..., last: _Optional[bool] = ...) -> None: ...

class WorkerRef(_message.Message):
    __slots__ = ("worker",)
    WORKER_FIELD_NUMBER: _ClassVar[int]
    worker: str
    def __init__(self, worker: _Optional[str] = ...) -> None: ...

class DrainRequest(_message.Message):
    __slots__ = ("replica", "deadline", "keep_progress", "optimistic")
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    KEEP_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    OPTIMISTIC_FIELD_NUMBER: _ClassVar[int]
    replica: int
    deadline: float
    keep_progress: bool
    optimistic: bool
    def __init__(self, replica: _Optional[int] = ..., deadline: _Optional[float] = ..., keep_progress: _Optional[bool] = ..., optimistic: _Optional[bool] = ...) -> None: ...

class DrainReply(_message.Message):
    __slots__ = ("replica", "requests", "tokens", "stopped")
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    STOPPED_FIELD_NUMBER: _ClassVar[int]
    replica: int
    requests: _containers.RepeatedScalarFieldContainer[int]
    tokens: int
    stopped: bool
    def __init__(self, replica: _Optional[int] = ..., requests: _Optional[_Iterable[int]] = ..., tokens: _Optional[int] = ..., stopped: _Optional[bool] = ...) -> None: ...

class NextBatchRequest(_message.Message):
    __slots__ = ("replica", "max_batch", "wait_s", "timing", "output_len", "received")
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    WAIT_S_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_LEN_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    replica: int
    max_batch: int
    wait_s: float
    timing: BatchTiming
    output_len: int
    received: int
    def __init__(self, replica: _Optional[int] = ..., max_batch: _Optional[int] = ..., wait_s: _Optional[float] = ..., timing: _Optional[_Union[BatchTiming, _Mapping]] = ..., output_len: _Optional[int] = ..., received: _Optional[int] = ...) -> None: ...

class NextBatchReply(_message.Message):
    __slots__ = ("queries", "start_step", "lease", "recompute", "started_at")
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    START_STEP_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    RECOMPUTE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    queries: _containers.RepeatedCompositeFieldContainer[Query]
    start_step: int
    lease: int
    recompute: bool
    started_at: float
    def __init__(self, queries: _Optional[_Iterable[_Union[Query, _Mapping]]] = ..., start_step: _Optional[int] = ..., lease: _Optional[int] = ..., recompute: _Optional[bool] = ..., started_at: _Optional[float] = ...) -> None: ...

class LeaseReport(_message.Message):
    __slots__ = ("lease", "finished", "tokens", "queries")
    LEASE_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    lease: int
    finished: bool
    tokens: int
    queries: _containers.RepeatedCompositeFieldContainer[Query]
    def __init__(self, lease: _Optional[int] = ..., finished: _Optional[bool] = ..., tokens: _Optional[int] = ..., queries: _Optional[_Iterable[_Union[Query, _Mapping]]] = ...) -> None: ...

class PinnedBatch(_message.Message):
    __slots__ = ("replica", "requests", "start_step")
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    START_STEP_FIELD_NUMBER: _ClassVar[int]
    replica: int
    requests: _containers.RepeatedScalarFieldContainer[int]
    start_step: int
    def __init__(self, replica: _Optional[int] = ..., requests: _Optional[_Iterable[int]] = ..., start_step: _Optional[int] = ...) -> None: ...

class RequeueRequest(_message.Message):
    __slots__ = ("pinned", "restarted")
    PINNED_FIELD_NUMBER: _ClassVar[int]
    RESTARTED_FIELD_NUMBER: _ClassVar[int]
    pinned: _containers.RepeatedCompositeFieldContainer[PinnedBatch]
    restarted: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, pinned: _Optional[_Iterable[_Union[PinnedBatch, _Mapping]]] = ..., restarted: _Optional[_Iterable[int]] = ...) -> None: ...

class GoneRequest(_message.Message):
    __slots__ = ("replicas", "at")
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    replicas: _containers.RepeatedScalarFieldContainer[int]
    at: float
    def __init__(self, replicas: _Optional[_Iterable[int]] = ..., at: _Optional[float] = ...) -> None: ...

class PoolStats(_message.Message):
    __slots__ = ("submitted", "waiting", "pinned", "now", "leased", "held", "resumable")
    SUBMITTED_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    LEASED_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    RESUMABLE_FIELD_NUMBER: _ClassVar[int]
    submitted: int
    waiting: int
    pinned: int
    now: float
    leased: int
    held: int
    resumable: int
    def __init__(self, submitted: _Optional[int] = ..., waiting: _Optional[int] = ..., pinned: _Optional[int] = ..., now: _Optional[float] = ..., leased: _Optional[int] = ..., held: _Optional[int] = ..., resumable: _Optional[int] = ...) -> None: ...
