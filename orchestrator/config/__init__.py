"""The config groups a user picks an option of; the schemas are registered with Hydra's
ConfigStore by `orchestrator.compose.register` (each system's, from its registry entry)."""

from __future__ import annotations

from pathlib import Path

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"  # the project's Hydra config folder
SCHEMA_GROUP = "schema"  # conf/system/<name>.yaml lists /schema: <name> first in its defaults

# The groups a user picks an option of on the command line, in the order of the defaults list.
GROUPS = ("system", "cascade", "model", "trace", "approach", "hostfile", "execution", "experiment")
# Hydra's flags that print something instead of running a job.
INFO_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--resolve", "--shell-completion", "-sc"}


def runs_one_job(argv: list[str]) -> bool:
    """Whether a command line asks for one job (not a sweep, not one of Hydra's information
    flags); it may still fail its config check."""
    return not any(a in ("-m", "--multirun") or a.split("=")[0] in INFO_FLAGS for a in argv)
