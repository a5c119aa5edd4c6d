"""A Hydra sweeper for a union of grids: `hydra/sweeper=grids` with `hydra.sweeper.grids`
(a Hydra plugin, so it lives in the `hydra_plugins` namespace package).

Hydra's basic sweeper runs one cartesian product. A paper's figures need several that do not
multiply (the ablation levels apply to one approach only, the on-demand fleets to none), so
an experiment preset lists them, and one multirun runs every job of every grid through the
configured launcher (basic, joblib, ray):

    # conf/experiment/spotserve_figures.yaml
    hydra:
      sweeper:
        grids:
          - {model: "6.7B,20B,30B", trace: "As,Bs", approach: "spotserve,rerouting"}
          - {model: 20B, trace: "As,Bs", ablation: "1,2,3,4"}

Overrides on the command line apply to every grid. The jobs are validated by the command line
(orchestrator.compose) before any starts, so this sweeper does not compose them a second time.
The launcher composes each job through `SharedCompositions` (alike.py): jobs that
differ only in plain values, such as seeds, share one composition.
"""

# No `from __future__ import annotations`: Hydra loads plugin modules without registering them
# in sys.modules, and dataclasses would then fail to resolve string annotations.
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from hydra_plugins.servelab_sweepers.alike import SharedCompositions


@dataclass
class GridsSweeperConf:
    _target_: str = "hydra_plugins.servelab_sweepers.grids_sweeper.GridsSweeper"
    max_batch_size: int | None = None
    params: dict[str, str] | None = None
    grids: list[dict[str, str]] = field(default_factory=list)


ConfigStore.instance().store(group="hydra/sweeper", name="grids", node=GridsSweeperConf)


def expand(grids: Sequence[Mapping[str, Any]], arguments: Sequence[str]) -> list[list[str]]:
    """Every job of every grid: the grid's axes, then the command's own overrides (which win)."""
    parser = OverridesParser.create()
    jobs: list[list[str]] = []
    for grid in grids or [{}]:
        axes = [f"{k}={v}" for k, v in grid.items()]
        given = {a.split("=", 1)[0] for a in arguments}
        overrides = parser.parse_overrides([a for a in axes if a.split("=", 1)[0] not in given] + list(arguments))
        for batch in BasicSweeper.split_arguments(overrides, None):
            jobs += batch
    return jobs


class GridsSweeper(BasicSweeper):
    def __init__(
        self,
        max_batch_size: int | None,
        params: dict[str, str] | None = None,
        grids: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        super().__init__(max_batch_size, params)
        self.grids = [dict(g) for g in grids]

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        # The launcher composes each job through this loader: jobs alike share one composition.
        shared = HydraContext(SharedCompositions(hydra_context.config_loader), hydra_context.callbacks)
        super().setup(hydra_context=shared, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        from pathlib import Path

        from omegaconf import OmegaConf

        params = [*self._parse_config(), *arguments]
        jobs = expand(self.grids, params)
        assert self.config is not None
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        self.overrides = (
            [jobs] if self.max_batch_size is None else list(self.split_overrides_to_chunks(jobs, self.max_batch_size))
        )
        self.batch_index = 0
        assert self.launcher is not None
        returns = []
        start = 0
        while not self.is_done():
            batch = self.get_job_batch()
            results = self.launcher.launch(batch, initial_job_idx=start)
            start += len(batch)
            returns.append(results)
        return returns
