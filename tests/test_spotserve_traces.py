"""SpotServe traces: availability readers on every artifact file, the config traces, the alive
timeline and instance-hours, and the request generator and reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from orchestrator.plan import typed_config
from runtime.exceptions import ConfigError, TraceFormatError
from runtime.schema.spotserve import AvailabilityEventConfig
from runtime.traces.spotserve import (
    AvailabilityEvent,
    alive_timeline,
    availability_from_config,
    generate_requests,
    instance_hours,
    load_availability,
    read_availability_jsonl,
    read_g4dn_csv,
    read_requests,
)
from tests.conftest import REFERENCE, compose_config, needs_reference

AVAILABILITY = REFERENCE / "spotserve" / "traces" / "availability"
QUERY = REFERENCE / "spotserve" / "traces" / "query"
SEGMENTS = sorted(AVAILABILITY.glob("*.txt"))
QUERIES = sorted(QUERY.glob("query*.txt"))
SPOT_TRACES = ("As", "Bs", "As+o", "Bs+o", "A", "B", "od3", "od4", "od6", "od8")
# Our trace -> the artifact segment it reproduces (NOTES-spotserve section 5.1).
ARTIFACT_FILE = {
    "As": "trace_0304_real.txt",
    "Bs": "trace_0506_real.txt",
    "As+o": "trace_0304_ondemand.txt",
    "Bs+o": "trace_0506_ondemand.txt",
    "A": "trace_0304_workload.txt",
    "B": "trace_0506_workload.txt",
    "od4": "trace_0506_node4.txt",
    "od6": "trace_0506_node6.txt",
    "od8": "trace_0506_node8.txt",
}


def minutes(events: list[AvailabilityEvent]) -> tuple[float, float]:
    spot, ondemand = instance_hours(events)
    return round(spot * 60, 6), round(ondemand * 60, 6)


def counts(events: list[AvailabilityEvent]) -> list[tuple[float, int]]:
    return [(seg.start_s, seg.spot + seg.ondemand) for seg in alive_timeline(events)]


def config_events(trace: str) -> list[AvailabilityEvent]:
    cfg = typed_config(compose_config("system=spotserve", f"trace={trace}", "model=20B"))
    return availability_from_config(cfg.trace.availability)


def write(tmp_path: Path, text: str, name: str = "t.txt") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# --------------------------------------------------------------------------- artifact readers


@needs_reference
@pytest.mark.parametrize("path", SEGMENTS, ids=[p.name for p in SEGMENTS])
def test_every_artifact_segment_reads_and_ends(path: Path) -> None:
    """Every shipped JSON-lines segment reads into a valid event list that ends with `end`."""
    events = read_availability_jsonl(path)
    assert events[-1].op == "end" and events[0].at_s == 0.0
    assert all(e.op in ("add", "remove", "tpt", "end") for e in events)
    assert alive_timeline(events)[0].start_s == 0.0


@needs_reference
@pytest.mark.parametrize(
    ("name", "instance_minutes"),
    [
        ("trace_0304_real.txt", 195.0),
        ("trace_0506_real.txt", 133.0),
        ("trace_0304_ondemand.txt", 219.5),
        ("trace_0506_ondemand.txt", 115.5),
        ("trace_0304_workload.txt", 192.0),
        ("trace_0506_workload.txt", 190.5),
        ("trace_0506_node3.txt", 68.0),
        ("trace_0506_node4.txt", 68.0),
        ("trace_0506_node6.txt", 102.0),
        ("trace_0506_node8.txt", 136.0),
        ("trace_0304.txt", 203.0),
    ],
)
def test_artifact_instance_minutes_match_the_notes(name: str, instance_minutes: float) -> None:
    """Instance-minutes of each AE segment equal NOTES section 5.1 (all counted as spot by the reader)."""
    assert minutes(read_availability_jsonl(AVAILABILITY / name)) == (instance_minutes, 0.0)


@needs_reference
def test_required_tpt_on_a_removal_becomes_a_tpt_event_first() -> None:
    """An artifact remove carrying required_tpt reads as a tpt event, then the removal, same time."""
    events = read_availability_jsonl(AVAILABILITY / "trace_0304_workload.txt")
    at_600 = [e for e in events if e.at_s == 600.0]
    assert [(e.op, e.required_tpt, e.instances) for e in at_600] == [
        ("tpt", 0.6, ()),
        ("remove", None, ("node-8", "node-9")),
    ]
    assert [(e.at_s, e.required_tpt) for e in events if e.op == "tpt"] == [(300.0, 0.8), (600.0, 0.6)]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[0, "add", {"nodes": ["a"]}]\nnot json\n[10, "DONE", {"nodes": []}]\n', r"t\.txt:2: expected a JSON array"),
        ('[0, "add", {"nodes": ["a"]}]\n[-5, "remove", {"nodes": ["a"]}]\n', r"t\.txt:2: must be a time >= 0"),
        ('[0, "add", {"nodes": ["a"]}]\n[5, "kill", {"nodes": ["a"]}]\n', r"t\.txt:2: unknown op 'kill'"),
        (
            '[0, "add", {"nodes": ["a"]}]\n[5, "remove", {"nodes": ["b"]}]\n',
            r"t\.txt:2: cannot remove 'b': it is not alive",
        ),
        (
            '[0, "add", {"nodes": ["a"]}]\n[5, "add", {"nodes": ["a"]}]\n',
            r"t\.txt:2: cannot add 'a': it is already alive",
        ),
        ('[9, "add", {"nodes": ["a"]}]\n[5, "DONE", {"nodes": []}]\n', r"t\.txt:2: events must be in time order"),
        ('# comment\n[0, "add", {"nodes": ["a"]}]\n', r"t\.txt: no DONE line"),
        ('[0, "other", {"nodes": []}]\n', r"t\.txt:1: op tpt needs required_tpt > 0"),
    ],
)
def test_segment_reader_names_file_and_line(tmp_path: Path, text: str, match: str) -> None:
    """A malformed or impossible segment line is one TraceFormatError naming the file and line."""
    with pytest.raises(TraceFormatError, match=match):
        read_availability_jsonl(write(tmp_path, text))


@needs_reference
def test_g4dn_full_trace_reads() -> None:
    """The full g4dn trace: 153 valid rows, at most 24 instances alive, windows default to its span."""
    events = read_g4dn_csv(AVAILABILITY / "g4dn.csv")
    assert sum(len(e.instances) for e in events if e.op in ("add", "remove")) <= 153
    assert max(n for _, n in counts(events)) == 24
    assert events[0].at_s == 0.0 and events[-1] == AvailabilityEvent(38760.0 - 480.0, "end")


@needs_reference
@pytest.mark.parametrize(("window_min", "segment"), [((212, 234), "trace_0304.txt"), ((313, 337), "trace_0506.txt")])
def test_g4dn_windows_reproduce_the_artifact_segments(window_min: tuple[int, int], segment: str) -> None:
    """The g4dn minutes 212-234 and 313-337 have exactly the alive counts of trace_0304/0506.txt."""
    start, end = (60.0 * m for m in window_min)
    window = read_g4dn_csv(AVAILABILITY / "g4dn.csv", start, end)
    artifact = read_availability_jsonl(AVAILABILITY / segment)
    assert counts(window) == counts(artifact)
    assert window[-1] == AvailabilityEvent(end - start, "end")
    assert minutes(window) == minutes(artifact)


def test_g4dn_window_rebases_and_starts_with_the_alive_set(tmp_path: Path) -> None:
    """Instances alive at the window start are one add at 0; later rows are rebased; rows at the end are cut."""
    p = write(tmp_path, "1000,add,n1\n2000,add,n2\n2000,add,n3\n5000,remove,n2\n9000,add,n4\n")
    events = read_g4dn_csv(p, start_s=2.0, end_s=9.0)
    assert events == [
        AvailabilityEvent(0.0, "add", ("n1", "n2", "n3")),
        AvailabilityEvent(3.0, "remove", ("n2",)),
        AvailabilityEvent(7.0, "end"),
    ]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1000,add,n1\n2000,add\n", r"t\.txt:2: expected 't_ms,add\|remove,node'"),
        ("1000,add,n1\nabc,add,n2\n", r"t\.txt:2: expected"),
        ("-1000,add,n1\n", r"t\.txt:1: must be a time >= 0"),
        ("1000,add,n1\n2000,drop,n1\n", r"t\.txt:2: unknown op 'drop' \(allowed: add, remove\)"),
        ("1000,add,n1\n2000,remove,n9\n", r"t\.txt:2: cannot remove 'n9': it is not alive"),
    ],
)
def test_g4dn_reader_names_file_and_line(tmp_path: Path, text: str, match: str) -> None:
    """A malformed or impossible g4dn row is one TraceFormatError naming the file and line."""
    with pytest.raises(TraceFormatError, match=match):
        read_g4dn_csv(write(tmp_path, text))


def test_g4dn_window_must_be_ordered(tmp_path: Path) -> None:
    """A window whose end is not after its start is a ConfigError naming start_s and end_s."""
    with pytest.raises(ConfigError, match="start_s < end_s"):
        read_g4dn_csv(write(tmp_path, "1000,add,n1\n"), start_s=5.0, end_s=5.0)


# --------------------------------------------------------------------------- config traces


def event(at_s: float, op: str, instances: list[str] | None = None, **kw: object) -> AvailabilityEventConfig:
    return AvailabilityEventConfig(at_s=at_s, op=op, instances=instances or [], **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("events", "match"),
    [
        ([event(-1, "add", ["a"]), event(5, "end")], r"^trace\.availability\[0\]\.at_s: must be a time >= 0"),
        ([event(0, "add", ["a"]), event(1, "boot", ["b"])], r"^trace\.availability\[1\]\.op: unknown op 'boot'"),
        (
            [event(0, "add", ["a"]), event(1, "remove", ["b"])],
            r"^trace\.availability\[1\]\.instances: cannot remove 'b'",
        ),
        ([event(0, "add", ["a"]), event(1, "add", ["a"])], r"^trace\.availability\[1\]\.instances: cannot add 'a'"),
        ([event(5, "add", ["a"]), event(1, "end")], r"^trace\.availability\[1\]\.at_s: events must be in time order"),
        ([event(0, "add", ["a"])], r"^trace\.availability: the last event must be op end"),
        ([], r"^trace\.availability: the last event must be op end"),
        ([event(0, "tpt")], r"^trace\.availability\[0\]\.required_tpt: op tpt needs required_tpt > 0"),
        ([event(0, "add", ["a"]), event(1, "end"), event(2, "end")], r"^trace\.availability\[2\]: no event may follow"),
    ],
)
def test_config_availability_errors_name_the_event(events: list[AvailabilityEventConfig], match: str) -> None:
    """Each impossible config event is one ConfigError naming trace.availability[i] and what is wrong."""
    with pytest.raises(ConfigError, match=match):
        availability_from_config(events)


@pytest.mark.parametrize("trace", SPOT_TRACES)
def test_every_spotserve_trace_composes_and_is_consistent(trace: str) -> None:
    """Each conf/trace SpotServe option composes with a model, its events are valid, it ends at
    duration_s, and suggested_workers is 4 GPUs per instance at the peak."""
    cfg = typed_config(compose_config("system=spotserve", f"trace={trace}", "model=20B"))
    assert cfg.trace.name == trace and cfg.model is not None and cfg.model.name == "20B"
    events = availability_from_config(cfg.trace.availability)
    assert events[-1].op == "end" and events[-1].at_s == cfg.trace.duration_s
    assert cfg.trace.suggested_workers == 4 * max(n for _, n in counts(events))
    assert cfg.trace.requests.distribution == "gamma" and 0 < cfg.trace.requests.cv <= 0.1


@needs_reference
@pytest.mark.parametrize("trace", sorted(ARTIFACT_FILE))
def test_config_traces_reproduce_the_artifact_files(trace: str) -> None:
    """Each config trace has the artifact file's events (less our initial tpt of the workload
    traces, which the artifact passed as --required-tpt 0.6, and the on-demand marks)."""
    ours = [e for e in config_events(trace) if not (e.op == "tpt" and e.at_s == 0.0)]
    artifact = read_availability_jsonl(AVAILABILITY / ARTIFACT_FILE[trace])
    strip = [(e.at_s, e.op, e.instances, e.required_tpt) for e in ours]
    assert strip == [(e.at_s, e.op, e.instances, e.required_tpt) for e in artifact]


def test_workload_traces_start_at_the_scripts_target() -> None:
    """A and B start with required_tpt 0.6 and carry the 19 published per-minute rates."""
    for trace in ("A", "B"):
        cfg = typed_config(compose_config("system=spotserve", f"trace={trace}"))
        first = availability_from_config(cfg.trace.availability)[0]
        assert (first.at_s, first.op, first.required_tpt) == (0.0, "tpt", 0.6)
        rates = cfg.trace.requests.rates_per_minute
        assert len(rates) == 19 and rates[6] == pytest.approx(0.702578075) and min(rates) == pytest.approx(0.546481625)


@needs_reference
def test_od3_really_has_three_instances() -> None:
    """od3 fixes the artifact's node3 file (4 nodes): 3 on-demand instances for 17 minutes."""
    events = config_events("od3")
    assert alive_timeline(events) == [(0.0, 1020.0, 0, 3)]
    assert len(read_availability_jsonl(AVAILABILITY / "trace_0506_node3.txt")[0].instances) == 4


