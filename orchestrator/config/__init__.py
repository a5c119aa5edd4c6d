"""The config groups a user picks an option of; the schemas are registered with Hydra's
ConfigStore by `orchestrator.compose.register` (each system's, from its registry entry)."""

from __future__ import annotations

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"  # the project's Hydra config folder
SCHEMA_GROUP = "schema"  # conf/system/<name>.yaml lists /schema: <name> first in its defaults

# The groups a user picks an option of on the command line, in the order of the defaults list.
GROUPS = ("system", "cascade", "model", "trace", "approach", "hostfile", "execution", "experiment")
