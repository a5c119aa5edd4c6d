"""Helpers of the benchmark scripts: run real jobs, print tables. What tests share with them
(free ports, process checks, sshd hosts) is in `labkit`."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from labkit import free_base_port
from orchestrator.compose import compose_config
from orchestrator.experiment import run_experiment

ROOT = Path(__file__).resolve().parents[1]
CLI = (sys.executable, "-m", "orchestrator", "tracking.enabled=false", "run.progress=false")


def users_env() -> dict[str, str]:
    """The environment a timed command runs in: this one, with Python's bytecode cache on, as
    a user's Python has it. This machine's environment sets PYTHONDONTWRITEBYTECODE, so every
    command would compile the project's modules again (about 0.2 s of a virtual run's 2 s); the
    first command of a benchmark (a warm-up, not timed) writes the cache."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed_command(*args: str, out: Path, cli: tuple[str, ...] = CLI, timeout: int = 900) -> tuple[int, str, float, int]:
    """(exit code, last stderr line, seconds, peak RSS in bytes) of the whole command `cli` +
    `args`, writing under `out`: a parent process reads its child's peak RSS."""
    probe = (
        "import resource,subprocess,sys;p=subprocess.run(sys.argv[1:]);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,p.returncode)"
    )
    cmd = [sys.executable, "-c", probe, *cli, f"paths.output_dir={out}", *args]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=users_env())
    took = time.perf_counter() - t0
    rss_kb, code = p.stdout.strip().splitlines()[-1].split()
    err = [ln for ln in p.stderr.splitlines() if ln.strip()]
    return int(code), (err[-1] if err else ""), took, int(rss_kb) * 1024


def run(*overrides: str, out: Path | None = None) -> dict[str, Any]:
    """Run one real job in a temporary directory (no MLflow) and return its summary."""
    out = out or Path(tempfile.mkdtemp(prefix="bench-"))
    cfg = compose_config(
        *overrides,
        f"paths.output_dir={out}",
        f"hostfile.base_port={free_base_port()}",
        "tracking.enabled=false",
        "run.progress=false",
    )
    return run_experiment(cfg, out / "run").summary


def table(header: list[str], rows: list[list[Any]], name: str | None = None) -> str:
    """A markdown table. With `name` it is also the docs' table of that name: written to
    docs/tables/<name>.md and spliced into every docs page that shows it (benchmarks.doc_tables),
    so that no measured table in the docs is typed by hand."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    text = "\n".join(lines)
    if name is not None:
        from benchmarks.doc_tables import publish

        publish(name, text, " ".join([f"python -m benchmarks.{Path(sys.argv[0]).stem}", *sys.argv[1:]]))
    return text


def say(text: str) -> None:
    print(text, flush=True)
    sys.stdout.flush()
