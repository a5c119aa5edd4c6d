"""Start one role process from a run spec.

    python -m runtime.roles worker --spec /path/spec.json --name worker-3 [--out DIR]

The spec names the class of each role of the run's system (`targets`, chosen by the system's
registry entry). Exit codes: 0 after a clean stop, 3 for an error the role reports in one line
(e.g. the port is taken), 1 for anything unexpected (with its traceback in the role's log).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

from runtime.exceptions import ServelabError
from runtime.logs import configure_role_logging, init_logger
from runtime.roles.base import Role
from runtime.spec import load

ROLES = ("controller", "load_balancer", "worker", "sink", "client")


def build(role: str, spec_path: Path, name: str, out_dir: Path) -> Role:
    spec = load(spec_path)
    target = spec.targets.get(role)
    if target is None:
        raise ServelabError(f"the run spec names no class for the {role} role")
    module, _, cls = target.partition(":")
    role_cls = getattr(importlib.import_module(module), cls)
    built: Role = role_cls(spec, name, out_dir)
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.roles")
    parser.add_argument("role", choices=ROLES)
    parser.add_argument("--spec", required=True, type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", type=Path, default=Path.cwd(), help="where the role writes its files")
    args = parser.parse_args(argv)
    configure_role_logging()
    log = init_logger(f"{args.role}.{args.name}")
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        role = build(args.role, args.spec, args.name, args.out)
        return role.serve()
    except ServelabError as err:
        log.error("%s", err)
        return 3


if __name__ == "__main__":
    code = main()
    # The role's files are written by now. Exit at once rather than wait for gRPC threads
    # still blocked on a peer that vanished (a lost host): a stop must not hang on them.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
