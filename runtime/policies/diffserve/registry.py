"""Approach names to classes: the one place a new DiffServe approach is registered (or, for an
approach in your own package, named by `approach.plugin`)."""

from __future__ import annotations

from runtime.exceptions import ConfigError
from runtime.plugins import load_class
from runtime.policies.diffserve.all_heavy import AllHeavy
from runtime.policies.diffserve.all_light import AllLight
from runtime.policies.diffserve.plan import Approach
from runtime.policies.diffserve.planner import DiffServe
from runtime.policies.diffserve.proteus import Proteus
from runtime.policies.diffserve.static import Static
from runtime.schema.diffserve import CascadeConfig, DiffServeApproachConfig

APPROACHES: dict[str, type[Approach]] = {
    AllLight.name: AllLight,
    AllHeavy.name: AllHeavy,
    Static.name: Static,
    Proteus.name: Proteus,
    DiffServe.name: DiffServe,
}


def approach_class(config: DiffServeApproachConfig) -> type[Approach]:
    """The class that runs `config`: its plugin, else the registered approach of its name."""
    if config.plugin:
        return load_class(config.plugin, Approach, "approach.plugin")
    try:
        return APPROACHES[config.name]
    except KeyError:
        raise ConfigError(
            f"approach: unknown DiffServe approach {config.name!r} (allowed: {', '.join(sorted(APPROACHES))}, "
            "or your own with approach.plugin)"
        ) from None


def make_approach(cascade: CascadeConfig, config: DiffServeApproachConfig) -> Approach:
    return approach_class(config)(cascade, config)
