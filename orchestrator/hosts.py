"""`python -m orchestrator.hosts {check,sync} hostfile=NAME [overrides...]`: look at the hosts
of a hostfile before a run, or put this project's code on them.

check: for every host, in parallel: reachable over SSH (or local); the project importable by
       the host's `python` with the same code as here (source fingerprint); the GPUs it
       claims visible to nvidia-smi (when execution=real); the ports its roles would use free;
       its working directory writable. Exit 0 when every host passes.
sync:  build a wheel of this project here and install it (no dependencies, unless --deps) into
       every host's `python`, in parallel.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.compose import load_plan
from orchestrator.deploy import connect
from orchestrator.deploy.base import Host
from orchestrator.deploy.deployment import DEFAULT_REMOTE_WORKDIR, busy_ports
from orchestrator.deploy.fingerprint import PACKAGES, fingerprint
from orchestrator.deploy.launcher import parallel
from orchestrator.deploy.local import LocalHost
from orchestrator.systems import get_system
from orchestrator.systems.base import RunPlan
from runtime.exceptions import DeployError, ServelabError
from runtime.schema import Config, HostConfig

q = shlex.quote


@dataclass
class Check:
    host: str
    item: str
    ok: bool
    detail: str


def check_host(plan: RunPlan, host_cfg: HostConfig, local_fp: str) -> list[Check]:
    config = plan.config
    name = host_cfg.name
    t0 = time.monotonic()
    try:
        host = connect(host_cfg)
        host.run("true", timeout=10)
    except DeployError as err:
        return [Check(name, "reachable", False, str(err))]
    checks = [
        Check(
            name,
            "reachable",
            True,
            f"{'local' if isinstance(host, LocalHost) else 'ssh'}, {1000 * (time.monotonic() - t0):.0f} ms",
        )
    ]
    try:
        probe = host.run(f"{q(host.python)} -m orchestrator.deploy.fingerprint", timeout=60)
        if not probe.ok:
            detail = (probe.stderr.strip().splitlines() or ["not importable"])[-1][:160]
            checks.append(
                Check(name, "project", False, f"{host.python}: {detail} (run `python -m orchestrator.hosts sync`)")
            )
        elif probe.stdout.strip() != local_fp:
            checks.append(
                Check(name, "project", False, f"other code ({probe.stdout.strip()} here {local_fp}); run sync")
            )
        else:
            checks.append(Check(name, "project", True, f"same code ({local_fp}) in {host.python}"))
        if config.execution.mode == "real" and host_cfg.gpus:
            smi = host.run("nvidia-smi --query-gpu=index --format=csv,noheader", timeout=30)
            seen = {int(x) for x in smi.stdout.split()} if smi.ok else set()
            missing = sorted(set(host_cfg.gpus) - seen)
            checks.append(
                Check(
                    name, "gpus", not missing, f"visible {sorted(seen)}" + (f", missing {missing}" if missing else "")
                )
            )
        system = get_system(config.system.name)
        checks += [Check(name, item, ok, detail) for item, ok, detail in system.host_checks(config, host, host_cfg)]
        mine = [a.bind for a in plan.addresses if a.host == name]
        busy = busy_ports(host, mine)
        checks.append(
            Check(name, "ports", not busy, ", ".join(f"{b} busy ({why})" for b, why in busy) or f"{len(mine)} free")
        )
        if not isinstance(host, LocalHost):
            workdir = host_cfg.workdir or DEFAULT_REMOTE_WORKDIR
            w = host.run(f"mkdir -p {q(workdir)} && test -w {q(workdir)}", timeout=10)
            checks.append(Check(name, "workdir", w.ok, workdir if w.ok else f"{workdir} not writable"))
    finally:
        host.close()
    return checks


def check(plan: RunPlan) -> int:
    config = plan.config
    from rich.console import Console
    from rich.table import Table

    local_fp = fingerprint()
    results = parallel(lambda h: check_host(plan, h, local_fp), config.hostfile.hosts)
    table = Table(title=f"hostfile {config.hostfile.name}")
    for col in ("host", "check", "", "detail"):
        table.add_column(col)
    failed = 0
    for checks in results:
        for c in checks:
            failed += not c.ok
            table.add_row(c.host, c.item, "ok" if c.ok else "FAIL", c.detail)
    Console(width=160).print(table)
    print("all hosts ready" if not failed else f"{failed} check(s) failed")
    return 0 if not failed else 1


def build_wheel(out: Path) -> Path:
    """A wheel of this project's sources, built from a clean copy: a build/ folder left in the
    checkout by an earlier build would otherwise add modules that no longer exist."""
    root = Path(__file__).resolve().parents[1]
    src = out / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    for package in {p.split(".")[0] for p in PACKAGES}:
        shutil.copytree(root / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(out.glob("servelab-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise DeployError(f"building the wheel failed: {proc.stderr.strip()[-300:]}")
    return wheels[-1]


def sync(config: Config, with_deps: bool, only: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        wheel = build_wheel(Path(tmp))
        print(f"built {wheel.name}")

        def install(host_cfg: HostConfig) -> str:
            try:
                host: Host = connect(host_cfg)
            except DeployError as err:
                return f"FAIL {err}"
            try:
                workdir = host_cfg.workdir or DEFAULT_REMOTE_WORKDIR
                if isinstance(host, LocalHost):
                    remote = str(wheel)
                else:
                    host.mkdir(workdir)
                    remote = f"{workdir}/{wheel.name}"
                    host.put(wheel, remote)
                deps = "" if with_deps else "--no-deps "
                r = host.run(f"{q(host.python)} -m pip install -q --force-reinstall {deps}{q(remote)}", timeout=600)
                if not r.ok:
                    return f"FAIL pip: {(r.stderr.strip().splitlines() or ['?'])[-1][:200]}"
                fp = host.run(f"{q(host.python)} -m orchestrator.deploy.fingerprint", timeout=60).stdout.strip()
                return f"ok installed ({fp})"
            finally:
                host.close()

        targets = [h for h in config.hostfile.hosts if not only or h.name in only]
        outcomes = parallel(install, targets)
    for host_cfg, outcome in zip(targets, outcomes, strict=True):
        print(f"{host_cfg.name}: {outcome}")
    return 0 if all(o.startswith("ok") for o in outcomes) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.hosts", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("check", "sync"))
    parser.add_argument("--deps", action="store_true", help="sync: install the dependencies too (hosts need an index)")
    parser.add_argument("--host", action="append", default=[], help="sync: only this host (repeatable)")
    parser.add_argument("overrides", nargs="*", help="config overrides, e.g. hostfile=mycluster execution=real")
    args = parser.parse_intermixed_args(argv)
    try:
        plan = load_plan(args.overrides)
        config = plan.config
        unknown = set(args.host) - {h.name for h in config.hostfile.hosts}
        if unknown:
            raise ServelabError(f"--host: no host {sorted(unknown)[0]!r} in hostfile {config.hostfile.name}")
        return check(plan) if args.command == "check" else sync(plan.config, args.deps, args.host)
    except ServelabError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
