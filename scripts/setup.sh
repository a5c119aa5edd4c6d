#!/usr/bin/env bash
# Sets up .venv with this project.
#   scripts/setup.sh          the core: everything the embedded default (simulated execution) needs
#   scripts/setup.sh --test   also the test tools, real execution (torch, diffusers, transformers)
#                             and Ray for sweeps on a cluster
# torch is pinned by constraints.txt to 2.13.0: on a machine with a local CPU wheel pip takes it;
# an unpinned torch would pull gigabytes of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
quiet() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
extras=""
case "${1:-}" in
  --test) extras="[test,real,cluster]"; quiet "${pip[@]}" -c constraints.txt torch==2.13.0 ;;
  --cluster) extras="[cluster]" ;;
  --real) extras="[real]"; quiet "${pip[@]}" -c constraints.txt torch==2.13.0 ;;
  "") ;;
  *) echo "usage: scripts/setup.sh [--test|--real|--cluster]" >&2; exit 2 ;;
esac
quiet "${pip[@]}" -c constraints.txt -e ".${extras}"
.venv/bin/python -c "import orchestrator, runtime" && echo "setup: .venv ready${extras:+ with $extras}"
