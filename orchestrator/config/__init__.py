"""Hydra wiring of the schema: the structured configs registered with the ConfigStore."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from runtime.schema import Config

SCHEMA_NAME = "schema"

# The groups a user picks an option of on the command line, in the order of the defaults list.
GROUPS = ("system", "cascade", "model", "trace", "approach", "hostfile", "execution", "experiment")


def register() -> None:
    """Register the top-level schema; `conf/config.yaml` lists it first in its defaults. (The
    union-of-grids sweeper registers itself: hydra_plugins/servelab_sweepers/.)"""
    ConfigStore.instance().store(name=SCHEMA_NAME, node=Config)
