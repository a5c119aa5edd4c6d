"""SpotServe traces: instance availability (events, readers, alive timeline, instance-hours) and
the LLM request stream (seeded generator and the artifact's query-file reader).

Availability is a list of `AvailabilityEvent`s in time order that ends with one `end` event:
`add`/`remove` name the instances (4-GPU hosts) that join or leave, `tpt` changes the throughput
the configuration optimizer must meet, `end` stops the run. Three sources give the same list:
the `trace.availability` config (`availability_from_config`), the artifact's JSON-lines segments
(`read_availability_jsonl`) and a window of its full g4dn spot trace (`read_g4dn_csv`). All three
replay the events against the set of alive instances and refuse an impossible one (removing an
instance that is not alive, adding one twice), so everything downstream may assume a valid list.

Requests: `generate_requests` draws inter-arrival times from a seeded generator. For `gamma`,
`cv` is the real coefficient of variation of the gaps (shape k = 1/cv^2, scale = mean/k); the
artifact's generator used its "cv" as the gamma scale in milliseconds, so its "cv6" files are
nearly periodic (real CV about 0.05). Pure data code: no logging, files only in the readers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from runtime.exceptions import ConfigError, TraceFormatError
from runtime.schema import MAX_TRACE_S
from runtime.schema.spotserve import AvailabilityEventConfig, ModelConfig, SpotServeTraceConfig

OPS = ("add", "remove", "tpt", "end")
# The artifact's op names and ours: "other" only changes the required throughput, "DONE" ends the run.
ARTIFACT_OPS = {"add": "add", "remove": "remove", "other": "tpt", "DONE": "end"}
DISTRIBUTIONS = ("gamma", "poisson")


# --------------------------------------------------------------------------- availability


@dataclass(frozen=True)
class AvailabilityEvent:
    """One change of the fleet or of the target, at trace second `at_s`.

    | op     | instances            | ondemand                     | required_tpt           |
    | ------ | -------------------- | ---------------------------- | ---------------------- |
    | add    | the ones that join   | True: priced on-demand       | None; see split_start  |
    | remove | the ones that leave  | False                        | None                   |
    | tpt    | ()                   | False                        | new target, req/s > 0  |
    | end    | ()                   | False                        | None                   |
    """

    at_s: float
    op: str
    instances: tuple[str, ...] = ()
    ondemand: bool = False
    required_tpt: float | None = None


class Segment(NamedTuple):
    """A stretch of time with a constant fleet: [start_s, end_s) and its instance counts."""

    start_s: float
    end_s: float
    spot: int
    ondemand: int


class _Replay:
    """The alive set while events are applied in order; `problem` says why an event cannot be."""

    def __init__(self) -> None:
        self.alive: dict[str, bool] = {}  # name -> on-demand, in order of acquisition
        self.last_at = 0.0
        self.ended = False

    def problem(self, e: AvailabilityEvent) -> tuple[str, str] | None:
        """(field, message) of the first thing wrong with `e` here, or None (then `e` is applied)."""
        found = next(self._problems(e), None)
        if found is None:
            self._apply(e)
        return found

    def _problems(self, e: AvailabilityEvent) -> Iterator[tuple[str, str]]:
        """What is wrong with `e`, most basic first (the caller reports only the first)."""
        if self.ended:
            yield "", "no event may follow the end event"
        if not math.isfinite(e.at_s) or e.at_s < 0:
            yield "at_s", f"must be a time >= 0 (got {e.at_s})"
        if e.at_s > MAX_TRACE_S:
            yield "at_s", f"{e.at_s:g} s is beyond {MAX_TRACE_S:g} s (a week), the longest trace a run replays"
        if e.at_s < self.last_at:
            yield "at_s", f"events must be in time order ({e.at_s} comes after {self.last_at})"
        if e.op not in OPS:
            yield "op", f"unknown op {e.op!r} (allowed: {', '.join(OPS)})"
        if e.op in ("add", "remove"):
            yield from self._fleet_problems(e)
            return
        if e.instances:
            yield "instances", f"op {e.op} takes no instances (got {list(e.instances)})"
        if e.ondemand:
            yield "ondemand", "only op add marks instances on-demand"
        if e.op == "tpt" and not (e.required_tpt is not None and e.required_tpt > 0):
            yield "required_tpt", f"op tpt needs required_tpt > 0 (got {e.required_tpt})"
        if e.op == "end" and e.required_tpt is not None:
            yield "required_tpt", "only op tpt carries required_tpt"

    def _fleet_problems(self, e: AvailabilityEvent) -> Iterator[tuple[str, str]]:
        if not e.instances:
            yield "instances", f"op {e.op} needs at least one instance"
        if len(set(e.instances)) != len(e.instances):
            yield "instances", f"an instance is named twice (got {list(e.instances)})"
        if e.required_tpt is not None:
            yield "required_tpt", "only op tpt carries required_tpt"
        if e.op == "remove" and e.ondemand:
            yield "ondemand", "only op add marks instances on-demand"
        for name in e.instances:
            if e.op == "add" and name in self.alive:
                yield "instances", f"cannot add {name!r}: it is already alive"
            if e.op == "remove" and name not in self.alive:
                yield "instances", f"cannot remove {name!r}: it is not alive (alive: {', '.join(self.alive) or 'none'})"

    def _apply(self, e: AvailabilityEvent) -> None:
        self.last_at = e.at_s
        if e.op == "add":
            self.alive.update(dict.fromkeys(e.instances, e.ondemand))
        elif e.op == "remove":
            for name in e.instances:
                del self.alive[name]
        elif e.op == "end":
            self.ended = True

    def counts(self) -> tuple[int, int]:
        ondemand = sum(self.alive.values())
        return len(self.alive) - ondemand, ondemand


def availability_from_config(events: Sequence[AvailabilityEventConfig]) -> list[AvailabilityEvent]:
    """The events of `trace.availability`, checked; a ConfigError names `trace.availability[i]`."""
    replay = _Replay()
    out: list[AvailabilityEvent] = []
    for i, c in enumerate(events):
        event = AvailabilityEvent(
            at_s=float(c.at_s),
            op=c.op,
            instances=tuple(c.instances),
            ondemand=bool(c.ondemand),
            required_tpt=None if c.required_tpt is None else float(c.required_tpt),
        )
        found = replay.problem(event)
        if found is not None:
            field, message = found
            key = f"trace.availability[{i}]" + (f".{field}" if field else "")
            raise ConfigError(f"{key}: {message}")
        out.append(event)
    if not replay.ended:
        raise ConfigError("trace.availability: the last event must be op end (when the run stops)")
    return out


def availability_to_config(events: Sequence[AvailabilityEvent]) -> list[AvailabilityEventConfig]:
    """The inverse of `availability_from_config`: events as `trace.availability` entries."""
    return [
        AvailabilityEventConfig(
            at_s=e.at_s, op=e.op, instances=list(e.instances), ondemand=e.ondemand, required_tpt=e.required_tpt
        )
        for e in events
    ]


def _open_lines(path: str | Path) -> tuple[Path, list[str]]:
    p = Path(path)
    if not p.is_file():
        raise TraceFormatError(f"{p}: no such file")
    return p, p.read_text(encoding="utf-8", errors="replace").splitlines()


def _artifact_events(p: Path, lineno: int, line: str) -> list[AvailabilityEvent]:
    """The events of one artifact line `[t_ms, op, {"nodes": [...], "required_tpt": x?}]`."""

    def bad(why: str) -> TraceFormatError:
        return TraceFormatError(f"{p}:{lineno}: {why}, got {line[:80]!r}")

    try:
        item: Any = json.loads(line)
    except json.JSONDecodeError:
        raise bad('expected a JSON array [t_ms, op, {"nodes": [...]}]') from None
    if not (isinstance(item, list) and len(item) == 3 and isinstance(item[2], dict)):
        raise bad('expected a JSON array [t_ms, op, {"nodes": [...]}]')
    t_ms, op, body = item
    if isinstance(t_ms, bool) or not isinstance(t_ms, int | float):
        raise bad("t_ms must be a number")
    if op not in ARTIFACT_OPS:
        raise bad(f"unknown op {op!r} (allowed: {', '.join(ARTIFACT_OPS)})")
    nodes = body.get("nodes", [])
    if not (isinstance(nodes, list) and all(isinstance(n, str) for n in nodes)):
        raise bad('"nodes" must be a list of names')
    tpt = body.get("required_tpt")
    if tpt is not None and (isinstance(tpt, bool) or not isinstance(tpt, int | float)):
        raise bad('"required_tpt" must be a number')
    at_s = float(t_ms) / 1000.0
    ours = ARTIFACT_OPS[op]
    tpt_event = [] if tpt is None else [AvailabilityEvent(at_s, "tpt", required_tpt=float(tpt))]
    if ours == "tpt":
        return [AvailabilityEvent(at_s, "tpt", tuple(nodes), required_tpt=None if tpt is None else float(tpt))]
    if ours == "end":
        # DONE may list the hosts still mapped; the end of the run releases them all anyway.
        return [*tpt_event, AvailabilityEvent(at_s, "end")]
    # An add/remove carrying required_tpt becomes two events: the new target first, so that the
    # plan for this fleet change already uses it (the artifact updates the target, then plans).
    return [*tpt_event, AvailabilityEvent(at_s, ours, tuple(nodes))]


def read_availability_jsonl(path: str | Path) -> list[AvailabilityEvent]:
    """Read an artifact availability segment (`trace_seg/*.txt`): JSON lines, `#` comments, ms."""
    p, lines = _open_lines(path)
    replay = _Replay()
    out: list[AvailabilityEvent] = []
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        for event in _artifact_events(p, lineno, line):
            found = replay.problem(event)
            if found is not None:
                raise TraceFormatError(f"{p}:{lineno}: {found[1]}")
            out.append(event)
    if not replay.ended:
        raise TraceFormatError(f"{p}: no DONE line (the end of the run)")
    return out


def _g4dn_rows(p: Path, lines: list[str]) -> list[tuple[float, str, str]]:
    """(t_s, op, node) of every row of a `t_ms,add|remove,nodeN` file, replayed for sense."""
    replay = _Replay()
    rows: list[tuple[float, str, str]] = []
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [s.strip() for s in line.split(",")]
        try:
            if len(parts) != 3 or not parts[2]:
                raise ValueError
            t_s = float(parts[0]) / 1000.0
        except ValueError:
            raise TraceFormatError(f"{p}:{lineno}: expected 't_ms,add|remove,node', got {line[:80]!r}") from None
        if parts[1] not in ("add", "remove"):
            raise TraceFormatError(f"{p}:{lineno}: unknown op {parts[1]!r} (allowed: add, remove)")
        found = replay.problem(AvailabilityEvent(t_s, parts[1], (parts[2],)))
        if found is not None:
            raise TraceFormatError(f"{p}:{lineno}: {found[1]}")
        rows.append((t_s, parts[1], parts[2]))
    if not rows:
        raise TraceFormatError(f"{p}: no events")
    return rows


def read_g4dn_csv(
    path: str | Path, start_s: float | None = None, end_s: float | None = None
) -> list[AvailabilityEvent]:
    """A window [start_s, end_s) of the artifact's full spot trace (`t_ms,add|remove,nodeN` rows).

    Times are rebased to the window start. The instances alive at the start (after every row at
    or before it) become one add at 0; rows inside the window keep their order, rows at the same
    time and op merge into one event; an `end` closes the window. Defaults: the first and last
    row times of the file.
    """
    p, lines = _open_lines(path)
    rows = _g4dn_rows(p, lines)
    first, last = rows[0][0], rows[-1][0]
    start = first if start_s is None else float(start_s)
    end = last if end_s is None else float(end_s)
    key = "trace.availability_window_s"
    if not (0 <= start < end):
        raise ConfigError(f"{key}: the window needs 0 <= start_s < end_s (got start_s={start:g}, end_s={end:g})")
    if end > last:
        raise ConfigError(f"{key}: [{start:g}, {end:g}] ends after {p.name} does (its rows span {first:g}-{last:g} s)")
    alive: dict[str, None] = {}
    out: list[AvailabilityEvent] = []
    for t_s, op, node in rows:
        if t_s <= start:
            if op == "add":
                alive[node] = None
            else:
                del alive[node]
            continue
        if t_s >= end:
            break
        at = t_s - start
        if out and out[-1].at_s == at and out[-1].op == op:
            out[-1] = AvailabilityEvent(at, op, (*out[-1].instances, node))
        else:
            out.append(AvailabilityEvent(at, op, (node,)))
    head = [AvailabilityEvent(0.0, "add", tuple(alive))] if alive else []
    return [*head, *out, AvailabilityEvent(end - start, "end")]


def alive_timeline(events: Sequence[AvailabilityEvent]) -> list[Segment]:
    """Constant-fleet stretches from the first event to the end event (adjacent equal ones merged).

    Each segment's counts are the fleet after every event at its start time. A ValueError names
    the first event that cannot be applied (the readers and the config check already refuse them).
    """
    replay = _Replay()
    segments: list[Segment] = []
    for i, e in enumerate(events):
        if i and e.at_s > replay.last_at:
            spot, ondemand = replay.counts()
            if segments and segments[-1].end_s == replay.last_at and segments[-1][2:] == (spot, ondemand):
                segments[-1] = segments[-1]._replace(end_s=e.at_s)
            else:
                segments.append(Segment(replay.last_at, e.at_s, spot, ondemand))
        found = replay.problem(e)
        if found is not None:
            raise ValueError(f"availability event {i}: {found[1]}")
    if not replay.ended:
        raise ValueError("availability events: the last event must be op end")
    return segments


def instance_hours(events: Sequence[AvailabilityEvent]) -> tuple[float, float]:
    """(spot, on-demand) instance-hours from the first event to the end: the cost's input."""
    spot = ondemand = 0.0
    for seg in alive_timeline(events):
        spot += (seg.end_s - seg.start_s) * seg.spot
        ondemand += (seg.end_s - seg.start_s) * seg.ondemand
    return spot / 3600.0, ondemand / 3600.0


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class RequestTrace:
    """LLM requests sorted by arrival: id, trace seconds, prompt and generated tokens of each."""

    ids: np.ndarray
    arrival_s: np.ndarray
    input_len: np.ndarray
    output_len: np.ndarray

    def __len__(self) -> int:
        return int(self.arrival_s.size)

    @property
    def duration_s(self) -> float:
        return float(self.arrival_s[-1]) if len(self) else 0.0

    def interarrival_cv(self) -> float:
        """Coefficient of variation (std/mean) of the gaps between arrivals, the first from 0."""
        gaps = np.diff(self.arrival_s, prepend=0.0)
        return float(gaps.std() / gaps.mean()) if gaps.size > 1 and gaps.mean() > 0 else 0.0


