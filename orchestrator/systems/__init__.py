"""The system registry: the one place that lists the serving systems this testbed runs.

Each entry is a `System` (orchestrator/systems/base.py) in a package of its own beside this
file; its runtime side (policies, cores, role shells, engine model) lives under runtime/. A
third system is one more package and one more line in `SYSTEMS`.
"""

from __future__ import annotations

from orchestrator.systems.base import System
from orchestrator.systems.diffserve import DiffServeSystem
from orchestrator.systems.spotserve import SpotServeSystem
from runtime.exceptions import ConfigError

SYSTEMS: tuple[type[System], ...] = (DiffServeSystem, SpotServeSystem)


def system_names() -> list[str]:
    return [s.name for s in SYSTEMS]


def get_system(name: str) -> System:
    for cls in SYSTEMS:
        if cls.name == name:
            return cls()
    raise ConfigError(f"system: unknown system {name!r} (allowed: {', '.join(system_names())})")


def owner_of_group(group: str) -> type[System] | None:
    """The system whose subject group `group` is (e.g. cascade), if any."""
    return next((s for s in SYSTEMS if s.subject_key == group), None)


def owner_of_approach(approach: str) -> type[System] | None:
    return next((s for s in SYSTEMS if approach in s.approaches), None)
