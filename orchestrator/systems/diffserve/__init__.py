"""DiffServe's registry entry: a light/heavy diffusion cascade with a discriminator and a
controller that re-plans workers, batch sizes and the threshold (MLSys'25)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from orchestrator.config.limits import check_queries, check_windows, check_workers, count_lines
from orchestrator.deploy.placement import place
from orchestrator.systems.base import Analysis, Column, ProfileOptions, Resolved, System, VirtualRun
from orchestrator.systems.diffserve import analysis as ds_analysis
from orchestrator.systems.diffserve import figures as ds_figures
from orchestrator.systems.diffserve.validate import read_tables, validate, workers_wanted
from runtime.exceptions import TraceFormatError
from runtime.policies.diffserve.registry import APPROACHES
from runtime.schema.diffserve import DiffServeConfig
from runtime.spec import ClientTerms
from runtime.traces.arrivals import ArrivalTrace, read_artifact
from runtime.traces.diffserve import expected_arrivals, generate

if TYPE_CHECKING:
    from orchestrator.systems.base import RunPlan


def load_trace(config: DiffServeConfig) -> ArrivalTrace:
    """The arrivals the client will replay: an artifact file, or our seeded generator."""
    t, cascade = config.trace, config.cascade
    if t.path:
        check_queries(count_lines(t.path), config.limits, f"{t.path} (trace.path)")
        trace = read_artifact(t.path, name=Path(t.path).stem)  # named by its file, not by trace=...
        where = f"{t.path} (trace.path)"
    else:
        expected = expected_arrivals(t.low_qps, t.high_qps, t.duration_s, t.shape)
        check_queries(expected, config.limits, f"trace {t.name}", estimated=True)
        trace = generate(t.name, t.low_qps, t.high_qps, t.duration_s, cascade.num_prompts, config.seed, t.shape)
        where = f"trace {t.name}"
    if len(trace) == 0:
        raise TraceFormatError(f"{where}: the trace has no arrivals")
    top = int(trace.prompt_index.max())
    if top >= cascade.num_prompts:
        raise TraceFormatError(
            f"{where}: prompt index {top} is beyond the cascade's {cascade.num_prompts} prompts (cascade.num_prompts)"
        )
    return trace


class DiffServeSystem(System[DiffServeConfig]):
    name: ClassVar[str] = "diffserve"
    schema: ClassVar[type[DiffServeConfig]] = DiffServeConfig
    subject_key: ClassVar[str] = "cascade"
    approaches: ClassVar[tuple[str, ...]] = tuple(APPROACHES)
    has_slo: ClassVar[bool] = True
    role_targets: ClassVar[Mapping[str, str]] = {
        "controller": "runtime.roles.diffserve.controller:ControllerRole",
        "load_balancer": "runtime.roles.diffserve.load_balancer:LoadBalancerRole",
        "worker": "runtime.roles.diffserve.worker:WorkerRole",
        "sink": "runtime.roles.sink:SinkRole",
        "client": "runtime.roles.client:ClientRole",
    }
    report_keys: ClassVar[tuple[str, ...]] = ("approach", "cascade", "trace")
    headline: ClassVar[tuple[Column, ...]] = (
        ("slo_violation_ratio", "SLO viol."),
        ("fid_artifact_recipe", "FID (artifact's script)"),
        ("latency_p99_s", "p99 s"),
    )
    report_columns: ClassVar[tuple[Column, ...]] = (
        ("slo_violation_ratio", "SLO viol."),
        ("slo_violation_ratio_artifact_recipe", "SLO viol. (artifact's script)"),
        ("fid", "FID (table est.)"),
        ("fid_artifact_recipe", "FID (artifact's script)"),
        ("latency_mean_s", "mean (s)"),
        ("latency_p99_s", "p99 (s)"),
        ("light_fraction", "light frac."),
        ("infeasible_plans", "infeasible plans"),
    )
    fidelity_metrics: ClassVar[tuple[Column, ...]] = (
        ("slo_violation_ratio", "SLO violation ratio"),
        ("slo_violation_ratio_windowed", "windowed SLO ratio"),
        ("light_fraction", "light fraction"),
        ("fid", "FID (table est.)"),
        ("latency_p50_s", "latency p50 (s)"),
        ("latency_p99_s", "latency p99 (s)"),
        ("plans", "plans"),
        ("dropped", "drops"),
    )
    role_files: ClassVar[tuple[str, ...]] = (
        "client/client.parquet",
        "client/client_meta.json",
        "sink/sink.parquet",
        "controller/decisions.parquet",
        "controller/ticks.parquet",
    )
    fidelity_series: ClassVar[tuple[Column, ...]] = (
        ("threshold", "threshold (1.0: every query to the heavy model)"),
        ("slo_violation_ratio_window", "SLO violation ratio, 5-s windows"),
    )

    def read_tables(self, config: DiffServeConfig) -> None:
        read_tables(config)

    def resolve(self, config: DiffServeConfig, container: dict[str, Any]) -> Resolved:
        # The run's saved config, its spec and MLflow hold every point of f(t), as if composed.
        curve = config.cascade.deferral_curve
        container["cascade"]["deferral_curve"].update(x=curve.x, y=curve.y, source=curve.source)
        validate(config)
        workers = workers_wanted(config)
        check_workers(workers, config.limits, "hostfile.workers")
        trace = load_trace(config)
        if config.quality.reference:
            trace_s = max(config.trace.duration_s, trace.duration_s)
            check_windows(trace_s, config.quality.window_s, "quality.window_s", config.limits)
        return Resolved(workers, trace, tuple(place(config.hostfile, workers)), config.cascade.name)

    def drain_s(self, config: DiffServeConfig) -> float:
        return config.run.drain_slo_factor * config.cascade.slo_s

    def client_terms(self, config: DiffServeConfig) -> ClientTerms:
        c, real = config.cascade, config.execution.mode == "real"
        return ClientTerms(slo_s=c.slo_s, sends_prompts=real, prompts_path=c.prompts_path, num_prompts=c.num_prompts)

    def run_virtual(self, plan: RunPlan[DiffServeConfig], run_dir: Path) -> VirtualRun:
        from runtime.engine.diffserve import DiffServeModel
        from runtime.engine.loop import Engine
        from runtime.traces.confidence import for_cascade

        config = plan.config
        c = config.cascade
        confidence = for_cascade(c.deferral_curve.x, c.deferral_curve.y, c.num_prompts, config.seed, c.confidence_path)
        workers = [a.name for a in plan.addresses if a.role == "worker"]
        t0 = time.perf_counter()
        model = DiffServeModel(
            config, plan.trace.arrival_s, plan.trace.prompt_index, workers, confidence, self.drain_s(config), run_dir
        )
        engine = Engine(model)
        engine.schedule_all(model.start())
        reached = engine.run(stop=lambda: model.finished)
        took = time.perf_counter() - t0
        model.write(run_dir)
        return VirtualRun(engine.handled, took, reached)

    def analyze(self, run_dir: Path, plan: RunPlan[DiffServeConfig], partial: bool) -> Analysis:
        return ds_analysis.analyze(run_dir, plan, partial)

    def figures(self, result: Analysis, run_dir: Path, plan: RunPlan[DiffServeConfig]) -> list[Path]:
        if result.records.empty:
            return []
        title = self.title(result.summary)
        return ds_figures.run_figures(
            result.series, result.summary, title, run_dir / "figures", plan.config.metrics.window_s
        )

    def console_rows(self, s: Mapping[str, Any]) -> list[tuple[str, str]]:
        return [
            ("queries sent", str(s["queries_sent"])),
            ("completed on time", str(s["completed_on_time"])),
            ("completed late", str(s["completed_late"])),
            ("dropped", str(s["dropped"])),
            ("unfinished", str(s["unfinished"])),
            (
                "SLO violation ratio / artifact's script",
                f"{s['slo_violation_ratio']:.4f} / {s['slo_violation_ratio_artifact_recipe']:.4f}",
            ),
            ("FID table estimate / artifact's script", f"{s['fid']:.2f} / {s['fid_artifact_recipe']:.2f}"),
            ("latency mean / p99 (s)", f"{s['latency_mean_s']:.3f} / {s['latency_p99_s']:.3f}"),
            ("light fraction", f"{s['light_fraction']:.3f}"),
            # a plan that met no constraint set is the fallback: say how often the planner fell back
            ("plans / infeasible", f"{s.get('plans', 0)} / {s.get('infeasible_plans', 0)}"),
        ]

    def report_figures(
        self, uri: str, rows: list[dict[str, Any]], out_dir: Path, title: str, prefix: str = ""
    ) -> list[Path]:
        return ds_figures.comparison_figures(rows, out_dir, title, prefix)

    def profile(self, config: DiffServeConfig, options: ProfileOptions) -> str:
        from orchestrator.systems.diffserve.profile import profile_cascade

        return profile_cascade(config, options)
