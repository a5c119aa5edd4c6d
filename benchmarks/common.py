"""Helpers shared by the benchmark scripts: compose the real config and run real jobs."""

from __future__ import annotations

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
    while True:
        base = random.randint(20000, 45000)
        try:
            for p in range(base, base + span):
                with socket.socket() as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue


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
