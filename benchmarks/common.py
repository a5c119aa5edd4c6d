"""Helpers shared by the benchmark scripts: compose the real config and run real jobs."""

from __future__ import annotations

import os
import random
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig

from orchestrator.config import register
from orchestrator.experiment import run_experiment

ROOT = Path(__file__).resolve().parents[1]


def compose_config(*overrides: str) -> DictConfig:
    register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def free_base_port(span: int = 40) -> int:
    """The first of `span` consecutive ports that are free now."""
    for _ in range(200):
        base = random.randint(20000, 45000)
        socks = []
        try:
            for p in range(base, base + span):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


def processes_mentioning(text: str) -> list[int]:
    """PIDs of live (non-zombie) processes whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def run(*overrides: str, out: Path | None = None) -> dict[str, Any]:
    """Run one real job in a temporary directory (no MLflow) and return its summary."""
    out = out or Path(tempfile.mkdtemp(prefix="bench-"))
    cfg = compose_config(
        *overrides, f"paths.output_dir={out}", f"hostfile.base_port={free_base_port()}",
        "tracking.enabled=false", "run.progress=false",
    )  # fmt: skip
    return run_experiment(cfg, out / "run").summary


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def say(text: str) -> None:
    print(text, flush=True)
    sys.stdout.flush()
