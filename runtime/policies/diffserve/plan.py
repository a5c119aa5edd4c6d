"""What a DiffServe approach decides, what it decides from, and the base class of approaches.

An approach is a small object whose `plan(observation)` returns an `AllocationPlan`; the
controller role applies the plan (tells each worker its tier, batch sizes and the threshold,
and the load balancer its routing table). Approaches never talk to workers themselves.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from runtime.profiles import batch_latency_s
from runtime.schema.diffserve import CascadeConfig, DiffServeApproachConfig


@dataclass(frozen=True)
class AllocationPlan:
    """A cascade configuration for the GPU workers that are alive.

    | field          | applied to            | meaning                                           |
    | -------------- | --------------------- | ------------------------------------------------- |
    | light_workers  | worker tiers          | workers that run the light model                  |
    | heavy_workers  | worker tiers          | workers that run the heavy model                  |
    | light_batch    | light workers         | max batch a light worker forms                    |
    | heavy_batch    | heavy workers         | max batch a heavy worker forms                    |
    | threshold      | light workers         | defer a query whose confidence is below this      |
    | heavy_share    | load balancer         | share of new queries sent straight to heavy at    |
    |                |                       | random, no discriminator (proteus; else 0)        |
    | feasible       | decision log only     | False when no plan met every constraint           |
    | reason         | decision log only     | why this plan (e.g. the fallback, a static plan)  |
    """

    light_workers: int
    heavy_workers: int
    light_batch: int
    heavy_batch: int
    threshold: float
    feasible: bool = True
    reason: str = ""
    heavy_share: float = 0.0


@dataclass(frozen=True)
class Observation:
    """What the controller knows when it plans (trace seconds, queries per second)."""

    now: float
    workers: int  # GPU workers alive (the sink is not one)
    demand_qps: float = 0.0  # estimated arrival rate
    light_queue: float = 0.0  # queries waiting at light workers (last heartbeat)
    heavy_queue: float = 0.0  # queries waiting at heavy workers (last heartbeat)
    inflight: float = 0.0  # queries admitted and not yet finished (the artifact's demand)
    artifact_waits_s: tuple[float, float] = (0.0, 0.0)  # the artifact's queueing delay per tier (demand.py)


class Approach(ABC):
    """Base of every DiffServe approach; subclasses set `name` and implement `plan`."""

    name: ClassVar[str]

    def __init__(self, cascade: CascadeConfig, config: DiffServeApproachConfig) -> None:
        self.cascade = cascade
        self.config = config

    @abstractmethod
    def plan(self, obs: Observation) -> AllocationPlan:
        """The plan for the workers alive in `obs`."""

    def required_workers(self, workers: int) -> int:
        """GPU workers this approach's plan needs when `workers` exist (checked before a run)."""
        return 1

    def light_batch(self) -> int:
        return self.config.light_batch or slo_batch(self.cascade, "light", self.config.batch_sizes)

    def heavy_batch(self) -> int:
        return self.config.heavy_batch or slo_batch(self.cascade, "heavy", self.config.batch_sizes)


def slo_batch(cascade: CascadeConfig, tier: str, batch_sizes: list[int]) -> int:
    """Largest allowed batch of `tier` such that waiting for one batch and running one fits the
    SLO (2 x latency <= SLO); the smallest allowed batch when none does. This is the default of
    the fixed-batch approaches: the highest throughput that does not violate the SLO by itself."""
    model = cascade.light if tier == "light" else cascade.heavy
    allowed = profiled_batches(model.profile.batch_sizes, batch_sizes)
    fitting = [
        b
        for b in allowed
        if 2 * batch_latency_s(model.profile.batch_sizes, model.profile.latency_ms, b) <= cascade.slo_s
    ]
    return fitting[-1] if fitting else allowed[0]


def profiled_batches(profiled: list[int], allowed: list[int]) -> list[int]:
    """The allowed batch sizes a model was profiled up to (ascending): a batch beyond the largest
    profiled size has no measured latency (the artifact marks SDXL batch 32 infeasible)."""
    usable = sorted(b for b in allowed if b <= max(profiled))
    return usable or [min(profiled)]
