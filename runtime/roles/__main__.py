"""Start one role process from a run spec.

    python -m runtime.roles worker --spec /path/spec.json --name worker-3 [--out DIR]

Exit codes: 0 after a clean stop, 3 for an error the role reports in one line (e.g. the port
is taken), 1 for anything unexpected (with its traceback in the role's log).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from runtime.exceptions import ServelabError
from runtime.logs import configure_role_logging, init_logger
from runtime.spec import load

ROLES = ("controller", "load_balancer", "worker", "sink", "client")


def build(role: str, spec_path: Path, name: str, out_dir: Path):  # type: ignore[no-untyped-def]
    spec = load(spec_path)
    if spec.config.system.name == "spotserve" and role in ("controller", "load_balancer", "worker"):
        from runtime.roles.spot_controller import SpotControllerRole
        from runtime.roles.spot_load_balancer import SpotLoadBalancerRole
        from runtime.roles.spot_worker import SpotWorkerRole

        cls = {"controller": SpotControllerRole, "load_balancer": SpotLoadBalancerRole, "worker": SpotWorkerRole}[role]
        return cls(spec, name, out_dir)
    if role == "controller":
        from runtime.roles.controller import ControllerRole

        return ControllerRole(spec, name, out_dir)
    if role == "load_balancer":
        from runtime.roles.load_balancer import LoadBalancerRole

        return LoadBalancerRole(spec, name, out_dir)
    if role == "worker":
        from runtime.roles.worker import WorkerRole

        return WorkerRole(spec, name, out_dir)
    if role == "sink":
        from runtime.roles.sink import SinkRole

        return SinkRole(spec, name, out_dir)
    from runtime.roles.client import ClientRole

    return ClientRole(spec, name, out_dir, spec_path.parent)


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
