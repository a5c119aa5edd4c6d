"""Deployment over SSH: time from start to every role ready, and teardown time.

    python -m benchmarks.deploy          # needs openssh-server; network namespaces as root

Builds a lab of 1, 4 and 8 "hosts" (one sshd each, tests/lab.py), then for each: connect to
every host and copy the spec (open), start every role stage by stage until all are ready
(deploy), and stop them all and bring their files back (teardown). With one host it runs every
role; with more, host 1 runs the controller, load balancer, sink and client and every other
host 4 GPU workers. Median of 3 repetitions each. The lease columns: every renewal of every
host while the roles started and stopped (an SFTP write on a channel that stays open), the
slowest one, the longest gap between two renewals of one host, and the largest limit announced
(run.lease_s, 6 s, is its floor); a lease that lapses fails the deployment.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.common import compose_config, say, table
from labkit.sshd import Lab, sshd_available
from orchestrator.deploy.deployment import Deployment
from orchestrator.deploy.launcher import SPEC_FILE
from orchestrator.experiment import new_identity, prepare
from runtime.identity import IDENTITY_FILE
from runtime.spec import TRACE_FILE

CPU = ["controller", "load_balancer", "sink", "client"]


def measure(hosts: int, repeats: int = 3) -> list[object]:
    opened, deployed, stopped = [], [], []
    renewals: list[float] = []
    gaps: list[float] = []
    limits: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, Lab(hosts, Path(tmp) / "lab") as lab:
        conf = Path(tmp) / "conf"
        if hosts == 1:
            entries = [lab.host_entry(lab.hosts[0], [*CPU, "worker"])]
            workers = 4
        else:
            entries = [lab.host_entry(lab.hosts[0], CPU)]
            entries += [lab.host_entry(h, ["worker"], gpus=[0, 1, 2, 3]) for h in lab.hosts[1:]]
            workers = 4 * (hosts - 1)
        lab.write_hostfile(conf, "lab", entries, workers=workers)
        for i in range(repeats):
            run_dir = Path(tmp) / f"run{i}"
            cfg = compose_config(
                f"hydra.searchpath=[file://{conf}]", "hostfile=lab", "trace.duration_s=5", f"paths.output_dir={tmp}"
            )
            plan, spec, reservation = prepare(cfg, run_dir)
            dep = Deployment(plan.config, list(plan.addresses), run_dir, new_identity(plan, spec, run_dir))
            t0 = time.monotonic()
            try:
                dep.open([run_dir / SPEC_FILE, run_dir / TRACE_FILE, run_dir / IDENTITY_FILE])
                t1 = time.monotonic()
                dep.deploy()
                t2 = time.monotonic()
            finally:
                dep.close()
                if reservation is not None:
                    reservation.release()
            t3 = time.monotonic()
            assert dep.leases is not None
            for st in dep.leases.stats().values():
                renewals.append(st["max_ms"])
                gaps.append(st["longest_gap_s"])
                limits.append(st["limit_s"])
            assert not dep.leases.lapsed, f"a lease lapsed: {dep.leases.lapsed}"
            opened.append(t1 - t0)
            deployed.append(t2 - t0)
            stopped.append(t3 - t2)
        roles = len(plan.addresses)
    return [
        hosts,
        roles,
        f"{statistics.median(opened):.2f}",
        f"{statistics.median(deployed):.2f}",
        f"{statistics.median(stopped):.2f}",
        f"{max(renewals):.0f}",
        f"{max(gaps):.2f}",
        f"{max(limits):.1f}",
    ]


def main() -> None:
    if not sshd_available():
        raise SystemExit("openssh-server is not installed (apt-get install openssh-server)")
    rows = [measure(n) for n in (1, 4, 8)]
    header = [
        "hosts",
        "roles",
        "connect + copy (s)",
        "start to all ready (s)",
        "teardown (s)",
        "slowest renewal (ms)",
        "longest lease gap (s)",
        "largest limit (s)",
    ]
    say(table(header, rows, name="deploy"))


if __name__ == "__main__":
    main()
