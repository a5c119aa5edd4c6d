"""The executor interface a worker calls for each batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from runtime.records import Tier


# Slotted, not frozen: a frozen dataclass costs three times as much to make (0.40 against 0.13
# µs, measured), and the virtual clock makes two of these a query a stage.
@dataclass(slots=True)
class BatchItem:
    """What an executor needs of one query."""

    query_id: int
    prompt_index: int
    prompt: str = ""


@dataclass(slots=True)
class ItemResult:
    """What an executor returns for one query: the light tier's confidence, and where the
    image was saved (real execution with save_images)."""

    confidence: float | None = None
    image_path: str = ""
    model: str = ""


class Executor(Protocol):
    def expected_latency_s(self, tier: Tier, batch: int) -> float:
        """Trace seconds a batch of this size is expected to take (the drop rule uses it)."""
        ...

    def execute(self, tier: Tier, items: list[BatchItem]) -> list[ItemResult]:
        """Run one batch (blocking) and return one result per item, in order."""
        ...
