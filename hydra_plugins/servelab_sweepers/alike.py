"""Jobs alike: a sweep's jobs that differ only in plain values (`seed=0,1,2`) share one
composition. Hydra composes every job from its files (about 0.15 s a job with our configs);
a job alike another is that composition with its own values set, as Hydra sets a command
line's values once it has composed the files. The command's up-front check
(orchestrator/compose.py) and the launcher (`SharedCompositions`, which our sweeper hands it)
both compose this way.
"""

# No `from __future__ import annotations`: Hydra loads plugin modules without registering them
# in sys.modules (grids_sweeper.py).
import copy
import uuid
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.config_loader import ConfigLoader
from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import OverrideType
from hydra.plugins.config_source import ConfigSource
from omegaconf import DictConfig, OmegaConf


def values_apart(job: list[str], groups: frozenset[str]) -> tuple[tuple[str, ...], list[str]] | None:
    """A job as (what picks its config files, its plain `key=value` settings), or None when
    that split is not safe (a setting added, deleted, given twice, or a dict or list)."""
    rest, values, keys = [], [], []
    for item, parsed in zip(job, OverridesParser.create().parse_overrides(job), strict=True):
        key = parsed.key_or_group
        plain = parsed.type == OverrideType.CHANGE and parsed.package is None and "/" not in key
        # `seed=1` or `cascade.slo_s=4` set a value; `cascade=sdxs` or `experiment=x` pick files
        if plain and (key not in groups if "." not in key else not key.startswith("hydra.")):
            if not isinstance(parsed.value(), str | int | float | bool | None):
                return None
            values.append(item)
            keys.append(key)
        else:
            rest.append(item)
    return (tuple(rest), values) if len(set(keys)) == len(keys) else None


def alike_key(split: tuple[tuple[str, ...], list[str]]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """What jobs alike share (`values_apart`'s split of each): the overrides that pick their
    files and the keys their values set."""
    return split[0], tuple(v.partition("=")[0] for v in split[1])


# A sweep's compositions by (sweep, config name, `alike_key`), kept for the process: the
# joblib launcher unpickles a new loader for every job, in worker processes that run many.
_COMPOSED: dict[tuple[str, str, tuple[str, ...], tuple[str, ...]], DictConfig] = {}


class SharedCompositions(ConfigLoader):
    """Hydra's config loader as a sweep's launcher sees it (our sweeper hands it to whichever
    launcher the sweep uses). The first job of a kind is composed by Hydra; each job alike it
    is a copy with its own values set, and its own `hydra.overrides.task` and
    `hydra.job.override_dirname`, made as Hydra makes them (tests/test_config.py compares every
    job of three sweeps, the paper's among them, with Hydra's own composition of it). A copy
    costs about 0.02 s where composing costs 0.15 s."""

    def __init__(self, inner: ConfigLoader) -> None:
        self.inner = inner
        self.sweep = uuid.uuid4().hex
        self._groups: frozenset[str] | None = None

    def load_sweep_config(self, master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        if self._groups is None:
            self._groups = frozenset(self.inner.list_groups(""))
        job = [*master_config.hydra.overrides.hydra, *sweep_overrides]  # what Hydra composes
        split = values_apart(job, self._groups)
        if split is None:
            return self.inner.load_sweep_config(master_config, sweep_overrides)
        key = (self.sweep, str(master_config.hydra.job.config_name), *alike_key(split))
        base = _COMPOSED.get(key)
        if base is None:
            for old in [k for k in _COMPOSED if k[0] != self.sweep]:  # an earlier sweep's
                del _COMPOSED[old]
            cfg = self.inner.load_sweep_config(master_config, sweep_overrides)
            _COMPOSED[key] = copy.deepcopy(cfg)  # the launcher and the job change theirs
            return cfg
        cfg = copy.deepcopy(base)
        parser = OverridesParser.create()
        ConfigLoaderImpl._apply_overrides_to_config(parser.parse_overrides(split[1]), cfg)
        task = [o for o in parser.parse_overrides(job) if not o.is_hydra_override()]
        names = cfg.hydra.job.config.override_dirname
        cfg.hydra.overrides.task = [o.input_line for o in task]
        cfg.hydra.job.override_dirname = get_overrides_dirname(
            overrides=task, kv_sep=names.kv_sep, item_sep=names.item_sep, exclude_keys=names.exclude_keys
        )
        OmegaConf.copy_cache(from_config=master_config, to_config=cfg)
        return cfg

    def load_configuration(self, *args: Any, **kwargs: Any) -> DictConfig:
        return self.inner.load_configuration(*args, **kwargs)

    def get_search_path(self) -> ConfigSearchPath:
        return self.inner.get_search_path()

    def get_sources(self) -> list[ConfigSource]:
        return self.inner.get_sources()

    def list_groups(self, parent_name: str) -> list[str]:
        return self.inner.list_groups(parent_name)

    def get_group_options(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.inner.get_group_options(*args, **kwargs)

    def compute_defaults_list(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.compute_defaults_list(*args, **kwargs)