def test_instance_hours_of_as_and_bs_by_hand() -> None:
    """Instance-minutes of As and Bs, by hand from the NOTES 5.1 timelines, are 195 and 133.

    As (minute:count 0:7, 4:8, 6:10, 10:9, 15:10, 20:8, end 22):
        7*4 + 8*2 + 10*4 + 9*5 + 10*5 + 8*2 = 28 + 16 + 40 + 45 + 50 + 16 = 195
    Bs (0:10, 2:8, 4:7, 12:8, 16:9, end 17):
        10*2 + 8*2 + 7*8 + 8*4 + 9*1 = 20 + 16 + 56 + 32 + 9 = 133
    """
    assert instance_hours(config_events("As")) == pytest.approx((195 / 60, 0.0))
    assert instance_hours(config_events("Bs")) == pytest.approx((133 / 60, 0.0))


def test_ondemand_replacements_are_priced_apart() -> None:
    """+o traces: replacements are on-demand; by hand, As+o has node-10 for 11.5 min and
    node-11/12 for 1.5 min each (14.5 on-demand, 219.5 - 14.5 = 205 spot); Bs+o has node-10/11
    for 8.5 min each and node-12 for 6.5 (23.5 on-demand, 115.5 - 23.5 = 92 spot)."""
    assert minutes(config_events("As+o")) == (205.0, 14.5)
    assert minutes(config_events("Bs+o")) == (92.0, 23.5)
    assert minutes(config_events("od8")) == (0.0, 136.0)


