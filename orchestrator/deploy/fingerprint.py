"""What code a host runs: a hash of this project's installed sources (standard library only).

Two environments with the same fingerprint run the same code, whatever their version strings
say; `python -m orchestrator.hosts check` compares each host's with this machine's.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

PACKAGES = ("orchestrator", "runtime", "hydra_plugins.servelab_sweepers")
SUFFIXES = (".py", ".proto")


def fingerprint() -> str:
    digest = hashlib.sha256()
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            raise ImportError(f"package {name} is not importable")
        root = Path(next(iter(spec.submodule_search_locations)))
        for path in sorted(p for p in root.rglob("*") if p.suffix in SUFFIXES and "__pycache__" not in p.parts):
            digest.update(f"{name}/{path.relative_to(root)}".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


if __name__ == "__main__":
    print(fingerprint())
    sys.exit(0)
