"""The orchestrator: `python -m orchestrator` resolves the Hydra config, deploys the roles,
replays the trace, collects every query's record, computes the metrics, and logs the run to
MLflow."""

import os

# gRPC's C core logs to stderr on its own (fork and polling notices): errors only, so that the
# console holds our lines and the progress line alone. A user's own setting wins.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
