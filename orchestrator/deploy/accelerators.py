"""What a host offers SpotServe real execution, as JSON (run there by `hosts check`): torch's
version, the CUDA devices it sees, whether gloo and NCCL are built in, and the host's
ephemeral port range (the replicas' groups listen there: the leader's TCP store and the
gloo/NCCL connections take free ports from it, so hosts must reach each other on it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def probe() -> dict[str, object]:
    out: dict[str, object] = {}
    try:
        import torch
        import torch.distributed as dist
    except ImportError as err:
        return {"error": f"torch does not import: {err}"}
    out["torch"] = torch.__version__
    out["cuda_devices"] = torch.cuda.device_count() if torch.cuda.is_available() else 0
    out["gloo"] = bool(dist.is_available() and dist.is_gloo_available())
    out["nccl"] = bool(dist.is_available() and dist.is_nccl_available())
    path = Path("/proc/sys/net/ipv4/ip_local_port_range")
    out["ephemeral_ports"] = "-".join(path.read_text().split()) if path.exists() else "unknown"
    return out


if __name__ == "__main__":
    print(json.dumps(probe()))
    sys.exit(0)
