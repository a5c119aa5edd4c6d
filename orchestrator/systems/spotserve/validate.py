"""Validation of a SpotServe experiment: the model, the spot economics, the availability trace
and the approach, before anything starts. The availability events are read here, once, and
handed on (orchestrator/systems/spotserve/__init__.py inlines them into the run's config)."""

from __future__ import annotations

import math
from pathlib import Path

from orchestrator.config.limits import check_instances
from orchestrator.config.validate import require as _require
from runtime.policies.spotserve.config_optimizer import choose
from runtime.policies.spotserve.cost_model import check_profile
from runtime.policies.spotserve.registry import approach_class
from runtime.schema.spotserve import ModelConfig, SpotServeConfig
from runtime.traces.spotserve import AvailabilityEvent, instances_in_order, load_availability, split_start


def spot_workers(cfg: SpotServeConfig, events: list[AvailabilityEvent]) -> tuple[list[str], int]:
    """(instances in the order they appear, GPU workers): one worker per GPU of every instance
    the trace ever adds (later ones wait, warm, until their instance arrives)."""
    instances = instances_in_order(events)
    return instances, len(instances) * cfg.spot.gpus_per_instance


def check_real_shape(model: ModelConfig) -> None:
    """Real execution builds the GPT: every tensor-parallel degree the optimizer may pick must
    split its heads and LM head (pipeline degrees it picks divide padded_layers already), and a
    request's prompt and output must fit its positions."""
    from runtime.models.gpt import GptShape

    shape = GptShape.of(model)
    for tp in model.profile_tps:
        if tp <= model.max_tp:
            shape.check(tp, 1)
    _require(
        model.input_len + model.output_len <= model.max_seq_len,
        "model.max_seq_len",
        f"{model.max_seq_len} positions cannot hold input_len {model.input_len} + output_len {model.output_len}",
    )


def validate(cfg: SpotServeConfig) -> list[AvailabilityEvent]:
    """Every SpotServe key; returns the availability events (read once)."""
    _require(
        bool(cfg.trace.availability or cfg.trace.availability_path),
        "trace",
        f"{cfg.trace.name} has no availability events (set trace.availability or trace.availability_path)",
    )
    model, spot = cfg.model, cfg.spot
    a = cfg.approach.name
    approach_class(a, cfg.approach.plugin)  # a plugin that does not import is one line, before the run
    _require(
        cfg.ablation == 0 or (a == "spotserve" and not cfg.approach.plugin),
        "ablation",
        f"levels 1..4 take features out of spotserve; {a} has none (use 0)",
    )
    if cfg.execution.mode == "real":
        check_real_shape(model)
    _require(
        cfg.execution.worker_processes in ("instance", "gpu"),
        "execution.worker_processes",
        f"unknown {cfg.execution.worker_processes!r} (allowed: instance, gpu)",
    )
    check_profile(model)
    for key, path in (
        ("trace.availability_path", cfg.trace.availability_path),
        ("trace.requests.path", cfg.trace.requests.path),
    ):
        _require(path is None or Path(path).is_file(), key, f"no such file: {path}")
    window = list(cfg.trace.availability_window_s)
    if window:
        csv = Path(cfg.trace.availability_path or "").suffix == ".csv"
        key = "trace.availability_window_s"
        _require(csv, key, "only for a g4dn.csv trace.availability_path")
        _require(
            len(window) == 2 and 0 <= window[0] < window[1],
            key,
            f"must be [start_s, end_s] with 0 <= start_s < end_s (got {window})",
        )
    events = load_availability(cfg.trace)
    where = (
        f"{cfg.trace.availability_path} (trace.availability_path)"
        if cfg.trace.availability_path
        else "trace.availability"
    )
    check_instances(len(instances_in_order(events)), cfg.limits, where)
    start = split_start(events)
    _require(events[-1].op == "end", "trace.availability", "must finish with an end event")
    for i, e in enumerate(events):
        if e.op == "tpt":
            _require(
                e.required_tpt is not None and e.required_tpt > 0 and math.isfinite(e.required_tpt),
                f"trace.availability[{i}].required_tpt",
                f"must be a number > 0 (got {e.required_tpt})",
            )
    first = len(start.first.instances) * spot.gpus_per_instance
    tpt = start.first.required_tpt or model.required_tpt
    _require(
        not choose(model, first, tpt).config.is_zero,
        "model",
        f"{model.name} fits on no configuration of the first {first} GPUs "
        f"(it needs {model.min_world_size}: model.min_world_size); the trace starts with {len(start.first.instances)} instances",
    )
    _, workers = spot_workers(cfg, events)
    if cfg.hostfile.workers is not None:
        _require(
            cfg.hostfile.workers == workers,
            "hostfile.workers",
            f"the trace has {workers // spot.gpus_per_instance} instances of {spot.gpus_per_instance} GPUs: {workers} workers (or null)",
        )
    return events