def test_alive_timeline_merges_equal_stretches_and_rejects_bad_events() -> None:
    """A tpt event does not split a constant fleet; an impossible event is a ValueError."""
    events = [
        AvailabilityEvent(0.0, "add", ("a", "b")),
        AvailabilityEvent(10.0, "tpt", required_tpt=0.5),
        AvailabilityEvent(20.0, "add", ("c",), ondemand=True),
        AvailabilityEvent(30.0, "end"),
    ]
    assert alive_timeline(events) == [(0.0, 20.0, 2, 0), (20.0, 30.0, 2, 1)]
    with pytest.raises(ValueError, match="cannot remove 'z'"):
        alive_timeline([AvailabilityEvent(0.0, "remove", ("z",)), AvailabilityEvent(1.0, "end")])


# --------------------------------------------------------------------------- requests


@pytest.mark.parametrize("cv", [0.05, 1.0, 2.0])
def test_gamma_cv_is_the_real_coefficient_of_variation(cv: float) -> None:
    """Gamma gaps drawn with `cv` have that coefficient of variation (within 3%) and the asked mean rate (within 1%)."""
    trace = generate_requests(5.0, 40_000.0, "gamma", cv, seed=1, input_len=512, output_len=128)
    assert trace.interarrival_cv() == pytest.approx(cv, rel=0.03)
    assert len(trace) / 40_000.0 == pytest.approx(5.0, rel=0.01)
    assert trace.arrival_s[0] > 0 and trace.arrival_s[-1] < 40_000.0 and np.all(np.diff(trace.arrival_s) >= 0)


