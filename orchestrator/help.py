"""`python -m orchestrator --help` without Hydra: the help template of conf/hydra/default.yaml
with its config groups listed as Hydra lists them (`group: option, option`, both sorted).
tests/test_cli.py checks that it prints what Hydra's own --help prints."""

from __future__ import annotations

from pathlib import Path

import yaml

from orchestrator.config import CONF_DIR

# Groups Hydra knows from the ConfigStore, not from files: each system's schema
# (orchestrator.compose.register), named as the system's config file.
STORED_GROUPS = {"schema": "system"}


def config_groups(conf: Path = CONF_DIR) -> dict[str, list[str]]:
    # A folder without options (conf/tables/: data) is no group, as Hydra lists them.
    groups = {d.name: sorted(p.stem for p in d.glob("*.yaml")) for d in conf.iterdir() if any(d.glob("*.yaml"))}
    groups.pop("hydra", None)
    for group, like in STORED_GROUPS.items():
        groups[group] = groups[like]
    return dict(sorted(groups.items()))


def help_text(conf: Path = CONF_DIR) -> str:
    template = yaml.safe_load((conf / "hydra" / "default.yaml").read_text())["help"]["template"]
    listing = "".join(f"{group}: {', '.join(options)}\n" for group, options in config_groups(conf).items())
    return str(template).replace("$APP_CONFIG_GROUPS", listing)
