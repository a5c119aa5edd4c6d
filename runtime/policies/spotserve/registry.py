"""SpotServe-side approach names to classes: the one place a new approach is registered (or, for
an approach in your own package, named by `approach.plugin`)."""

from __future__ import annotations

from runtime.cores.spotserve.pool import RequestPoolCore
from runtime.exceptions import ConfigError
from runtime.plugins import load_class
from runtime.policies.spotserve.ablation import features
from runtime.policies.spotserve.reconfiguration import SpotApproach
from runtime.policies.spotserve.reparallelization import Reparallelization
from runtime.policies.spotserve.rerouting import Rerouting
from runtime.policies.spotserve.spotserve import SpotServe
from runtime.schema.spotserve import ModelConfig, SpotConfig

APPROACHES: dict[str, type[SpotApproach]] = {
    SpotServe.name: SpotServe,
    Reparallelization.name: Reparallelization,
    Rerouting.name: Rerouting,
}


def approach_class(name: str, plugin: str | None = None) -> type[SpotApproach]:
    """The class that runs approach `name`: `plugin` when given, else the registered one."""
    if plugin:
        return load_class(plugin, SpotApproach, "approach.plugin")
    try:
        return APPROACHES[name]
    except KeyError:
        raise ConfigError(
            f"approach: unknown SpotServe approach {name!r} (allowed: {', '.join(sorted(APPROACHES))}, "
            "or your own with approach.plugin)"
        ) from None


def request_pool(name: str, spot: SpotConfig, plugin: str | None = None) -> RequestPoolCore:
    """The request pool for a run of approach `name` with the run's mechanics."""
    m = spot.mechanics
    ahead = approach_class(name, plugin).pool_batches if m.old_batching else 0
    return RequestPoolCore(power_of_two=m.power_of_two_batches, ahead=ahead)


def make_approach(
    name: str, model: ModelConfig, spot: SpotConfig, ablation: int, max_instances: int, plugin: str | None = None
) -> SpotApproach:
    cls = approach_class(name, plugin)
    if ablation and cls is not SpotServe:
        raise ConfigError(
            f"ablation: levels 1..4 take features out of spotserve; approach {name} has none (use ablation=0)"
        )
    return cls(model, spot, features(ablation), max_instances)
