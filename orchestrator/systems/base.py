"""What a serving system tells the testbed: everything that differs between DiffServe and
SpotServe, behind one interface. Shared code asks the run's `System` and never branches on a
system's name.

| member              | used by                 | what it says                                          |
| ------------------- | ----------------------- | ----------------------------------------------------- |
| name, subject_key   | config, tracking        | the system; the group naming what it serves           |
| schema              | composition, the roles  | its Config subclass (runtime/schema/<name>.py)        |
| approaches          | validation, errors      | the approaches it has (others belong to another one)  |
| has_slo             | progress line, console  | whether queries have a latency SLO                    |
| role_targets        | the run spec            | the class of each role                                |
| client_terms        | the run spec, results   | the SLO, tokens per request and prompts of the client |
| role_files          | results                 | the files its roles must leave (else: partial)        |
| resolve             | orchestrator.plan       | validation, files read once, workers, trace, places   |
| drain_s             | the wall run's watch    | how long the client waits after the last arrival      |
| run_virtual         | clock=virtual           | the engine model that replays the run in-process      |
| analyze, figures    | results                 | summary, per-second series, the run's figures         |
| console_rows        | the end-of-run table    | the numbers a run prints                              |
| headline            | a sweep's job lines     | the few numbers of a finished job's one line           |
| report_*            | orchestrator.report     | grouping keys, columns, comparison figures            |
| fidelity_*          | orchestrator.fidelity   | what the two clocks are compared on                   |
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from runtime.schema import Config, HostConfig
from runtime.spec import SCHEMA_TARGET, ClientTerms, RoleAddress
from runtime.traces.arrivals import ArrivalTrace

if TYPE_CHECKING:
    import pandas as pd

    from orchestrator.deploy.base import Host

Column = tuple[str, str]  # summary key, heading
C = TypeVar("C", bound=Config)  # a system's schema (runtime/schema/<name>.py)


@dataclass(frozen=True)
class Resolved:
    """What a system makes of a validated config: the run's GPU workers, the arrivals the client
    replays, where every role runs, the name of what is served, and the system's own details
    (SpotServe: its availability events), read once and handed to every later phase."""

    workers: int
    trace: ArrivalTrace
    addresses: tuple[RoleAddress, ...]
    subject: str
    details: Any = None


@dataclass(frozen=True)
class RunPlan(Generic[C]):
    """A config resolved once by its system (orchestrator.plan.resolve): everything the later
    phases read (typed config, workers, trace, role addresses, the system's own details)."""

    config: C
    container: dict[str, Any]  # the resolved config as plain data: spec, config_resolved.yaml, MLflow params
    system: System[C]
    resolved: Resolved

    @property
    def workers(self) -> int:
        return self.resolved.workers

    @property
    def trace(self) -> ArrivalTrace:
        return self.resolved.trace

    @property
    def addresses(self) -> tuple[RoleAddress, ...]:
        return self.resolved.addresses

    @property
    def subject(self) -> str:
        return self.resolved.subject


@dataclass(frozen=True)
class Analysis:
    """What a system's `analyze` makes of a finished run's files."""

    records: pd.DataFrame
    decisions: pd.DataFrame
    series: pd.DataFrame
    summary: dict[str, Any]
    step_metrics: list[tuple[str, float, int]] = field(default_factory=list)  # more MLflow step metrics
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # more CSV files: run-relative path -> rows


@dataclass(frozen=True)
class VirtualRun:
    """What the engine reports about a virtual-clock run."""

    events: int
    engine_s: float
    trace_s: float
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProfileOptions:
    """`python -m orchestrator.profile`'s options (orchestrator/profile.py)."""

    batch_sizes: list[int] | None  # None: the system's default
    repeats: int
    warmup: int
    curve_prompts: int
    max_tp: int | None
    out: Path


class System(ABC, Generic[C]):
    name: ClassVar[str]
    schema: ClassVar[type[Config]]
    subject_key: ClassVar[str]
    approaches: ClassVar[tuple[str, ...]]
    has_slo: ClassVar[bool]
    role_targets: ClassVar[Mapping[str, str]]
    report_keys: ClassVar[tuple[str, ...]]
    report_columns: ClassVar[tuple[Column, ...]]
    headline: ClassVar[tuple[Column, ...]]  # a sweep job's one line: the numbers a glance needs
    fidelity_metrics: ClassVar[tuple[Column, ...]]
    fidelity_series: ClassVar[tuple[Column, ...]]  # per-second series the fidelity figure overlays
    role_files: ClassVar[tuple[str, ...]]  # what the roles must leave under roles/: a run without one is partial

    def read_tables(self, config: C) -> None:
        """Fill in what `config` names in table files (conf/tables/), kept out of Hydra's
        composition; ConfigError naming the key. Nothing by default."""

    @abstractmethod
    def resolve(self, config: C, container: dict[str, Any]) -> Resolved:
        """Validate the system's part of `config` (ConfigError naming the key) and resolve it;
        may rewrite `config` and `container` (e.g. events read from a file, inlined)."""

    @abstractmethod
    def drain_s(self, config: C) -> float:
        """Trace seconds the client waits for notices after the last arrival."""

    @abstractmethod
    def client_terms(self, config: C) -> ClientTerms:
        """What the client's books need: the SLO, tokens per request, the prompts it sends."""

    def targets(self) -> dict[str, str]:
        """The run spec's classes: each role's, and the schema's (what the roles read the config as)."""
        return {**self.role_targets, SCHEMA_TARGET: f"{self.schema.__module__}:{self.schema.__qualname__}"}

    @abstractmethod
    def run_virtual(self, plan: RunPlan[C], run_dir: Path) -> VirtualRun:
        """Replay the run on the virtual clock and write the roles' files under run_dir/roles/."""

    @abstractmethod
    def analyze(self, run_dir: Path, plan: RunPlan[C], partial: bool) -> Analysis:
        """Records, accounting, summary and per-second series from the roles' files."""

    @abstractmethod
    def figures(self, analysis: Analysis, run_dir: Path, plan: RunPlan[C]) -> list[Path]:
        """The run's own figures (run_dir/figures/)."""

    @abstractmethod
    def console_rows(self, summary: Mapping[str, Any]) -> list[tuple[str, str]]:
        """The end-of-run table: (label, value) rows."""

    @abstractmethod
    def report_figures(
        self, uri: str, rows: list[dict[str, Any]], out_dir: Path, title: str, prefix: str = ""
    ) -> list[Path]:
        """The comparison figures of finished runs (one aggregated row per group of runs,
        orchestrator.report), into out_dir with file names starting with `prefix`."""

    @abstractmethod
    def profile(self, config: C, options: ProfileOptions) -> str:
        """Measure the subject on this machine, write a config the simulator reads; returns
        what to tell the user (the file, and the command that simulates it)."""

    def host_checks(self, config: C, host: Host, host_cfg: HostConfig) -> list[tuple[str, bool, str]]:
        """`hosts check` rows (item, ok, detail) this system adds for one host."""
        return []

    def title(self, summary: Mapping[str, Any]) -> str:
        """approach / subject / trace, the run's one-line name."""
        return f"{summary['approach']} / {summary.get(self.subject_key, '?')} / {summary['trace']}"

    def run_label(self, summary: Mapping[str, Any]) -> str:
        """The approach as a run's name shows it."""
        return str(summary["approach"])

    def tags(self, summary: Mapping[str, Any]) -> dict[str, str]:
        """MLflow tags that group and filter runs."""
        keys = ("system", *self.report_keys, "clock")
        return {k: str(summary[k]) for k in dict.fromkeys(keys) if k in summary}

    def progress_outcome(self, sent: int, completed: int, violations: int) -> str:
        """The end of the progress line: violations with an SLO, else requests in flight."""
        if not self.has_slo:
            return f"in flight {sent - completed}"
        share = f"{100.0 * violations / completed:.1f}%" if completed else "-"
        return f"violations {violations} ({share})"
