"""A DiffServe worker's core: its queues, batch formation, the drop rule and deferral.

One FIFO per tier (after a tier switch a worker still finishes the queries it accepted for
the old tier). `take_batch(now)` pops the next work-conserving batch (runtime/policies/
diffserve/batcher.py) and sets aside the queries the drop rule gives up on; `finish_batch`
turns the executor's results into what goes where: a light result below the threshold back
to the load balancer for the heavy tier, everything else to the sink. A query's age comes from
its `elapsed_s` (time at earlier stages) plus the time since this worker admitted it, both on
this worker's clock, so clock skew between hosts never drops a query.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from runtime.executors.base import BatchItem, ItemResult
from runtime.policies.diffserve.batcher import next_batch
from runtime.policies.diffserve.rules import defers, keeps_light_result, kept_light_note, should_drop
from runtime.protos import servelab_pb2 as pb
from runtime.query import Query, Stage, float32
from runtime.records import HEAVY, LIGHT, DropReason, Tier

TIER_PB = {Tier.LIGHT: pb.LIGHT, Tier.HEAVY: pb.HEAVY, Tier.IDLE: pb.TIER_UNSPECIFIED}


@dataclass(slots=True)  # not frozen: made every tick, and a frozen one costs 3x (executors/base.py)
class WorkerSetting:
    """What the controller tells one worker.

    | field        | meaning                                         |
    | ------------ | ----------------------------------------------- |
    | plan_id      | the plan this setting belongs to                |
    | tier         | the model new queries of this worker should get |
    | light_batch  | max batch of light queries                      |
    | heavy_batch  | max batch of heavy queries                      |
    | threshold    | defer a light result whose confidence is below  |
    """

    plan_id: int
    tier: Tier
    light_batch: int
    heavy_batch: int
    threshold: float


@dataclass(slots=True)  # not frozen: it costs three times as much to make (executors/base.py)
class WorkerReport:
    """What a heartbeat brings back from a worker."""

    queue_length: int
    light_queue: int
    heavy_queue: int
    running: int


@dataclass(slots=True)
class Queued:
    query: Query
    enqueued_at: float


@dataclass(slots=True)
class Batch:
    """A batch taken off the queues: the items to run and the queries the drop rule set aside
    (dropped, or a deferred one keeping its light result), which go to the sink at once."""

    tier: Tier
    items: list[Queued]
    started_at: float
    settled: list[Query] = field(default_factory=list)
    latency_s: float = 0.0  # what `items` are expected to take (the executor's profile)

    def batch_items(self) -> list[BatchItem]:
        return [BatchItem(i.query.id, i.query.prompt_index, i.query.prompt) for i in self.items]


@dataclass(slots=True)
class BatchOutput:
    to_sink: list[Query]
    to_heavy: list[Query]


class WorkerCore:
    def __init__(self, name: str, slo_s: float, drop_factor: float, latency_s: Callable[[Tier, int], float]) -> None:
        self.name = name
        self.slo_s = slo_s
        self.drop_factor = drop_factor
        self.latency_s = latency_s
        self.queues: dict[Tier, deque[Queued]] = {Tier.LIGHT: deque(), Tier.HEAVY: deque()}
        self._light, self._heavy = self.queues[Tier.LIGHT], self.queues[Tier.HEAVY]
        self.tier = Tier.IDLE
        self.max_batch = {Tier.LIGHT: 1, Tier.HEAVY: 1}
        self.threshold = 0.0
        self.plan_id = -1
        self.enqueued = self.completed = self.dropped = 0
        self.repeats = 0  # enqueues of a query this worker already took for that tier (a retry)
        self.running: Batch | None = None
        # (query id, tier) of every enqueue taken, as one int (id * 2 + tier): a tuple cost 3x
        self._taken: set[int] = set()

    # ------------------------------------------------------------------ inputs
    def enqueue(self, tier: Tier, query: Query, now: float) -> int:
        """Admit a query for `tier`; returns this worker's queue length. Idempotent: the load
        balancer retries an enqueue whose outcome it did not learn, and a query this worker
        already took for `tier` is not queued twice."""
        heavy = tier is HEAVY
        key = query.id * 2 + heavy
        if key in self._taken:
            self.repeats += 1
            return self.queued
        self._taken.add(key)
        (self._heavy if heavy else self._light).append(Queued(query, now))
        self.enqueued += 1
        return len(self._light) + len(self._heavy)

    def configure(self, setting: WorkerSetting) -> None:
        """Take a setting, unless it belongs to an older plan than the one in use (settings are
        sent without waiting, so two may cross)."""
        if setting.plan_id < self.plan_id:
            return
        self.tier = setting.tier
        self.max_batch = {Tier.LIGHT: setting.light_batch, Tier.HEAVY: setting.heavy_batch}
        self.threshold = setting.threshold
        self.plan_id = setting.plan_id

    @property
    def queued(self) -> int:
        return len(self._light) + len(self._heavy)

    def report(self) -> WorkerReport:
        light, heavy = len(self._light), len(self._heavy)
        running = len(self.running.items) if self.running is not None else 0
        return WorkerReport(light + heavy, light, heavy, running)

    # ------------------------------------------------------------------ batches
    def take_batch(self, now: float) -> Batch | None:
        """The next batch (None when nothing waits). Its `items` may be empty when the drop rule
        set every query aside; the worker is busy with it until `finish_batch`."""
        popped = next_batch(self.queues, self.max_batch)
        if popped is None:
            return None
        tier, queued = popped
        batch = Batch(tier, [], now)
        latency = self.latency_s(tier, len(queued))
        slo_s, factor = self.slo_s, self.drop_factor
        for item in queued:
            age = item.query.elapsed_s + (now - item.enqueued_at)
            if should_drop(age, latency, slo_s, factor):
                batch.settled.append(self._settle(item, tier, now))
            else:
                batch.items.append(item)
        keep = batch.items
        if keep:  # the drop rule's latency, unless it set some aside
            batch.latency_s = latency if len(keep) == len(queued) else self.latency_s(tier, len(keep))
        self.running = batch if keep else None
        return batch

    def _settle(self, item: Queued, tier: Tier, now: float) -> Query:
        q = item.query
        # A stage that never ran (it left the queue at `now`): the record still says
        # which worker took the query in and when, as the artifact's controller counts it.
        q.stages.append(Stage(TIER_PB[tier], self.name, item.enqueued_at, finished_at=now, skipped=True))
        if tier is Tier.HEAVY and keeps_light_result(q.scored):
            q.note = kept_light_note(DropReason.SLO_UNREACHABLE.value)
        else:
            q.dropped, q.drop_reason = True, DropReason.SLO_UNREACHABLE.value
            self.dropped += 1
        q.elapsed_s += now - item.enqueued_at
        return q

    def finish_batch(self, batch: Batch, results: list[ItemResult], now: float) -> BatchOutput:
        """The batch ran until `now` with `results` (one per item, in order)."""
        self.running = None
        to_sink: list[Query] = []
        to_heavy: list[Query] = []
        stage_tier, size, name, started = TIER_PB[batch.tier], len(batch.items), self.name, batch.started_at
        light = batch.tier is LIGHT
        threshold, threshold32 = self.threshold, float32(self.threshold)
        if len(results) != size:
            raise ValueError(f"worker {name}: {len(results)} results for a batch of {size}")
        for item, result in zip(batch.items, results):  # noqa: B905 (checked above; the keyword costs 0.1 µs)
            q, enqueued_at = item.query, item.enqueued_at
            q.stages.append(Stage(stage_tier, name, enqueued_at, started, now, size))
            q.elapsed_s += now - enqueued_at
            if result.image_path:
                q.image_path = result.image_path
            confidence = result.confidence
            if light and confidence is not None:
                # float32, as the wire holds them: the record is the same on both clocks
                q.scored, q.confidence, q.threshold = True, float32(confidence), threshold32
                if defers(confidence, threshold):
                    to_heavy.append(q)
                    continue
            to_sink.append(q)
        self.completed += len(batch.items)
        return BatchOutput(to_sink, to_heavy)

    def fail_batch(self, batch: Batch) -> list[Query]:
        """The executor raised: every query of the batch is dropped (execution_failed)."""
        self.running = None
        for item in batch.items:
            item.query.dropped, item.query.drop_reason = True, DropReason.EXECUTION_FAILED.value
        self.dropped += len(batch.items)
        return [i.query for i in batch.items]