def _unit_gaps(rng: np.random.Generator, distribution: str, cv: float, n: int) -> np.ndarray:
    """n inter-arrival times of mean 1 whose coefficient of variation is `cv` (1 for poisson)."""
    if distribution == "poisson":
        return rng.exponential(1.0, n)
    shape = 1.0 / (cv * cv)
    return rng.gamma(shape, 1.0 / shape, n)


def generate_requests(
    rate_rps: float | None,
    duration_s: float,
    distribution: str,
    cv: float,
    seed: int,
    input_len: int,
    output_len: int,
    rates_per_minute: Sequence[float] | None = None,
) -> RequestTrace:
    """Arrivals in (0, duration_s) at `rate_rps`, or at rates_per_minute[m] during minute m.

    Each gap is drawn at the rate of the minute its previous arrival falls in (after the last
    listed minute the last rate holds). `poisson` draws exponential gaps and ignores `cv`;
    `gamma` draws gaps of shape 1/cv^2 and scale mean*cv^2, so `cv` is the gaps' real CV.
    """
    rates = [float(r) for r in rates_per_minute] if rates_per_minute else []
    if not rates and not (rate_rps is not None and rate_rps > 0):
        raise ConfigError(f"trace.requests.rate_rps: must be > 0 (got {rate_rps})")
    if any(not r > 0 for r in rates):
        raise ConfigError(f"trace.requests.rates_per_minute: every rate must be > 0 (got {rates})")
    if distribution not in DISTRIBUTIONS:
        raise ConfigError(
            f"trace.requests.distribution: unknown distribution {distribution!r} (allowed: {', '.join(DISTRIBUTIONS)})"
        )
    if distribution == "gamma" and not cv > 0:
        raise ConfigError(f"trace.requests.cv: must be > 0 (got {cv})")
    if not duration_s > 0:
        raise ConfigError(f"trace.duration_s: must be > 0 (got {duration_s})")
    if input_len < 1 or output_len < 1:
        raise ConfigError(f"trace.requests: input_len and output_len must be >= 1 (got {input_len}, {output_len})")
    rng = np.random.default_rng(seed)
    if rates:
        arrival = _piecewise_arrivals(rng, distribution, cv, rates, duration_s)
    else:
        assert rate_rps is not None
        arrival = _constant_arrivals(rng, distribution, cv, rate_rps, duration_s)
    n = arrival.size
    return RequestTrace(
        ids=np.arange(n, dtype=np.int64),
        arrival_s=arrival,
        input_len=np.full(n, input_len, dtype=np.int64),
        output_len=np.full(n, output_len, dtype=np.int64),
    )


