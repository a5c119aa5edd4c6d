"""Stop what a run left running, on every host it used, and finish its results.

    python -m orchestrator.cleanup RUN_DIR [RUN_DIR ...]
    python -m orchestrator.cleanup --all [OUTPUT_DIR]      every run under OUTPUT_DIR (default: outputs)

Roles stop by themselves when their orchestrator is gone (their lease lapses, see
orchestrator.deploy.supervisor); this is for what must not wait, or a supervisor that was
itself stopped. It reads the run's processes.json (each role's host, process group and files,
written as the roles start), reaches each host the way the run did (locally or over SSH), and
stops each recorded group that is still this run's: one of its processes is the role's
supervisor or the role itself, recognised by the role's own file paths on its command line. A
group number reused by anything else is never touched, and nothing is ever found by name.
TERM, then KILL after the run's `run.stop_timeout_s`.

A run that is still live is never touched: while its orchestrator renews the lease on a host
(within the run's `run.lease_s`), cleanup refuses that run and says so (`--force` stops it
anyway). A run whose orchestrator died has no summary: cleanup then computes its results from
what the roles left (their files, or their journals), marked partial, without MLflow.
"""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from orchestrator.deploy import connect
from orchestrator.deploy.base import Host
from orchestrator.deploy.deployment import PROCESSES_FILE
from orchestrator.deploy.launcher import LEASE_FILE
from orchestrator.deploy.supervisor import bounded_limit
from runtime.exceptions import ServelabError
from runtime.identity import IDENTITY_FILE
from runtime.logs import init_logger
from runtime.schema import HostConfig

log = init_logger("orchestrator")

# Run on the host (standard library only): which of the given groups still hold a live process
# whose command line names one of the group's markers.
_FIND = r"""
import json, os, sys
wanted = json.loads(sys.argv[1])
groups = {}
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    try:
        stat = open("/proc/%s/stat" % pid).read()
        cmd = open("/proc/%s/cmdline" % pid, "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        continue
    fields = stat[stat.rfind(")") + 2:].split()
    if fields[0] != "Z":
        groups.setdefault(int(fields[2]), []).append(cmd)
print(json.dumps([g for g, marks in wanted if any(m in c for c in groups.get(g, []) for m in marks)]))
"""


@dataclass(frozen=True)
class Leftover:
    role: str
    host: str
    pgid: int
    markers: tuple[str, ...]


def _host_config(data: dict[str, Any]) -> HostConfig:
    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(HostConfig), data))
    assert isinstance(cfg, HostConfig)
    return cfg


def _live(host: Host, items: list[Leftover]) -> list[Leftover]:
    if not items:
        return []
    wanted = json.dumps([[i.pgid, list(i.markers)] for i in items])
    result = host.run(f"{shlex.quote(host.python)} -c {shlex.quote(_FIND)} {shlex.quote(wanted)}", timeout=30)
    if not result.ok:
        raise ServelabError(f"host {host.name}: cannot list processes ({result.stderr.strip()[-200:]})")
    live = set(json.loads(result.stdout))
    return [i for i in items if i.pgid in live]


# Run on the host (standard library only): seconds since the lease file was renewed, -1 if none.
# The lease's age on its host's clock and the limit written in it (orchestrator.deploy.supervisor).
_LEASE_AGE = (
    "import os, sys, time; p = sys.argv[1]; e = os.path.exists(p)\n"
    "print(time.time() - os.stat(p).st_mtime if e else -1, (open(p).read().strip() or 0) if e else 0)"
)


class LiveRunError(ServelabError):
    """The run's orchestrator still renews its lease: the run is live."""


def _lease_s(run_dir: Path) -> float:
    config = run_dir / "config_resolved.yaml"
    if config.exists():
        return float(OmegaConf.select(OmegaConf.load(config), "run.lease_s", default=6.0))
    return 6.0


def check_not_live(run_dir: Path, record: dict[str, Any]) -> None:
    """Raise LiveRunError if a host's lease was renewed within the run's lease period."""
    lease_s = _lease_s(run_dir)
    for name, info in record["hosts"].items():
        try:
            host = connect(_host_config(info["config"]))
        except ServelabError:
            continue  # an unreachable host holds no live lease we could see
        try:
            path = f"{info['run_dir']}/{LEASE_FILE}"
            result = host.run(
                f"{shlex.quote(host.python)} -c {shlex.quote(_LEASE_AGE)} {shlex.quote(path)}", timeout=15
            )
            age, limit = _age_and_limit(result.stdout if result.ok else "", lease_s)
        finally:
            host.close()
        if 0 <= age < limit:
            raise LiveRunError(
                f"{run_dir} is live: its orchestrator renewed the lease on {name} {age:.1f} s ago (its limit "
                f"{limit:g} s); stop it with Ctrl-C, or use --force to stop its roles anyway"
            )


