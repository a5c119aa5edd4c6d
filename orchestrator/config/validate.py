"""One `validate(cfg)` step before anything starts: every value that makes no sense, and every
inconsistent combination, is a `ConfigError` naming the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

from runtime.exceptions import ConfigError
from runtime.profiles import batch_latency_s
from runtime.schema import CascadeConfig, Config, CurveConfig, ProfileConfig
from traces.confidence import check_curve

SYSTEMS = ("diffserve", "spotserve")
EXECUTIONS = ("simulated", "real")
EXTRACTORS = ("inception", "small_cnn", "module")
SHAPES = ("diurnal", "constant")
ROLES = ("controller", "load_balancer", "sink", "client", "worker")


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


def workers_wanted(cfg: Config) -> int:
    """GPU workers of the run: hostfile.workers, else what the trace suggests (SpotServe: one
    per GPU of every instance of the trace)."""
    if cfg.system.name == "spotserve":
        from orchestrator.config.spotserve import spot_workers

        return spot_workers(cfg)[1]
    return cfg.hostfile.workers if cfg.hostfile.workers is not None else cfg.trace.suggested_workers


def validate(cfg: Config) -> None:
    _require(
        cfg.system.name in SYSTEMS, "system", f"unknown system {cfg.system.name!r} (allowed: {', '.join(SYSTEMS)})"
    )
    _require(cfg.time_scale > 0, "time_scale", f"must be > 0 (got {cfg.time_scale})")
    _require(cfg.seed >= 0, "seed", f"must be >= 0 (got {cfg.seed})")
    _validate_run(cfg)
    _validate_hostfile(cfg)
    _require(
        cfg.execution.mode in EXECUTIONS,
        "execution.mode",
        f"unknown mode {cfg.execution.mode!r} (allowed: {', '.join(EXECUTIONS)})",
    )
    spot_trace = bool(cfg.trace.availability or cfg.trace.availability_path)
    _require(
        spot_trace == (cfg.system.name == "spotserve"),
        "trace",
        f"{cfg.trace.name} is a SpotServe availability trace: it needs system=spotserve"
        if spot_trace
        else f"{cfg.trace.name} has no availability events (a DiffServe trace: it needs system=diffserve)",
    )
    if cfg.system.name == "spotserve":
        from orchestrator.config.spotserve import validate_spotserve

        validate_spotserve(cfg)
        return
    _validate_trace(cfg)
    _require(cfg.cascade is not None, "cascade", "the diffserve system needs a cascade (e.g. cascade=sdxs)")
    assert cfg.cascade is not None
    _validate_cascade(cfg.cascade)
    _validate_approach(cfg, cfg.cascade)
    _validate_real(cfg, cfg.cascade)


def _validate_run(cfg: Config) -> None:
    r = cfg.run
    for key in ("heartbeat_s", "evict_after_s", "rpc_timeout_s", "ready_timeout_s", "stop_timeout_s", "drop_factor"):
        value = getattr(r, key)
        _require(value > 0, f"run.{key}", f"must be > 0 (got {value})")
    _require(r.drain_slo_factor >= 0, "run.drain_slo_factor", f"must be >= 0 (got {r.drain_slo_factor})")
    _require(r.start_lead_s >= 0, "run.start_lead_s", f"must be >= 0 (got {r.start_lead_s})")


def _validate_hostfile(cfg: Config) -> None:
    h = cfg.hostfile
    _require(bool(h.hosts), "hostfile.hosts", "needs at least one host")
    if h.workers is not None:
        _require(h.workers >= 1, "hostfile.workers", f"must be >= 1 GPU worker (got {h.workers})")
    _require(cfg.trace.suggested_workers >= 1, "trace.suggested_workers", "must be >= 1")
    _require(1024 <= h.base_port <= 65000, "hostfile.base_port", f"must be in 1024..65000 (got {h.base_port})")
    names = [host.name for host in h.hosts]
    _require(len(set(names)) == len(names), "hostfile.hosts", f"host names must be unique (got {names})")
    for i, host in enumerate(h.hosts):
        for role in host.roles:
            _require(
                role in ROLES, f"hostfile.hosts[{i}].roles", f"unknown role {role!r} (allowed: {', '.join(ROLES)})"
            )
        _require(host.workers_per_gpu >= 1, f"hostfile.hosts[{i}].workers_per_gpu", "must be >= 1")
        _require(
            host.workers_per_gpu == 1 or cfg.execution.mode == "simulated",
            f"hostfile.hosts[{i}].workers_per_gpu",
            "only simulated execution may share a GPU between workers (real execution needs 1)",
        )
        if host.ssh is not None:
            _require(
                bool(host.python),
                f"hostfile.hosts[{i}].python",
                "an SSH host needs the interpreter of the environment holding this project",
            )
            _require(
                not (host.workdir or "").startswith("~"),
                f"hostfile.hosts[{i}].workdir",
                "must be absolute or relative to the login directory (no ~)",
            )


def _validate_trace(cfg: Config) -> None:
    t = cfg.trace
    if t.path is not None:
        _require(Path(t.path).is_file(), "trace.path", f"no such file: {t.path}")
        return
    _require(t.shape in SHAPES, "trace.shape", f"unknown shape {t.shape!r} (allowed: {', '.join(SHAPES)})")
    _require(t.duration_s > 0, "trace.duration_s", f"must be > 0 (got {t.duration_s})")
    _require(t.low_qps >= 0, "trace.low_qps", f"must be >= 0 (got {t.low_qps})")
    _require(t.high_qps > 0, "trace.high_qps", f"must be > 0 (got {t.high_qps})")
    _require(t.high_qps >= t.low_qps, "trace.high_qps", f"must be >= trace.low_qps ({t.high_qps} < {t.low_qps})")


def _validate_profile(p: ProfileConfig, key: str) -> None:
    _require(len(p.batch_sizes) >= 1, f"{key}.batch_sizes", "needs at least one profiled batch size")
    _require(len(p.batch_sizes) == len(p.latency_ms), key, "batch_sizes and latency_ms need the same length")
    _require(
        all(b >= 1 for b in p.batch_sizes)
        and all(a < b for a, b in zip(p.batch_sizes, p.batch_sizes[1:], strict=False)),
        f"{key}.batch_sizes",
        f"must be >= 1 and strictly ascending (got {p.batch_sizes})",
    )
    _require(all(v >= 0 for v in p.latency_ms), f"{key}.latency_ms", f"must be >= 0 (got {p.latency_ms})")


def _validate_curve(c: CurveConfig, key: str) -> None:
    try:
        check_curve(c.x, c.y, key)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _validate_cascade(c: CascadeConfig) -> None:
    _require(c.slo_s > 0, "cascade.slo_s", f"must be > 0 (got {c.slo_s})")
    _validate_profile(c.light.profile, "cascade.light.profile")
    _validate_profile(c.heavy.profile, "cascade.heavy.profile")
    _validate_curve(c.deferral_curve, "cascade.deferral_curve")
    _require(c.num_prompts >= 1, "cascade.num_prompts", f"must be >= 1 (got {c.num_prompts})")
    _require(c.discriminator.latency_ms >= 0, "cascade.discriminator.latency_ms", "must be >= 0")
    if c.confidence_path is not None:
        _require(Path(c.confidence_path).is_file(), "cascade.confidence_path", f"no such file: {c.confidence_path}")
    fastest = batch_latency_s(c.light.profile.batch_sizes, c.light.profile.latency_ms, 1)
    _require(
        c.slo_s >= fastest,
        "cascade.slo_s",
        f"{c.slo_s} s is below the fastest single batch ({c.light.name}, batch 1: {fastest} s)",
    )
    _require(0.0 <= c.static.threshold <= 1.0, "cascade.static.threshold", "must be in [0, 1]")
    _require(0.0 < c.static.light_share < 1.0, "cascade.static.light_share", "must be in (0, 1)")


def _validate_real(cfg: Config, cascade: CascadeConfig) -> None:
    d = cascade.discriminator
    _require(
        d.mode in ("live", "table"), "cascade.discriminator.mode", f"unknown mode {d.mode!r} (allowed: live, table)"
    )
    q = cfg.quality
    _require(
        q.extractor in EXTRACTORS, "quality.extractor", f"unknown {q.extractor!r} (allowed: {', '.join(EXTRACTORS)})"
    )
    _require(q.window_s > 0, "quality.window_s", f"must be > 0 (got {q.window_s})")
    _require(
        q.min_images >= 2, "quality.min_images", f"must be >= 2 (a covariance needs two images; got {q.min_images})"
    )
    if q.reference is not None:
        _require(Path(q.reference).is_dir(), "quality.reference", f"no such folder: {q.reference}")
    if cfg.execution.mode != "real":
        return
    _require(
        cfg.time_scale == 1.0,
        "time_scale",
        f"real execution runs at the models' own speed, so time_scale must be 1 (got {cfg.time_scale})",
    )
    _require(
        cfg.execution.device in ("auto", "cpu") or cfg.execution.device.startswith("cuda"),
        "execution.device",
        "allowed: auto, cpu, cuda",
    )
    if q.reference is not None:
        _require(
            cfg.execution.save_images,
            "execution.save_images",
            "measured FID (quality.reference) needs save_images=true",
        )


def _validate_approach(cfg: Config, cascade: CascadeConfig) -> None:
    # Imported here: the registry pulls in every approach module.
    from orchestrator.config.spotserve import SPOT_APPROACHES
    from runtime.policies.diffserve.registry import APPROACHES, make_approach

    a = cfg.approach
    hint = " (a SpotServe approach: it needs system=spotserve)" if a.name in SPOT_APPROACHES else ""
    _require(
        a.name in APPROACHES,
        "approach",
        f"unknown approach {a.name!r}{hint} (allowed: {', '.join(sorted(APPROACHES))})",
    )
    _require(a.period_s > 0, "approach.period_s", f"must be > 0 (got {a.period_s})")
    _require(bool(a.batch_sizes) and all(b >= 1 for b in a.batch_sizes), "approach.batch_sizes", "must be >= 1")
    for key in ("light_batch", "heavy_batch"):
        value = getattr(a, key)
        if value is not None:
            _require(value >= 1, f"approach.{key}", f"must be >= 1 (got {value})")
    if a.threshold is not None:
        _require(0.0 <= a.threshold <= 1.0, "approach.threshold", f"must be in [0, 1] (got {a.threshold})")
    for key in ("light_workers", "heavy_workers"):
        value = getattr(a, key)
        if value is not None:
            _require(value >= 0, f"approach.{key}", f"must be >= 0 (got {value})")
    _require(0.0 < a.ewma_alpha <= 1.0, "approach.ewma_alpha", f"must be in (0, 1] (got {a.ewma_alpha})")
    _require(
        a.demand in ("ewma", "inflight"), "approach.demand", f"unknown estimator {a.demand!r} (allowed: ewma, inflight)"
    )
    workers = workers_wanted(cfg)
    needed = make_approach(cascade, a).required_workers(workers)
    _require(
        needed <= workers,
        "approach.light_workers",
        f"the {a.name} plan needs {needed} GPU workers but the run has {workers} (hostfile.workers)",
    )
