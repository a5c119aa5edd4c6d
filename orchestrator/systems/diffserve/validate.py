"""Validation of a DiffServe experiment: the trace, the cascade, the approach and real
execution, before anything starts; each problem a `ConfigError` naming the key."""

from __future__ import annotations

from pathlib import Path

from orchestrator.config.validate import require
from runtime.exceptions import ConfigError
from runtime.policies.diffserve.registry import APPROACHES, make_approach
from runtime.profiles import batch_latency_s
from runtime.schema import CascadeConfig, Config, CurveConfig, ProfileConfig
from traces.confidence import check_curve

EXTRACTORS = ("inception", "small_cnn", "module")
SHAPES = ("diurnal", "constant")


def workers_wanted(cfg: Config) -> int:
    """GPU workers of the run: hostfile.workers, else what the trace suggests."""
    return cfg.hostfile.workers if cfg.hostfile.workers is not None else cfg.trace.suggested_workers


def validate(cfg: Config) -> CascadeConfig:
    """Every DiffServe key; returns the cascade."""
    require(
        not (cfg.trace.availability or cfg.trace.availability_path),
        "trace",
        f"{cfg.trace.name} is a SpotServe availability trace: it needs system=spotserve",
    )
    _validate_trace(cfg)
    require(cfg.cascade is not None, "cascade", "the diffserve system needs a cascade (e.g. cascade=sdxs)")
    assert cfg.cascade is not None
    _validate_cascade(cfg.cascade)
    _validate_approach(cfg, cfg.cascade)
    _validate_real(cfg, cfg.cascade)
    return cfg.cascade


def _validate_trace(cfg: Config) -> None:
    t = cfg.trace
    if t.path is not None:
        require(Path(t.path).is_file(), "trace.path", f"no such file: {t.path}")
        return
    require(t.shape in SHAPES, "trace.shape", f"unknown shape {t.shape!r} (allowed: {', '.join(SHAPES)})")
    require(t.duration_s > 0, "trace.duration_s", f"must be > 0 (got {t.duration_s})")
    require(t.low_qps >= 0, "trace.low_qps", f"must be >= 0 (got {t.low_qps})")
    require(t.high_qps > 0, "trace.high_qps", f"must be > 0 (got {t.high_qps})")
    require(t.high_qps >= t.low_qps, "trace.high_qps", f"must be >= trace.low_qps ({t.high_qps} < {t.low_qps})")


def _validate_profile(p: ProfileConfig, key: str) -> None:
    require(len(p.batch_sizes) >= 1, f"{key}.batch_sizes", "needs at least one profiled batch size")
    require(len(p.batch_sizes) == len(p.latency_ms), key, "batch_sizes and latency_ms need the same length")
    require(
        all(b >= 1 for b in p.batch_sizes)
        and all(a < b for a, b in zip(p.batch_sizes, p.batch_sizes[1:], strict=False)),
        f"{key}.batch_sizes",
        f"must be >= 1 and strictly ascending (got {p.batch_sizes})",
    )
    require(all(v >= 0 for v in p.latency_ms), f"{key}.latency_ms", f"must be >= 0 (got {p.latency_ms})")


def _validate_curve(c: CurveConfig, key: str) -> None:
    try:
        check_curve(c.x, c.y, key)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _validate_cascade(c: CascadeConfig) -> None:
    require(c.slo_s > 0, "cascade.slo_s", f"must be > 0 (got {c.slo_s})")
    _validate_profile(c.light.profile, "cascade.light.profile")
    _validate_profile(c.heavy.profile, "cascade.heavy.profile")
    _validate_curve(c.deferral_curve, "cascade.deferral_curve")
    require(c.num_prompts >= 1, "cascade.num_prompts", f"must be >= 1 (got {c.num_prompts})")
    require(c.discriminator.latency_ms >= 0, "cascade.discriminator.latency_ms", "must be >= 0")
    if c.confidence_path is not None:
        require(Path(c.confidence_path).is_file(), "cascade.confidence_path", f"no such file: {c.confidence_path}")
    fastest = batch_latency_s(c.light.profile.batch_sizes, c.light.profile.latency_ms, 1)
    require(
        c.slo_s >= fastest,
        "cascade.slo_s",
        f"{c.slo_s} s is below the fastest single batch ({c.light.name}, batch 1: {fastest} s)",
    )
    require(0.0 <= c.static.threshold <= 1.0, "cascade.static.threshold", "must be in [0, 1]")
    require(0.0 < c.static.light_share < 1.0, "cascade.static.light_share", "must be in (0, 1)")


def _validate_real(cfg: Config, cascade: CascadeConfig) -> None:
    d = cascade.discriminator
    require(
        d.mode in ("live", "table"), "cascade.discriminator.mode", f"unknown mode {d.mode!r} (allowed: live, table)"
    )
    q = cfg.quality
    require(
        q.extractor in EXTRACTORS, "quality.extractor", f"unknown {q.extractor!r} (allowed: {', '.join(EXTRACTORS)})"
    )
    require(q.window_s > 0, "quality.window_s", f"must be > 0 (got {q.window_s})")
    require(
        q.min_images >= 2, "quality.min_images", f"must be >= 2 (a covariance needs two images; got {q.min_images})"
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


def _validate_approach(cfg: Config, cascade: CascadeConfig) -> None:
    a = cfg.approach
    require(a.name in APPROACHES, "approach", f"unknown approach {a.name!r} (allowed: {', '.join(sorted(APPROACHES))})")
    require(a.period_s > 0, "approach.period_s", f"must be > 0 (got {a.period_s})")
    require(bool(a.batch_sizes) and all(b >= 1 for b in a.batch_sizes), "approach.batch_sizes", "must be >= 1")
    for key in ("light_batch", "heavy_batch"):
        value = getattr(a, key)
        if value is not None:
            require(value >= 1, f"approach.{key}", f"must be >= 1 (got {value})")
    if a.threshold is not None:
        require(0.0 <= a.threshold <= 1.0, "approach.threshold", f"must be in [0, 1] (got {a.threshold})")
    for key in ("light_workers", "heavy_workers"):
        value = getattr(a, key)
        if value is not None:
            require(value >= 0, f"approach.{key}", f"must be >= 0 (got {value})")
    require(0.0 < a.ewma_alpha <= 1.0, "approach.ewma_alpha", f"must be in (0, 1] (got {a.ewma_alpha})")
    require(
        a.demand in ("ewma", "inflight"), "approach.demand", f"unknown estimator {a.demand!r} (allowed: ewma, inflight)"
    )
    workers = workers_wanted(cfg)
    needed = make_approach(cascade, a).required_workers(workers)
    require(
        needed <= workers,
        "approach.light_workers",
        f"the {a.name} plan needs {needed} GPU workers but the run has {workers} (hostfile.workers)",
    )