def test_poisson_gaps_are_exponential() -> None:
    """Poisson arrivals have gap CV 1 whatever `cv` says."""
    trace = generate_requests(2.0, 50_000.0, "poisson", 0.05, seed=3, input_len=512, output_len=128)
    assert trace.interarrival_cv() == pytest.approx(1.0, rel=0.03)
    assert len(trace) / 50_000.0 == pytest.approx(2.0, rel=0.02)


def test_generator_is_seeded() -> None:
    """The same seed gives the same trace; another seed gives another."""
    a = generate_requests(0.35, 1000.0, "gamma", 0.05, seed=7, input_len=512, output_len=128)
    b = generate_requests(0.35, 1000.0, "gamma", 0.05, seed=7, input_len=512, output_len=128)
    c = generate_requests(0.35, 1000.0, "gamma", 0.05, seed=8, input_len=512, output_len=128)
    assert np.array_equal(a.arrival_s, b.arrival_s) and not np.array_equal(a.arrival_s, c.arrival_s)
    assert np.array_equal(a.ids, np.arange(len(a))) and set(a.input_len) == {512} and set(a.output_len) == {128}


def test_rates_per_minute_change_the_rate_every_minute() -> None:
    """With per-minute rates each minute receives about 60 x its rate (Poisson count bounds); the last rate holds after the list."""
    trace = generate_requests(None, 240.0, "gamma", 1.0, 11, 16, 8, rates_per_minute=[5.0, 20.0, 5.0])
    per_minute = np.bincount((trace.arrival_s // 60).astype(int), minlength=4)
    for got, rate in zip(per_minute, [5.0, 20.0, 5.0, 5.0], strict=True):
        assert abs(got - 60 * rate) < 4 * np.sqrt(60 * rate)


def test_workload_a_rates_give_the_artifacts_count() -> None:
    """The published 19 rates over 1140 s give about as many requests as query_realAr_cv6.txt (681)."""
    cfg = typed_config(compose_config("system=spotserve", "trace=A", "model=20B"))
    r = cfg.trace.requests
    trace = generate_requests(None, cfg.trace.duration_s, r.distribution, r.cv, 0, 512, 128, r.rates_per_minute)
    assert abs(len(trace) - 681) < 20 and trace.interarrival_cv() < 0.15


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rate_rps": 0.0}, r"^trace\.requests\.rate_rps: must be > 0"),
        ({"rate_rps": None}, r"^trace\.requests\.rate_rps: must be > 0"),
        (
            {"distribution": "uniform"},
            r"^trace\.requests\.distribution: unknown distribution 'uniform' \(allowed: gamma, poisson\)",
        ),
        ({"cv": 0.0}, r"^trace\.requests\.cv: must be > 0"),
        ({"duration_s": -1.0}, r"^trace\.duration_s: must be > 0"),
        ({"rates_per_minute": [1.0, 0.0]}, r"^trace\.requests\.rates_per_minute: every rate must be > 0"),
    ],
)
def test_generator_refuses_bad_settings(kwargs: dict[str, object], match: str) -> None:
    """A bad request-stream setting is one ConfigError naming the key and what is allowed."""
    args: dict[str, object] = {
        "rate_rps": 1.0,
        "duration_s": 10.0,
        "distribution": "gamma",
        "cv": 1.0,
        "seed": 0,
        "input_len": 512,
        "output_len": 128,
    }
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        generate_requests(**args)  # type: ignore[arg-type]


