"""`python -m orchestrator.fidelity [overrides]`: one config on both clocks, side by side.

    python -m orchestrator.fidelity cascade=sdxs trace=3to24qps time_scale=10

The config runs once on the virtual clock (the cores in one process) and once on the wall clock
(real role processes, gRPC, `time_scale` as given). The report puts the system's headline
numbers next to each other with their differences, says how well the wall testbed kept up
(the client's send lag, the controller's heartbeat gaps: trace seconds), and draws a figure
overlaying both runs' per-second series. Files go to <output_dir>/<system>/fidelity/<time>/
(`virtual/`, `wall/`, `fidelity.csv`, `fidelity.png`); with tracking on, both runs are children
of one MLflow parent run that carries the table as metrics (`virtual.*`, `wall.*`, `diff.*`).
Exit codes as for `python -m orchestrator`.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator import tracking
from orchestrator.compose import compose_config, precheck
from orchestrator.experiment import Launch, RunResult, run_experiment
from orchestrator.plots import finish
from orchestrator.systems import get_system
from orchestrator.systems.base import Column, System
from runtime.exceptions import ConfigError, ServelabError, TraceFormatError

CLOCKS = ("virtual", "wall")
KEEPING_UP: tuple[Column, ...] = (
    ("client_send_lag_p50_s", "client send lag p50 (s)"),
    ("client_send_lag_p99_s", "client send lag p99 (s)"),
    ("heartbeat_gap_p50_s", "heartbeat gap p50 (s)"),
    ("heartbeat_gap_max_s", "heartbeat gap max (s)"),
)


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    virtual: float
    wall: float

    @property
    def diff(self) -> float:
        return self.wall - self.virtual

    @property
    def relative(self) -> float:
        return self.diff / abs(self.virtual) if self.virtual else math.nan


def table(summaries: Mapping[str, Mapping[str, Any]], columns: tuple[Column, ...]) -> list[Row]:
    def value(clock: str, key: str) -> float:
        v = summaries[clock].get(key)
        return float(v) if isinstance(v, int | float) else math.nan

    return [Row(key, label, value("virtual", key), value("wall", key)) for key, label in columns]


def figure(system: System, runs: Mapping[str, RunResult], path: Path, title: str) -> Path:
    """Both runs' per-second series, one panel per series of the system."""
    import matplotlib.pyplot as plt

    from orchestrator.plots import smooth

    panels = system.fidelity_series
    fig, axes = plt.subplots(len(panels), 1, figsize=(7.2, 2.4 * len(panels)), squeeze=False, sharex=True)
    styles = {"virtual": ("#1b9e77", "-"), "wall": ("#d95f02", "--")}
    for ax, (column, label) in zip(axes[:, 0], panels, strict=True):
        for clock, run in runs.items():
            series = pd.read_parquet(run.run_dir / "timeseries.parquet")
            if column not in series:
                continue
            color, ls = styles[clock]
            values = series[column].to_numpy(float)
            values = smooth(values, 5) if column.endswith("_window") else values
            ax.plot(series["second"], values, color=color, ls=ls, lw=1.2, label=f"{clock} clock")
        ax.set_title(label, fontsize=9, loc="left")
        ax.legend(fontsize=8, loc="best")
    axes[-1, 0].set_xlabel("trace time (s)")
    fig.suptitle(title, fontsize=10)
    return finish(fig, path)


def _format(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.4g}"


def report(overrides: list[str], out_dir: Path | None = None) -> tuple[list[Row], list[Row], Path]:
    """Run both clocks; returns (the comparison, the wall run's keeping-up rows, the output folder)."""
    plain = [o for o in overrides if not o.startswith("clock=")]
    for clock in CLOCKS:
        precheck([*plain, f"clock={clock}"])
    cfgs = {clock: compose_config(*plain, f"clock={clock}") for clock in CLOCKS}
    system = get_system(str(cfgs["wall"].system.name))
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    out = out_dir or Path(str(cfgs["wall"].paths.output_dir)) / system.name / "fidelity" / stamp
    out.mkdir(parents=True, exist_ok=True)
    cfg = cfgs["wall"]
    uri = tracking.absolute_uri(str(cfg.tracking.uri))
    parent = None
    if cfg.tracking.enabled:
        tags = {"servelab.kind": "fidelity", "system": system.name, "overrides": " ".join(plain)}
        parent = tracking.start_run(uri, str(cfg.tracking.experiment), f"fidelity {' '.join(plain)}", tags)
    runs = {
        clock: run_experiment(cfgs[clock], out / clock, Launch(kind="fidelity", parent_run_id=parent))
        for clock in CLOCKS
    }
    summaries = {clock: r.summary for clock, r in runs.items()}
    rows = table(summaries, system.fidelity_metrics)
    keeping = table(summaries, KEEPING_UP)
    frame = pd.DataFrame(
        [{"metric": r.key, "virtual": r.virtual, "wall": r.wall, "diff": r.diff, "relative": r.relative} for r in rows]
        + [{"metric": r.key, "virtual": r.virtual, "wall": r.wall} for r in keeping]
    )
    frame.to_csv(out / "fidelity.csv", index=False)
    s = summaries["wall"]
    title = f"{system.title(s)}: virtual vs wall clock (time_scale {s['time_scale']:g})"
    fig = figure(system, runs, out / "fidelity.png", title)
    if parent is not None:
        metrics = [(f"{clock}.{r.key}", getattr(r, clock), 0) for r in rows + keeping for clock in CLOCKS]
        metrics += [(f"diff.{r.key}", r.diff, 0) for r in rows]
        tracking.log_metrics(uri, parent, metrics)
        tracking.log_params(uri, parent, {"time_scale": str(s["time_scale"]), "overrides": " ".join(plain)})
        tracking.log_artifacts(uri, parent, [(out / "fidelity.csv", None), (fig, None)])
        tracking.end_run(uri, parent)
    return rows, keeping, out


def print_report(rows: list[Row], keeping: list[Row], out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="virtual vs wall clock")
    for name in ("metric", "virtual", "wall", "wall - virtual", "relative"):
        t.add_column(name, justify="left" if name == "metric" else "right")
    for r in rows:
        rel = "-" if math.isnan(r.relative) else f"{100 * r.relative:+.1f}%"
        t.add_row(r.label, _format(r.virtual), _format(r.wall), _format(r.diff), rel)
    k = Table(title="how the wall testbed kept up (trace seconds)")
    for name in ("", "virtual", "wall"):
        k.add_column(name, justify="left" if not name else "right")
    for r in keeping:
        k.add_row(r.label, _format(r.virtual), _format(r.wall))
    console = Console(width=120)
    console.print(t)
    console.print(k)
    console.print(f"Fidelity report: {out / 'fidelity.csv'}, figure {out / 'fidelity.png'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.fidelity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=None, help="where the runs and the report go")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. cascade=sdxs time_scale=10")
    args = parser.parse_intermixed_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    for noisy in ("mlflow", "alembic", "urllib3", "paramiko", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        rows, keeping, out = report(list(args.overrides), args.out_dir)
    except ServelabError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 2 if isinstance(err, ConfigError | TraceFormatError) else 1
    except KeyboardInterrupt:
        print("error: interrupted; every role was stopped", file=sys.stderr, flush=True)
        return 130
    print_report(rows, keeping, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
