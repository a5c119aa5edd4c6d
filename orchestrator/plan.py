"""Resolving a config into its run plan (`RunPlan`, orchestrator/systems/base.py), once, by its
system's registry entry.

    plan = resolve(cfg)   # validates in one pass; ConfigError / TraceFormatError naming the key or file

Nothing is written and nothing starts: the command line resolves every job of a sweep this way
before the first one runs, and `run_experiment` resolves its job again to run it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf._utils import get_omega_conf_dumper

from orchestrator.config.keys import check_known_keys
from orchestrator.config.limits import check_run, machine
from orchestrator.config.validate import validate_common
from orchestrator.systems import get_system, owner_of_approach
from orchestrator.systems.base import RunPlan
from runtime.exceptions import ConfigError
from runtime.schema import Config


def typed_config(cfg: DictConfig) -> Config:
    """The composed config as its system's schema (runtime/schema/<name>.py), with what it
    names in table files read in; a key the schema does not know (a typo added with `+`) is a
    ConfigError naming it and the closest known key."""
    system = get_system(str(cfg.system.name))
    schema = system.schema
    check_known_keys(cfg, schema)
    obj = OmegaConf.to_object(cfg)
    if not isinstance(obj, schema):
        raise ConfigError(
            f"config: the composed config is not a {schema.__name__} (does conf/system/{cfg.system.name}.yaml "
            f"list /schema: {cfg.system.name} first in its defaults?)"
        )
    system.read_tables(obj)
    return obj


C = TypeVar("C", bound=Config)


def config_as(cfg: DictConfig, schema: type[C]) -> C:
    """`typed_config` for code of one system (a benchmark, a test): its schema's type, or a
    ConfigError naming the system it got."""
    obj = typed_config(cfg)
    if not isinstance(obj, schema):
        raise ConfigError(f"system: {cfg.system.name} composes a {type(obj).__name__}, not a {schema.__name__}")
    return obj


def _dumper() -> type:
    """OmegaConf's YAML dumper (it quotes a string that YAML would read as another type, e.g.
    'y') on libyaml's emitter where PyYAML has it: the same text in a quarter of the time."""
    omegaconf_dumper = get_omega_conf_dumper()
    if not getattr(yaml, "__with_libyaml__", False):
        return omegaconf_dumper

    class Dumper(yaml.CDumper):
        pass

    Dumper.add_representer(str, omegaconf_dumper.str_representer)
    return Dumper


_DUMPER = _dumper()


def config_text(container: dict[str, Any]) -> str:
    """A resolved config (plain values) as YAML, byte for byte what `OmegaConf.to_yaml` writes
    (tests/test_config.py compares), without building an OmegaConf tree of it first: that was
    most of to_yaml's time, paid per sweep job."""
    return yaml.dump(container, default_flow_style=False, allow_unicode=True, sort_keys=False, Dumper=_DUMPER)


def saved_config(path: Path) -> DictConfig:
    """A run's config_resolved.yaml, typed again by its system's schema (to resolve it anew)."""
    data = OmegaConf.load(path)
    merged = OmegaConf.merge(OmegaConf.structured(get_system(str(data.system.name)).schema), data)
    assert isinstance(merged, DictConfig)  # a mapping merged into a dataclass stays one
    return merged


def resolve(cfg: DictConfig) -> RunPlan:
    config = typed_config(cfg)
    system = get_system(config.system.name)
    validate_common(config)
    approach = config.approach.name
    owner = owner_of_approach(approach)
    if approach not in system.approaches and not config.approach.plugin:  # a plugin: the system checks it
        hint = f" (a {owner.name} approach: it needs system={owner.name})" if owner is not None else ""
        raise ConfigError(
            f"approach: unknown {system.name} approach {approach!r}{hint} (allowed: {', '.join(sorted(system.approaches))})"
        )
    container: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    resolved = system.resolve(config, container)
    trace = resolved.trace
    trace_s = max(config.trace.duration_s, trace.duration_s) if len(trace) else config.trace.duration_s
    check_run(config, trace_s, system.drain_s(config), len(trace), resolved.addresses, machine())
    return RunPlan(config, container, system, resolved)