@needs_reference
@pytest.mark.parametrize("path", QUERIES, ids=[p.name for p in QUERIES])
def test_every_shipped_query_file_reads(path: Path) -> None:
    """Every shipped query trace reads: sorted arrivals, 512- or 128-token prompts, 128 generated."""
    trace = read_requests(path)
    assert len(trace) in (681, 1024, 6144)
    assert np.all(np.diff(trace.arrival_s) >= 0) and set(trace.input_len) <= {128, 512}
    assert set(trace.output_len) == {128}


@needs_reference
def test_the_cv6_file_is_nearly_periodic() -> None:
    """query_tpt0.35_cv6.txt has 1024 requests at 0.35 req/s with a real gap CV of about 0.046."""
    trace = read_requests(QUERY / "query_tpt0.35_cv6.txt")
    assert len(trace) == 1024
    assert len(trace) / trace.duration_s == pytest.approx(0.35, rel=0.01)
    assert trace.interarrival_cv() == pytest.approx(0.046, abs=0.002)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("0,1.5,512,0\n1,2.5,512\n", r"q\.txt:2: expected 'id,arrival_s,input_len,byte_offset'"),
        ("0,1.5,512,0\n1,-2,512,10\n", r"q\.txt:2: expected"),
        ("0,1.5,512,0\n0,2.5,512,10\n", r"q\.txt:2: request id 0 appears twice"),
        ("\n", r"q\.txt: the trace has no requests"),
    ],
)
def test_request_reader_names_file_and_line(tmp_path: Path, text: str, match: str) -> None:
    """A malformed query line is one TraceFormatError naming the file and line."""
    with pytest.raises(TraceFormatError, match=match):
        read_requests(write(tmp_path, text, "q.txt"))


@needs_reference
def test_a_window_of_g4dn_csv_is_replayed_from_the_config() -> None:
    """`trace.availability_window_s` picks minutes 212-234 of g4dn.csv: the artifact's
    uncompressed trace_0304.txt, whose 203 instance-minutes its cost plot hard-codes."""
    cfg = typed_config(
        compose_config(
            "system=spotserve",
            f"trace.availability_path={AVAILABILITY / 'g4dn.csv'}",
            "trace.availability_window_s=[12720,14040]",
        )
    )
    events = load_availability(cfg.trace)
    assert events == read_g4dn_csv(AVAILABILITY / "g4dn.csv", 12720, 14040)
    assert events[-1] == AvailabilityEvent(1320.0, "end")
    assert instance_hours(events) == pytest.approx((203 / 60, 0.0))
