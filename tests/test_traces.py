"""The DiffServe trace generator and the artifact's trace format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime.exceptions import TraceFormatError
from runtime.traces.diffserve import generate, read_artifact, write_artifact
from runtime.traces.shape import DIURNAL_POINTS, diurnal, evaluate, pchip, per_second_rates
from tests.conftest import REFERENCE, needs_reference

ARTIFACT_TRACES = sorted((REFERENCE / "diffserve" / "traces").glob("*/trace_*.txt")) + sorted(
    (REFERENCE / "diffserve" / "traces" / "fixed").glob("*.txt")
)


def test_rate_follows_the_shape_per_10s_window() -> None:
    """Arrivals per 10-s window stay within 4 standard deviations of the shape's expected count."""
    trace = generate("3to24qps", 3, 24, 347, 5000, seed=1)
    rates = per_second_rates(3, 24, 347, "diurnal")
    for w in range(34):
        expected = rates[w * 10 : (w + 1) * 10].sum()
        got = np.sum((trace.arrival_s >= w * 10) & (trace.arrival_s < (w + 1) * 10))
        assert abs(got - expected) <= 4 * np.sqrt(expected) + 1, (w, got, expected)


def test_shape_spans_the_named_rates_with_dip_and_mid_peak() -> None:
    rates = per_second_rates(4, 32, 347, "diurnal")
    assert rates.min() == pytest.approx(4, abs=0.05) and rates.max() == pytest.approx(32, abs=0.05)
    assert 30 <= int(np.argmin(rates)) <= 60, "the dip comes about an eighth of the way in"
    assert 150 <= int(np.argmax(rates)) <= 240, "the peak is past the middle"
    assert rates[0] < rates.max() / 3 and rates[-1] < rates.max() / 3, "low start, decline at the end"


@pytest.mark.parametrize(
    "points",
    [
        DIURNAL_POINTS,
        ((0.0, 1.0), (0.3, 1.0), (0.5, 2.0), (0.6, 0.0), (0.9, 0.0), (1.0, 5.0)),  # flat pieces, a fall
        ((0.0, 0.0), (0.1, 3.0), (0.2, 3.1), (0.7, -1.0), (1.0, 4.0)),  # a steep end (the 3x clamp)
        tuple(
            (float(x), float(y))
            for x, y in zip(np.linspace(0, 1, 12), np.random.default_rng(3).random(12), strict=True)
        ),
    ],
)
def test_our_pchip_is_scipys_to_the_bit(points: tuple[tuple[float, float], ...]) -> None:
    """The shape's monotone cubic gives exactly scipy's PchipInterpolator values (so trading
    scipy's import for it changed no arrival time), at the knots and 200,001 points between."""
    from scipy.interpolate import PchipInterpolator

    x = np.concatenate([np.linspace(0.0, 1.0, 200_001), [p[0] for p in points]])
    ours = evaluate(*pchip(points), x)
    theirs = PchipInterpolator([p[0] for p in points], [p[1] for p in points])(x)
    assert np.array_equal(ours, theirs)
    if points is DIURNAL_POINTS:
        assert np.array_equal(diurnal(x), np.clip(theirs, 0.0, 1.0))


def test_seeded_and_reproducible() -> None:
    a = generate("x", 1, 8, 60, 5000, seed=7)
    b = generate("x", 1, 8, 60, 5000, seed=7)
    c = generate("x", 1, 8, 60, 5000, seed=8)
    assert np.array_equal(a.arrival_s, b.arrival_s) and np.array_equal(a.prompt_index, b.prompt_index)
    assert not np.array_equal(a.arrival_s[:20], c.arrival_s[:20])


def test_low_rates_are_not_thinned_and_arrivals_stay_in_their_second() -> None:
    """At a constant 1 q/s, 2000 s give ~2000 arrivals (the artifact kept ~63 %), all sorted and in range."""
    trace = generate("fixed_1qps", 1, 1, 2000, 5000, seed=3, shape="constant")
    assert 1850 <= len(trace) <= 2150
    assert np.all(np.diff(trace.arrival_s) >= 0)
    assert trace.arrival_s.min() >= 0 and trace.arrival_s.max() < 2000


def test_partial_last_second_and_prompt_range() -> None:
    trace = generate("x", 5, 5, 10.5, 40, seed=0, shape="constant")
    assert trace.arrival_s.max() < 10.5
    assert trace.prompt_index.min() >= 0 and trace.prompt_index.max() < 40


@needs_reference
@pytest.mark.parametrize("path", ARTIFACT_TRACES, ids=lambda p: p.name)
def test_reads_every_artifact_trace(path: Path) -> None:
    trace = read_artifact(path)
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    assert len(trace) == len(lines)
    assert np.all(np.diff(trace.arrival_s) >= 0), "sorted after reading, though the file is not"
    assert 300 < trace.duration_s < 400
    assert trace.prompt_index.min() >= 1 and trace.prompt_index.max() <= 4999


@needs_reference
def test_artifact_trace_matches_its_published_size() -> None:
    """NOTES-diffserve 5.1: trace_3to24qps has 5014 arrivals, 10-s rates from about 3 to 24 q/s."""
    trace = read_artifact(REFERENCE / "diffserve" / "traces" / "dynamic" / "trace_3to24qps.txt")
    assert len(trace) == 5014
    rates = trace.rate_per_window(10)
    assert 2.5 < rates.min() < 4 and 22 < rates.max() < 25


def test_malformed_line_names_the_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.txt"
    p.write_text("10.0,1\n20.0,2\nthirty,3\n")
    with pytest.raises(TraceFormatError, match=r"bad.txt:3: expected 'arrival_ms,prompt_index'"):
        read_artifact(p)
    p.write_text("10.0,1\n-5,2\n")
    with pytest.raises(TraceFormatError, match=r"bad.txt:2:"):
        read_artifact(p)
    p.write_text("10.0,1.5\n")
    with pytest.raises(TraceFormatError, match=r"bad.txt:1:"):
        read_artifact(p)


def test_missing_or_empty_file(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="no such file"):
        read_artifact(tmp_path / "absent.txt")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(TraceFormatError, match="no arrivals"):
        read_artifact(tmp_path / "empty.txt")


def test_write_read_round_trip(tmp_path: Path) -> None:
    trace = generate("x", 2, 16, 30, 5000, seed=2)
    write_artifact(trace, tmp_path / "t.csv")
    back = read_artifact(tmp_path / "t.csv")
    assert np.allclose(back.arrival_s, trace.arrival_s, atol=1e-6)
    assert np.array_equal(back.prompt_index, trace.prompt_index)
