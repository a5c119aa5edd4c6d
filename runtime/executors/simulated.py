"""Simulated execution: a batch takes the profiled latency of its actual size (interpolated),
plus the discriminator's time on the light tier, and the confidence of each query comes from
the per-prompt table. Sleeping goes through the injected `sleep`, so the clock decides what a
second is; the virtual clock asks for `expected_latency_s` and `results` instead of sleeping."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from runtime.executors.base import BatchItem, ItemResult
from runtime.profiles import batch_latency_s
from runtime.records import LIGHT, Tier
from runtime.schema.diffserve import CascadeConfig


def profiled_latency_s(cascade: CascadeConfig, tier: Tier, batch: int) -> float:
    """The profiled time of one batch of `tier`, with the discriminator on the light tier."""
    model = cascade.light if tier is Tier.LIGHT else cascade.heavy
    latency = batch_latency_s(model.profile.batch_sizes, model.profile.latency_ms, batch)
    if tier is Tier.LIGHT:
        latency += cascade.discriminator.latency_ms / 1000.0
    return latency


class SimulatedExecutor:
    def __init__(self, cascade: CascadeConfig, confidence: np.ndarray, sleep: Callable[[float], None]) -> None:
        self.cascade = cascade
        self.confidence = confidence
        # Each prompt's result, made once: a batch's results are looked up, not made (the
        # virtual clock asks for them on every batch; a worker only reads them).
        light, heavy = cascade.light.name, cascade.heavy.name
        self._light_results = [ItemResult(s, "", light) for s in confidence.tolist()]
        self._heavy_result = ItemResult(None, "", heavy)
        self._sleep = sleep
        self._latency: dict[tuple[Tier, int], float] = {}  # the profile interpolated once per batch size

    def expected_latency_s(self, tier: Tier, batch: int) -> float:
        key = (tier, batch)
        if key not in self._latency:
            self._latency[key] = profiled_latency_s(self.cascade, tier, batch)
        return self._latency[key]

    def execute(self, tier: Tier, items: list[BatchItem]) -> list[ItemResult]:
        self._sleep(self.expected_latency_s(tier, len(items)))
        return self.results(tier, [i.prompt_index for i in items])

    def results(self, tier: Tier, prompt_indexes: list[int]) -> list[ItemResult]:
        """What a batch of these prompts yields, without the wait (the virtual clock schedules
        the wait itself, and needs no BatchItem)."""
        if tier is LIGHT:
            light = self._light_results
            return [light[i] for i in prompt_indexes]
        return [self._heavy_result] * len(prompt_indexes)
