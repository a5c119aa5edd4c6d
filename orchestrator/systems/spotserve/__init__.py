"""SpotServe's registry entry: LLM serving on spot instances that come and go, with
re-parallelization, migration planning and token-level recovery, against the
reparallelization and rerouting baselines (ASPLOS'24)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from orchestrator.config.limits import check_queries, check_workers, count_lines
from orchestrator.deploy.placement import place
from orchestrator.systems.base import Analysis, Column, ProfileOptions, Resolved, System, VirtualRun
from orchestrator.systems.spotserve import analysis as spot_analysis
from orchestrator.systems.spotserve import report as spot_report
from orchestrator.systems.spotserve.figures import latency_over_time
from orchestrator.systems.spotserve.validate import spot_workers, validate
from runtime.exceptions import ConfigError
from runtime.logs import init_logger
from runtime.policies.spotserve.registry import APPROACHES
from runtime.schema import HostConfig
from runtime.schema.spotserve import SpotServeConfig
from runtime.spec import ClientTerms
from runtime.traces.arrivals import ArrivalTrace
from runtime.traces.spotserve import AvailabilityEvent, availability_to_config, expected_requests, load_requests

if TYPE_CHECKING:
    from orchestrator.deploy.base import Host
    from orchestrator.systems.base import RunPlan

log = init_logger("orchestrator")


def inline_availability(config: SpotServeConfig, container: dict[str, Any], events: list[AvailabilityEvent]) -> None:
    """Replace `trace.availability_path` by the events read from it, in the typed config and in
    the container the spec is written from: roles, on any host and in any directory, then
    replay exactly the events validated here, and the resolved config records them. The trace
    takes the file's name and its length (the end event), so the requests stop with the fleet
    and the run is not filed under the configured trace it replaced."""
    path = Path(str(config.trace.availability_path))
    inline = availability_to_config(events)
    window = "-".join(f"{t:g}" for t in config.trace.availability_window_s)
    changes = {
        "availability": inline,
        "availability_path": None,
        "availability_window_s": [],
        "duration_s": inline[-1].at_s,
        "name": f"{path.stem}_{window}" if window else path.stem,
    }
    for key, value in changes.items():
        setattr(config.trace, key, value)
        container["trace"][key] = [dataclasses.asdict(e) for e in inline] if key == "availability" else value
    log.info("Read %d availability events (%g trace seconds) from %s", len(inline), inline[-1].at_s, path)


class SpotServeSystem(System[SpotServeConfig]):
    name: ClassVar[str] = "spotserve"
    schema: ClassVar[type[SpotServeConfig]] = SpotServeConfig
    subject_key: ClassVar[str] = "model"
    approaches: ClassVar[tuple[str, ...]] = tuple(APPROACHES)
    has_slo: ClassVar[bool] = False
    role_targets: ClassVar[Mapping[str, str]] = {
        "controller": "runtime.roles.spotserve.controller:SpotControllerRole",
        "load_balancer": "runtime.roles.spotserve.load_balancer:SpotLoadBalancerRole",
        "worker": "runtime.roles.spotserve.worker:SpotWorkerRole",
        "sink": "runtime.roles.sink:SinkRole",
        "client": "runtime.roles.client:ClientRole",
    }
    report_keys: ClassVar[tuple[str, ...]] = ("approach", "ablation", "model", "trace", "trace_kind")
    headline: ClassVar[tuple[Column, ...]] = (
        ("latency_mean_s", "mean s"),
        ("latency_p99_s", "P99 s"),
        ("unfinished", "unfinished"),
        ("cost_usd", "cost $"),
    )
    report_columns: ClassVar[tuple[Column, ...]] = (
        ("latency_mean_s", "mean (s)"),
        ("latency_p50_s", "P50"),
        ("latency_p90_s", "P90"),
        ("latency_p95_s", "P95"),
        ("latency_p96_s", "P96"),
        ("latency_p97_s", "P97"),
        ("latency_p98_s", "P98"),
        ("latency_p99_s", "P99 (s)"),
        ("completed", "completed"),
        ("unfinished", "unfinished"),
        ("cost_usd", "cost ($)"),
        ("cost_per_1k_tokens_usd", "$ / 1k tok."),
    )
    fidelity_metrics: ClassVar[tuple[Column, ...]] = (
        ("latency_mean_s", "latency mean (s)"),
        ("latency_p50_s", "latency P50 (s)"),
        ("latency_p99_s", "latency P99 (s)"),
        ("completed", "completed"),
        ("unfinished", "unfinished"),
        ("restarted_requests", "restarted"),
        ("resumed_requests", "resumed"),
        ("reconfigurations", "reconfigurations"),
    )
    role_files: ClassVar[tuple[str, ...]] = (
        "client/client.parquet",
        "client/client_meta.json",
        "sink/sink.parquet",
        "controller/decisions.parquet",
        "controller/ticks.parquet",
        "load_balancer/pool.json",
    )
    fidelity_series: ClassVar[tuple[Column, ...]] = (
        ("completion_latency_mean_s", "mean latency of the requests completed (s)"),
        ("replicas", "replicas"),
    )

    def resolve(self, config: SpotServeConfig, container: dict[str, Any]) -> Resolved:
        events = validate(config)
        if config.trace.availability_path:
            inline_availability(config, container, events)
        instances, workers = spot_workers(config, events)
        check_workers(workers, config.limits, f"trace {config.trace.name} ({len(instances)} instances)")
        model = config.model
        r = config.trace.requests
        if r.path:
            check_queries(count_lines(r.path), config.limits, f"{r.path} (trace.requests.path)")
        else:
            expected = expected_requests(config.trace, model)
            check_queries(expected, config.limits, f"trace {config.trace.name}", estimated=True)
        requests = load_requests(config.trace, model, config.seed)
        if len(requests) == 0:
            raise ConfigError(
                f"trace.requests: no request arrives within the {config.trace.duration_s:g} s of trace {config.trace.name}"
            )
        path = config.trace.availability_path
        name = Path(path).stem if path else config.trace.name  # named by its file, not by trace=...
        trace = ArrivalTrace(name, requests.arrival_s, requests.ids)
        # Simulated GPUs of one instance share a process; a real one needs its own.
        shared = config.execution.mode == "simulated" and config.execution.worker_processes == "instance"
        addresses = place(config.hostfile, workers, instances, config.spot.gpus_per_instance, shared)
        return Resolved(workers, trace, tuple(addresses), model.name, events)

    def drain_s(self, config: SpotServeConfig) -> float:
        return 0.0

    def client_terms(self, config: SpotServeConfig) -> ClientTerms:
        return ClientTerms(slo_s=None, output_len=config.model.output_len)  # no SLO: counted until the trace ends

    def run_virtual(self, plan: RunPlan[SpotServeConfig], run_dir: Path) -> VirtualRun:
        from runtime.engine.loop import Engine
        from runtime.engine.spotserve import SpotServeModel
        from runtime.policies.spotserve.layout import Gpu

        workers = {Gpu(str(a.instance), int(a.gpu or 0)): a.name for a in plan.addresses if a.role == "worker"}
        t0 = time.perf_counter()
        model = SpotServeModel(
            plan.config, plan.trace.arrival_s, plan.trace.prompt_index, plan.resolved.details, workers, run_dir
        )
        engine = Engine(model)
        engine.schedule_all(model.start())
        reached = engine.run(stop=lambda: model.finished)
        took = time.perf_counter() - t0
        model.write(run_dir)
        return VirtualRun(engine.handled, took, reached)

    def analyze(self, run_dir: Path, plan: RunPlan[SpotServeConfig], partial: bool) -> Analysis:
        return spot_analysis.analyze(run_dir, plan, partial)

    def figures(self, result: Analysis, run_dir: Path, plan: RunPlan[SpotServeConfig]) -> list[Path]:
        if result.records.empty:
            return []
        path = run_dir / "figures" / "latency_over_time.png"
        return [latency_over_time(result.records, result.series, self.title(result.summary), path)]

    def title(self, summary: Mapping[str, Any]) -> str:
        label = summary["approach"] + (f" (ablation {summary['ablation']})" if summary.get("ablation") else "")
        return f"{label} / {summary['model']} / {summary['trace']}"

    def run_label(self, summary: Mapping[str, Any]) -> str:
        level = f"-ablation{summary['ablation']}" if summary.get("ablation") else ""
        return f"{summary['approach']}{level}"

    def console_rows(self, s: Mapping[str, Any]) -> list[tuple[str, str]]:
        return [
            ("requests sent", str(s["queries_sent"])),
            ("completed", str(s["completed"])),
            ("unfinished", str(s["unfinished"])),
            ("latency mean (s)", f"{s['latency_mean_s']:.2f}"),
            (
                "latency P50 / P90 / P95 / P98 / P99 (s)",
                " / ".join(f"{s[f'latency_p{q}_s']:.2f}" for q in (50, 90, 95, 98, 99)),
            ),
            ("instance-hours spot / on-demand", f"{s['spot_instance_hours']:.2f} / {s['ondemand_instance_hours']:.2f}"),
            ("cost (USD), per 1k tokens", f"{s['cost_usd']:.2f}, {s['cost_per_1k_tokens_usd']:.5f}"),
            ("reconfigurations", str(s["reconfigurations"])),
        ]

    def report_figures(
        self, uri: str, rows: list[dict[str, Any]], out_dir: Path, title: str, prefix: str = ""
    ) -> list[Path]:
        return spot_report.comparison_figures(uri, rows, out_dir, title, prefix)

    def profile(self, config: SpotServeConfig, options: ProfileOptions) -> str:
        from orchestrator.systems.spotserve.profile import profile

        return profile(config, options)

    def host_checks(self, config: SpotServeConfig, host: Host, host_cfg: HostConfig) -> list[tuple[str, bool, str]]:
        from orchestrator.systems.spotserve.hosts import group_check

        return [group_check(host, host_cfg)] if config.execution.mode == "real" else []
