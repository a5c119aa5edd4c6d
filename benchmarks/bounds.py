"""The figures behind `orchestrator/config/limits.py`, measured, and each bound's refusal.

    python -m benchmarks.bounds [--skip-memory]

1. Memory: peak RSS of a virtual DiffServe run at two trace lengths (the slope is bytes per
   query, the intercept the base) and the resident memory of each role process of a short wall
   run (role and supervisor). The constants in limits.py must cover what is measured.
2. Refusals: each oversized input of the issue "never a false success", run as a user would:
   the exit code, the error line, seconds to refuse and the command's peak RSS (nothing runs).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.common import CLI, ROOT, table, timed_command
from labkit import free_base_port, processes_mentioning
from orchestrator.config import limits


def memory(out: Path) -> list[list[str]]:
    rows = []
    sizes = {}
    for qps in (20, 200):
        args = (
            "clock=virtual",
            "trace=fixed_10qps",
            f"trace.low_qps={qps}",
            f"trace.high_qps={qps}",
            "trace.duration_s=1000",
            "hostfile.workers=16",
        )
        code, _, took, rss = timed_command(*args, out=out)
        assert code == 0, f"virtual run at {qps} q/s failed"
        run = max((out / "diffserve" / "runs").iterdir())
        queries = json.loads((run / "summary.json").read_text())["queries_sent"]
        sizes[queries] = rss
        rows.append([f"virtual run, {queries:,} queries", f"{rss / 2**20:.0f} MB", f"{took:.1f} s"])
    (n1, m1), (n2, m2) = sorted(sizes.items())
    per_query = (m2 - m1) / (n2 - n1)
    base = m1 - per_query * n1
    rows.append(["bytes per query (slope)", f"{per_query:,.0f} B", f"limits.py: {limits.BYTES_PER_QUERY:,} B"])
    rows.append(["base (intercept)", f"{base / 2**20:.0f} MB", f"limits.py: {limits.BASE_BYTES // 2**20} MB"])
    role = role_rss(out)
    rows.append(
        [
            "a role process with its supervisor",
            f"{role / 2**20:.0f} MB",
            f"limits.py: {limits.BYTES_PER_ROLE_PROCESS // 2**20} MB",
        ]
    )
    ok = per_query <= limits.BYTES_PER_QUERY * 1.1 and role <= limits.BYTES_PER_ROLE_PROCESS * 1.1
    rows.append(["constants cover the measurement", "yes" if ok else "NO: update limits.py", ""])
    return rows


def _rss(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) * 1024  # type: ignore[union-attr]


def role_rss(out: Path) -> float:
    """The median resident memory of a role process plus a supervisor, in a short wall run."""
    args = [
        *CLI,
        f"paths.output_dir={out / 'wall'}",
        f"hostfile.base_port={free_base_port()}",
        "trace=1to8qps",
        "trace.duration_s=20",
        "hostfile.workers=4",
    ]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "Replaying" in line:
            break
    time.sleep(3)  # in its stride
    roles, supervisors = [], []
    for pid in processes_mentioning(str(out / "wall")):  # the supervisors name the run's folder
        try:
            if b"orchestrator.deploy.supervisor" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue  # the orchestrator itself
            supervisors.append(_rss(pid))
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            roles += [_rss(int(c)) for c in children]
        except OSError:
            continue
    proc.wait(timeout=300)
    roles.sort()
    supervisors.sort()
    assert roles and supervisors, "no role process found"
    return roles[len(roles) // 2] + supervisors[len(supervisors) // 2]


def refusals(out: Path) -> list[list[str]]:
    tmp = out / "inputs"
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "big_index.csv").write_text("0,0\n10,9223372036854775807\n")
    names = [f"i{k}" for k in range(10_000)]
    (tmp / "fleet.jsonl").write_text(
        json.dumps([0, "add", {"nodes": names}]) + "\n" + json.dumps([60000, "DONE", {}]) + "\n"
    )
    long = "a" * 300
    cases = [
        ("5,000 workers", ("hostfile.workers=5000",)),
        ("5,000 worker processes on one 2-core host", ("hostfile.workers=5000", "limits.workers=10000")),
        ("100 worker processes on one 2-core host", ("hostfile.workers=100",)),
        (
            "an availability file of 10,000 instances",
            ("system=spotserve", f"trace.availability_path={tmp / 'fleet.jsonl'}"),
        ),
        ("time_scale=1e-9 (a 950-year run)", ("time_scale=1e-9",)),
        ("metrics.window_s=1e-9", ("metrics.window_s=1e-9",)),
        ("trace.high_qps=1e9", ("trace.high_qps=1e9",)),
        (
            "17M expected arrivals (memory)",
            ("clock=virtual", "trace=fixed_10qps", "trace.low_qps=50000", "trace.high_qps=50000"),
        ),
        ("prompt index 2^63-1", ("cascade.num_prompts=100", f"trace.path={tmp / 'big_index.csv'}")),
        ("a 300-byte folder name", (f"hydra.run.dir={out}/{long}",)),
    ]
    rows = []
    for name, args in cases:
        code, line, took, rss = timed_command(*args, out=out)
        rows.append([name, str(code), f"{took:.1f}", f"{rss / 2**20:.0f} MB", line[:150].replace("|", "/")])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-memory", action="store_true", help="only the refusals")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="bench-bounds-"))
    if not args.skip_memory:
        print(table(["measured", "value", "beside"], memory(out), name="bounds-memory"))
        print()
    print(table(["input", "exit", "s to refuse", "peak RSS", "the line"], refusals(out), name="bounds-refusals"))


if __name__ == "__main__":
    main()
