"""Per-prompt confidence: the seeded draw follows f(t); the artifact's dist files are read right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from orchestrator.compose import compose_config, load_plan
from runtime.exceptions import ConfigError, TraceFormatError
from runtime.traces.confidence import check_curve, deferral_fraction, draw, read_artifact_dist
from tests.conftest import REFERENCE, needs_reference


@pytest.mark.parametrize("cascade", ["sdturbo", "sdxs", "sdxlltn"])
def test_draw_follows_the_cascades_curve(cascade: str) -> None:
    """The fraction of prompts below t equals f(t) to within 1/n at every t (stratified draw)."""
    cfg = load_plan([f"cascade={cascade}", "clock=virtual"]).config.cascade
    conf = draw(list(cfg.deferral_curve.x), list(cfg.deferral_curve.y), 5000, seed=0)
    assert conf.shape == (5000,) and conf.min() >= 0 and conf.max() <= 1
    for t in np.linspace(0, 1, 101):
        expected = float(deferral_fraction(t, list(cfg.deferral_curve.x), list(cfg.deferral_curve.y)))
        assert abs(np.mean(conf < t) - expected) <= 1 / 5000 + 1e-9, t


def test_draw_is_seeded() -> None:
    x, y = [0.0, 0.5, 1.0], [0.0, 0.8, 1.0]
    assert np.array_equal(draw(x, y, 100, seed=1), draw(x, y, 100, seed=1))
    assert not np.array_equal(draw(x, y, 100, seed=1), draw(x, y, 100, seed=2))


@needs_reference
@pytest.mark.parametrize("cascade", ["sdturbo", "sdxs"])
def test_artifact_dist_file_matches_the_carried_curve(cascade: str) -> None:
    """dist_<cascade>.txt: 20000 P(fake) values, 4 per prompt; f(t) of 1 - mean equals our table."""
    conf = read_artifact_dist(REFERENCE / "diffserve" / "confidence" / f"dist_{cascade}.txt")
    assert conf.shape == (5000,)
    cfg = load_plan([f"cascade={cascade}", "clock=virtual"]).config.cascade
    for t, f in zip(cfg.deferral_curve.x, cfg.deferral_curve.y, strict=True):
        assert np.mean(conf < t) == pytest.approx(f, abs=0.0011), t


def test_dist_reader_errors(tmp_path: Path) -> None:
    p = tmp_path / "dist.txt"
    p.write_text("0.5\n0.5\n0.5\n")
    with pytest.raises(TraceFormatError, match="not a positive multiple of 4"):
        read_artifact_dist(p)
    p.write_text("0.5\n1.5\n0.5\n0.5\n")
    with pytest.raises(TraceFormatError, match=r"dist.txt:2: expected a probability"):
        read_artifact_dist(p)
    with pytest.raises(TraceFormatError, match="no such file"):
        read_artifact_dist(tmp_path / "absent.txt")


def test_curve_must_be_a_cdf() -> None:
    check_curve([0, 1], [0, 1], "c")
    with pytest.raises(ValueError, match=r"c\.y"):
        check_curve([0, 0.5, 1], [0, 0.6, 0.5], "c")
    with pytest.raises(ValueError, match=r"c\.x"):
        check_curve([0.1, 1], [0, 1], "c")


@pytest.mark.parametrize("cascade", ["sdturbo", "sdxs", "sdxlltn"])
def test_the_curve_table_is_read_when_the_run_resolves_not_composed(cascade: str) -> None:
    """A cascade's 201-point f(t) lives in conf/tables/ (Hydra does not compose it with every
    config); the resolved config holds all of it, with its source, as a composed one would."""
    composed = compose_config(f"cascade={cascade}").cascade.deferral_curve
    assert composed.table == f"deferral_curve/{cascade}.csv" and list(composed.x) == []
    plan = load_plan([f"cascade={cascade}", "clock=virtual"])
    curve, saved = plan.config.cascade.deferral_curve, plan.container["cascade"]["deferral_curve"]
    assert len(curve.x) == len(curve.y) == 201 and curve.x[0] == 0.0 and curve.x[-1] == 1.0
    assert saved["x"] == curve.x and saved["y"] == curve.y and saved["source"] == curve.source
    assert curve.source.startswith("DiffServe artifact (qizhengyang98/DiffServe 7f2e4d7)")


@pytest.mark.parametrize(
    ("rows", "extra", "pattern"),
    [
        ("t,f\n0,0\n0.5;0.4\n1,1\n", [], ":4: want two numbers, x,y (got '0.5;0.4')"),
        ("t,f\n0,0\n0.5,0.7\n0.4,0.8\n1,1\n", [], "cascade.deferral_curve.x: thresholds must rise strictly"),
        (None, [], "cascade.deferral_curve.table: cannot read"),
        ("t,f\n0,0\n1,1\n", ["cascade.deferral_curve.x=[0,0.5,1]", "cascade.deferral_curve.y=[0,0.2,1]"], "differ"),
    ],
)
def test_a_bad_curve_table_is_one_line_naming_it(
    tmp_path: Path, rows: str | None, extra: list[str], pattern: str
) -> None:
    table = tmp_path / "curve.csv"
    if rows is not None:
        table.write_text("# source: made up\n" + rows)
    with pytest.raises(ConfigError) as err:
        load_plan(["clock=virtual", f"cascade.deferral_curve.table={table}", *extra])
    assert pattern in str(err.value) and "\n" not in str(err.value)