def _age_and_limit(text: str, lease_s: float) -> tuple[float, float]:
    """(age, limit) from _LEASE_AGE's line; the limit within the supervisor's bounds."""
    parts = text.split()
    try:
        age = float(parts[0])
    except (IndexError, ValueError):
        return -1.0, lease_s
    return age, bounded_limit(parts[1] if len(parts) > 1 else "", lease_s)


def stop_run(run_dir: Path, stop_timeout_s: float = 5.0, force: bool = False) -> list[str]:
    """Stop every process group the run recorded that is still its own (never a live run's,
    unless `force`); returns what was stopped."""
    path = run_dir / PROCESSES_FILE
    if not path.exists():
        raise ServelabError(f"{path}: no such file (the run started no role, or this is not a run directory)")
    record = json.loads(path.read_text(encoding="utf-8"))
    if not force:
        check_not_live(run_dir, record)
    by_host: dict[str, list[Leftover]] = {}
    for r in record["roles"]:
        workdir = str(Path(r["pid_file"]).parent)
        markers = (f"--pid-file {r['pid_file']}", f"--out {workdir}")
        by_host.setdefault(r["host"], []).append(Leftover(r["name"], r["host"], int(r["pgid"]), markers))
    stopped: list[str] = []
    for name, items in by_host.items():
        try:
            host = connect(_host_config(record["hosts"][name]["config"]))
        except ServelabError as err:
            log.error("Cannot reach host %s: %s", name, err)
            continue
        try:
            live = _live(host, items)
            if live:
                host.signal_groups([i.pgid for i in live], signal.SIGTERM)
                deadline = time.monotonic() + stop_timeout_s
                while live and time.monotonic() < deadline:
                    time.sleep(0.2)
                    live_now = _live(host, live)
                    stopped += [f"{i.role} on {i.host}" for i in live if i not in live_now]
                    live = live_now
                if live:
                    host.signal_groups([i.pgid for i in live], signal.SIGKILL)
                    stopped += [f"{i.role} on {i.host} (killed)" for i in live]
        finally:
            host.close()
    (run_dir / IDENTITY_FILE).unlink(missing_ok=True)  # the run's token: no role is left to check it
    return stopped


def finish_results(run_dir: Path) -> dict[str, Any] | None:
    """The results of a run whose orchestrator died (no summary.json yet), marked partial."""
    if (run_dir / "summary.json").exists() or not (run_dir / "config_resolved.yaml").exists():
        return None
    from orchestrator.experiment import results_of
    from orchestrator.plan import saved_config

    cfg = saved_config(run_dir / "config_resolved.yaml")
    cfg.tracking.enabled = False
    return results_of(cfg, run_dir).summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.cleanup", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run directories (holding processes.json)")
    parser.add_argument("--all", nargs="?", const=Path("outputs"), type=Path, metavar="OUTPUT_DIR")
    parser.add_argument("--stop-timeout", type=float, default=5.0, help="seconds between TERM and KILL")
    parser.add_argument("--force", action="store_true", help="stop the roles of a live run too")
    args = parser.parse_args(argv)
    runs = list(args.runs)
    if args.all is not None:
        runs += sorted(p.parent for p in args.all.rglob(PROCESSES_FILE))
    if not runs:
        parser.error("name a run directory, or --all")
    code = 0
    for run_dir in runs:
        try:
            stopped = stop_run(run_dir, args.stop_timeout, args.force)
            print(f"{run_dir}: " + (f"stopped {', '.join(stopped)}" if stopped else "nothing left running"))
            summary = finish_results(run_dir)
            if summary is not None:
                print(f"{run_dir}: results computed from what the roles left (partial): {run_dir / 'summary.json'}")
        except LiveRunError as err:
            print(f"skipped: {err}", file=sys.stderr)
            code = max(code, 1)
        except ServelabError as err:
            print(f"error: {err}", file=sys.stderr)
            code = 2
    return code


if __name__ == "__main__":
    sys.exit(main())
