"""Validation of a DiffServe experiment: the trace, the cascade, the approach and real
execution, before anything starts; each problem a `ConfigError` naming the key."""

from __future__ import annotations

from pathlib import Path

from orchestrator.config import CONF_DIR
from orchestrator.config.validate import require
from runtime.exceptions import ConfigError
from runtime.policies.diffserve.planner import QUEUEING
from runtime.policies.diffserve.registry import approach_class, make_approach
from runtime.profiles import batch_latency_s
from runtime.schema.diffserve import CascadeConfig, CurveConfig, DiffServeConfig, ProfileConfig
from runtime.traces.confidence import check_curve, read_curve_table

EXTRACTORS = ("inception", "small_cnn", "module")
SHAPES = ("diurnal", "constant")


def workers_wanted(cfg: DiffServeConfig) -> int:
    """GPU workers of the run: hostfile.workers, else what the trace suggests."""
    return cfg.hostfile.workers if cfg.hostfile.workers is not None else cfg.trace.suggested_workers


def read_tables(cfg: DiffServeConfig) -> None:
    """The cascade's f(t) from its table file (conf/tables/), into the typed config. A config
    saved by a run holds both the table's name and its points: they must agree."""
    curve = cfg.cascade.deferral_curve
    if curve.table is None:
        return
    key = "cascade.deferral_curve.table"
    path = Path(curve.table) if Path(curve.table).is_absolute() else CONF_DIR / "tables" / curve.table
    try:
        x, y, source = read_curve_table(path)
    except ValueError as err:
        raise ConfigError(f"{key}: {err}") from None
    if (curve.x or curve.y) and (list(curve.x), list(curve.y)) != (x, y):
        raise ConfigError(f"{key}: {path} and the x, y given beside it differ; give one of them")
    curve.x, curve.y, curve.source = x, y, curve.source or source


def validate(cfg: DiffServeConfig) -> None:
    """Every DiffServe key."""
    _validate_trace(cfg)
    _validate_cascade(cfg.cascade)
    _validate_approach(cfg)
    _validate_real(cfg)


def _validate_trace(cfg: DiffServeConfig) -> None:
    t = cfg.trace
    if t.path is not None:
        require(Path(t.path).is_file(), "trace.path", f"no such file: {t.path}")
        return
    require(t.shape in SHAPES, "trace.shape", f"unknown shape {t.shape!r} (allowed: {', '.join(SHAPES)})")
    require(t.high_qps >= t.low_qps, "trace.high_qps", f"must be >= trace.low_qps ({t.high_qps} < {t.low_qps})")


def _validate_profile(p: ProfileConfig, key: str) -> None:
    require(len(p.batch_sizes) >= 1, f"{key}.batch_sizes", "needs at least one profiled batch size")
    require(len(p.batch_sizes) == len(p.latency_ms), key, "batch_sizes and latency_ms need the same length")
    require(
        all(a < b for a, b in zip(p.batch_sizes, p.batch_sizes[1:], strict=False)),
        f"{key}.batch_sizes",
        f"must be strictly ascending (got {p.batch_sizes})",
    )


def _validate_curve(c: CurveConfig, key: str) -> None:
    try:
        check_curve(c.x, c.y, key)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _validate_cascade(c: CascadeConfig) -> None:
    _validate_profile(c.light.profile, "cascade.light.profile")
    _validate_profile(c.heavy.profile, "cascade.heavy.profile")
    _validate_curve(c.deferral_curve, "cascade.deferral_curve")
    if c.confidence_path is not None:
        require(Path(c.confidence_path).is_file(), "cascade.confidence_path", f"no such file: {c.confidence_path}")
    fastest = batch_latency_s(c.light.profile.batch_sizes, c.light.profile.latency_ms, 1)
    require(
        c.slo_s >= fastest,
        "cascade.slo_s",
        f"{c.slo_s} s is below the fastest single batch ({c.light.name}, batch 1: {fastest} s)",
    )


def _validate_real(cfg: DiffServeConfig) -> None:
    d = cfg.cascade.discriminator
    require(
        d.mode in ("live", "table"), "cascade.discriminator.mode", f"unknown mode {d.mode!r} (allowed: live, table)"
    )
    q = cfg.quality
    require(
        q.extractor in EXTRACTORS, "quality.extractor", f"unknown {q.extractor!r} (allowed: {', '.join(EXTRACTORS)})"
    )
    if q.reference is not None:
        require(Path(q.reference).is_dir(), "quality.reference", f"no such folder: {q.reference}")
    if cfg.execution.mode != "real":
        return
    require(
        cfg.time_scale == 1.0,
        "time_scale",
        f"real execution runs at the models' own speed, so time_scale must be 1 (got {cfg.time_scale})",
    )
    require(
        cfg.execution.device in ("auto", "cpu") or cfg.execution.device.startswith("cuda"),
        "execution.device",
        "allowed: auto, cpu, cuda",
    )
    if q.reference is not None:
        require(
            cfg.execution.save_images,
            "execution.save_images",
            "measured FID (quality.reference) needs save_images=true",
        )


def _validate_approach(cfg: DiffServeConfig) -> None:
    a = cfg.approach
    approach_class(a)  # the registered approach of its name, or its plugin: one line if neither
    require(bool(a.batch_sizes), "approach.batch_sizes", "needs at least one batch size")
    require(
        a.demand in ("ewma", "inflight"), "approach.demand", f"unknown estimator {a.demand!r} (allowed: ewma, inflight)"
    )
    require(
        a.queueing in QUEUEING,
        "approach.queueing",
        f"unknown queueing term {a.queueing!r} (allowed: {', '.join(QUEUEING)})",
    )
    workers = workers_wanted(cfg)
    needed = make_approach(cfg.cascade, a).required_workers(workers)
    require(
        needed <= workers,
        "approach.light_workers",
        f"the {a.name} plan needs {needed} GPU workers but the run has {workers} (hostfile.workers)",
    )
