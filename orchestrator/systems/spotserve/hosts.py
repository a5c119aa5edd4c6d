"""SpotServe's row of `python -m orchestrator.hosts check` for real execution: can this host
form the replicas' groups (orchestrator/deploy/accelerators.py probes it)."""

from __future__ import annotations

import json
import shlex
from typing import Any

from orchestrator.deploy.base import Host
from runtime.schema import HostConfig


def group_check(host: Host, host_cfg: HostConfig) -> tuple[str, bool, str]:
    """torch, one CUDA device per hostfile GPU with NCCL (gloo on a CPU host), and the
    ephemeral ports the replicas' groups use."""
    probe = host.run(f"{shlex.quote(host.python)} -m orchestrator.deploy.accelerators", timeout=60)
    found: dict[str, Any]
    try:
        found = json.loads(probe.stdout.strip().splitlines()[-1]) if probe.ok else {"error": probe.stderr.strip()}
    except (ValueError, IndexError):
        found = {"error": probe.stdout.strip()[:160]}
    if "error" in found:
        return "groups", False, str(found["error"])[:160]
    wanted = len(host_cfg.gpus)
    if wanted:
        ok = bool(found["nccl"]) and int(found["cuda_devices"]) >= wanted
        backend = (
            f"nccl {'yes' if found['nccl'] else 'MISSING'}, {found['cuda_devices']} CUDA devices for {wanted} GPUs"
        )
    else:
        ok, backend = bool(found["gloo"]), f"gloo {'yes' if found['gloo'] else 'MISSING'} (CPU workers)"
    return "groups", ok, f"torch {found['torch']}, {backend}; groups take ports in {found['ephemeral_ports']}"
