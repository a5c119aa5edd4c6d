"""Arrivals every system replays: an `ArrivalTrace` (sorted trace seconds and one index per
query: a DiffServe prompt, a SpotServe request id) and the file the client reads, in the
DiffServe artifact's `arrival_ms,prompt_index` format (unsorted lines, floats allowed)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime.exceptions import TraceFormatError
from runtime.schema import MAX_TRACE_S


@dataclass(frozen=True)
class ArrivalTrace:
    """Arrivals sorted by time: trace seconds and the prompt index of each query."""

    name: str
    arrival_s: np.ndarray
    prompt_index: np.ndarray

    def __len__(self) -> int:
        return int(self.arrival_s.size)

    @property
    def duration_s(self) -> float:
        return float(self.arrival_s[-1]) if len(self) else 0.0

    def rate_per_window(self, window_s: float) -> np.ndarray:
        """Mean arrivals per second in consecutive windows of `window_s` seconds."""
        if not len(self):
            return np.zeros(0)
        edges = np.arange(0.0, self.duration_s + window_s, window_s)
        counts, _ = np.histogram(self.arrival_s, bins=edges)
        return counts / window_s


# Prompt indices are read as floats (the artifact writes some as 12.0): past 2^53 they are not exact.
MAX_PROMPT_INDEX = 2**53


def read_artifact(path: str | Path, name: str | None = None) -> ArrivalTrace:
    """Read the artifact's format: one `arrival_ms,prompt_index` per line, unsorted, floats allowed."""
    p = Path(path)
    if not p.is_file():
        raise TraceFormatError(f"trace.path: no such file: {p}")
    times: list[float] = []
    prompts: list[int] = []
    with p.open(encoding="utf-8", errors="replace") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line:
                continue
            parts = line.split(",")
            try:
                if len(parts) != 2:
                    raise ValueError
                ms, idx = float(parts[0]), float(parts[1])
                if not (np.isfinite(ms) and ms >= 0 and 0 <= idx < MAX_PROMPT_INDEX and idx == int(idx)):
                    raise ValueError
            except ValueError:
                raise TraceFormatError(
                    f"{p}:{lineno}: expected 'arrival_ms,prompt_index' with arrival_ms >= 0 "
                    f"and an integer 0 <= prompt_index < 2^53, got {line[:60]!r}"
                ) from None
            if ms / 1000.0 > MAX_TRACE_S:
                raise TraceFormatError(
                    f"{p}:{lineno}: arrival at {ms:g} ms is beyond {MAX_TRACE_S:g} s (a week), "
                    "the longest trace a run replays"
                )
            times.append(ms / 1000.0)
            prompts.append(int(idx))
    if not times:
        raise TraceFormatError(f"{p}: the trace has no arrivals")
    order = np.argsort(np.asarray(times), kind="stable")
    return ArrivalTrace(
        name=name or p.stem,
        arrival_s=np.asarray(times)[order],
        prompt_index=np.asarray(prompts, dtype=np.int64)[order],
    )


def write_artifact(trace: ArrivalTrace, path: str | Path) -> None:
    """Write `trace` in the artifact's format (sorted, milliseconds with 3 decimals)."""
    lines = (f"{t * 1000.0:.3f},{int(i)}" for t, i in zip(trace.arrival_s, trace.prompt_index, strict=True))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
