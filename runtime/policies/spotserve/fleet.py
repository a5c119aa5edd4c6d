"""The fleet a SpotServe controller manages: alive instances, the configuration, the replicas.

A replica is one pipeline of tp x pp GPUs (positions in rank order: tp fastest, then pp); its
first GPU's worker is the leader that runs the replica's batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from runtime.policies.spotserve.cost_model import ZERO, ParallelConfig
from runtime.policies.spotserve.device_mapper import DeviceMapping
from runtime.policies.spotserve.layout import Gpu, Position


@dataclass(frozen=True)
class Replica:
    id: int
    dp: int  # its index in the configuration
    gpus: tuple[Gpu, ...]  # positions (tp, pp) in rank order

    @property
    def leader(self) -> Gpu:
        return self.gpus[0]

    def uses(self, instances: Iterable[str]) -> bool:
        names = set(instances)
        return any(g.instance in names for g in self.gpus)


@dataclass(frozen=True)
class Fleet:
    alive: tuple[str, ...]  # instances alive, in the order they came
    config: ParallelConfig
    replicas: tuple[Replica, ...]

    def replica(self, replica_id: int) -> Replica:
        return next(r for r in self.replicas if r.id == replica_id)

    def layout(self) -> dict[Position, Gpu]:
        """Position -> GPU of the current configuration (dp renumbered by replica order)."""
        cfg = self.config
        out = {}
        for r in self.replicas:
            for k, gpu in enumerate(r.gpus):
                out[Position(r.dp, k % cfg.tp, k // cfg.tp)] = gpu
        return out

    def busy_gpus(self) -> set[Gpu]:
        return {g for r in self.replicas for g in r.gpus}


EMPTY = Fleet((), ZERO, ())


def instance_gpus(instances: Iterable[str], per_instance: int) -> list[Gpu]:
    """Every GPU of `instances`, instance by instance, in rank order."""
    return [Gpu(name, k) for name in instances for k in range(per_instance)]


def replicas_from(mapping: DeviceMapping, first_id: int) -> list[Replica]:
    """One replica per dp index of the mapping's configuration, with fresh ids from `first_id`."""
    cfg = mapping.config
    out = []
    for d in range(cfg.dp):
        gpus = tuple(mapping.gpu(Position(d, k % cfg.tp, k // cfg.tp)) for k in range(cfg.tp * cfg.pp))
        out.append(Replica(first_id + d, d, gpus))
    return out


def renumbered(replicas: Iterable[Replica], config: ParallelConfig) -> tuple[Replica, ...]:
    """`replicas` with dp indices 0.. in order (kept replicas plus new ones under one config)."""
    return tuple(Replica(r.id, d, r.gpus) for d, r in enumerate(replicas)) if config.dp else ()


def map_positions(assignment: Mapping[Position, Gpu]) -> dict[Gpu, Position]:
    return {g: p for p, g in assignment.items()}
