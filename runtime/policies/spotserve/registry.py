"""SpotServe-side approach names to classes: the one place a new approach is registered."""

from __future__ import annotations

from runtime.cores.spotserve.pool import RequestPoolCore
from runtime.exceptions import ConfigError
from runtime.policies.spotserve.ablation import features
from runtime.policies.spotserve.reconfiguration import SpotApproach
from runtime.policies.spotserve.reparallelization import Reparallelization
from runtime.policies.spotserve.rerouting import Rerouting
from runtime.policies.spotserve.spotserve import SpotServe
from runtime.schema import ModelConfig, SpotConfig

APPROACHES: dict[str, type[SpotApproach]] = {
    SpotServe.name: SpotServe,
    Reparallelization.name: Reparallelization,
    Rerouting.name: Rerouting,
}


def request_pool(approach: str, spot: SpotConfig) -> RequestPoolCore:
    """The request pool for a run of `approach` with the run's mechanics."""
    m = spot.mechanics
    ahead = APPROACHES[approach].pool_batches if m.old_batching and approach in APPROACHES else 0
    return RequestPoolCore(power_of_two=m.power_of_two_batches, ahead=ahead)


def make_approach(name: str, model: ModelConfig, spot: SpotConfig, ablation: int, max_instances: int) -> SpotApproach:
    try:
        cls = APPROACHES[name]
    except KeyError:
        raise ConfigError(
            f"approach: unknown SpotServe approach {name!r} (allowed: {', '.join(sorted(APPROACHES))})"
        ) from None
    if ablation and cls is not SpotServe:
        raise ConfigError(
            f"ablation: levels 1..4 take features out of spotserve; approach {name} has none (use ablation=0)"
        )
    return cls(model, spot, features(ablation), max_instances)