def _constant_arrivals(
    rng: np.random.Generator, distribution: str, cv: float, rate: float, duration_s: float
) -> np.ndarray:
    expected = rate * duration_s
    chunks: list[np.ndarray] = []
    t = 0.0
    while t < duration_s:
        gaps = _unit_gaps(rng, distribution, cv, int(expected * 1.1) + 64) / rate
        times = t + np.cumsum(gaps)
        chunks.append(times)
        t = float(times[-1])
    arrival = np.concatenate(chunks)
    return arrival[arrival < duration_s]


def _piecewise_arrivals(
    rng: np.random.Generator, distribution: str, cv: float, rates: list[float], duration_s: float
) -> np.ndarray:
    times: list[float] = []
    t = 0.0
    pool = _unit_gaps(rng, distribution, cv, 256)
    used = 0
    while True:
        if used == pool.size:
            pool, used = _unit_gaps(rng, distribution, cv, 256), 0
        rate = rates[min(int(t // 60.0), len(rates) - 1)]
        t += float(pool[used]) / rate
        used += 1
        if t >= duration_s:
            return np.asarray(times, dtype=float)
        times.append(t)


def read_requests(path: str | Path, output_len: int = 128) -> RequestTrace:
    """Read an artifact query trace (`id,arrival_s,input_len,byte_offset` per line, seconds).

    The byte offset points into the artifact's prompt file and is not kept; every request
    generates `output_len` tokens (the artifact's FasterTransformer config says 128).
    """
    p, lines = _open_lines(path)
    ids: list[int] = []
    times: list[float] = []
    inputs: list[int] = []
    seen: set[int] = set()
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        parts = line.split(",")
        try:
            if len(parts) != 4:
                raise ValueError
            rid, t, n_in, offset = int(parts[0]), float(parts[1]), int(parts[2]), int(parts[3])
            if not (
                math.isfinite(t)
                and 0 <= t <= MAX_TRACE_S
                and 1 <= n_in < 2**31
                and 0 <= offset < 2**63
                and 0 <= rid < 2**63
            ):
                raise ValueError
        except ValueError:
            raise TraceFormatError(
                f"{p}:{lineno}: expected 'id,arrival_s,input_len,byte_offset' with 0 <= arrival_s <= "
                f"{MAX_TRACE_S:g} (a week), 1 <= input_len < 2^31 and id, byte_offset in [0, 2^63), got {line[:80]!r}"
            ) from None
        if rid in seen:
            raise TraceFormatError(f"{p}:{lineno}: request id {rid} appears twice")
        seen.add(rid)
        ids.append(rid)
        times.append(t)
        inputs.append(n_in)
    if not times:
        raise TraceFormatError(f"{p}: the trace has no requests")
    order = np.argsort(np.asarray(times), kind="stable")
    return RequestTrace(
        ids=np.asarray(ids, dtype=np.int64)[order],
        arrival_s=np.asarray(times, dtype=float)[order],
        input_len=np.asarray(inputs, dtype=np.int64)[order],
        output_len=np.full(len(times), output_len, dtype=np.int64),
    )


def load_availability(trace: SpotServeTraceConfig) -> list[AvailabilityEvent]:
    """The run's availability events: `trace.availability_path` (an artifact JSON-lines segment,
    or the full `g4dn.csv`) when set, else the events written in the trace config."""
    if trace.availability_path:
        if Path(trace.availability_path).suffix == ".csv":
            return read_g4dn_csv(trace.availability_path, *trace.availability_window_s)
        return read_availability_jsonl(trace.availability_path)
    return availability_from_config(trace.availability)


class Start(NamedTuple):
    """How a run begins: the first event (an add at time 0 carrying the starting target, if
    the trace set one at time 0) and the events replayed after it."""

    first: AvailabilityEvent
    rest: list[AvailabilityEvent]


def split_start(events: Sequence[AvailabilityEvent]) -> Start:
    """The run's starting fleet: every add and tpt event at time 0, whatever their order (the
    workload traces set their target before adding instances), folded into one add event."""
    lead = 0
    while lead < len(events) and events[lead].at_s == 0 and events[lead].op in ("add", "tpt"):
        lead += 1
    adds = [e for e in events[:lead] if e.op == "add"]
    if not adds:
        raise ConfigError("trace.availability: must add instances at time 0 (the fleet the run starts with)")
    tpts = [e.required_tpt for e in events[:lead] if e.op == "tpt"]
    first = AvailabilityEvent(
        at_s=0.0,
        op="add",
        instances=tuple(name for e in adds for name in e.instances),
        ondemand=all(e.ondemand for e in adds),
        required_tpt=tpts[-1] if tpts else None,
    )
    return Start(first, list(events[lead:]))


def instances_in_order(events: Sequence[AvailabilityEvent]) -> list[str]:
    """Every instance the trace ever adds, in the order they first appear."""
    seen: dict[str, None] = {}
    for e in events:
        if e.op == "add":
            for name in e.instances:
                seen.setdefault(name, None)
    return list(seen)


def expected_requests(trace: SpotServeTraceConfig, model: ModelConfig) -> float:
    """The mean number of requests `load_requests` generates (0 for a request file): a bound
    checked before drawing them."""
    r = trace.requests
    if r.path:
        return 0.0
    if r.rates_per_minute:
        rates = [float(x) for x in r.rates_per_minute]
        minutes = [min(60.0, max(0.0, trace.duration_s - 60.0 * m)) for m in range(len(rates))]
        tail = max(0.0, trace.duration_s - 60.0 * len(rates))
        return sum(x * s for x, s in zip(rates, minutes, strict=True)) + rates[-1] * tail
    rate = r.rate_rps if r.rate_rps is not None else model.request_rate_rps
    return float(rate) * trace.duration_s


def load_requests(trace: SpotServeTraceConfig, model: ModelConfig, seed: int) -> RequestTrace:
    """The run's requests: an artifact query file, or our seeded generator over the trace."""
    r = trace.requests
    input_len = r.input_len or model.input_len
    output_len = r.output_len or model.output_len
    if r.path:
        return read_requests(r.path, output_len)
    rate = r.rate_rps if r.rate_rps is not None else model.request_rate_rps
    return generate_requests(
        rate, trace.duration_s, r.distribution, r.cv, seed, input_len, output_len, r.rates_per_minute
    )
