"""The orchestrator: `python -m orchestrator` resolves the Hydra config, deploys the roles,
replays the trace, collects every query's record, computes the metrics, and logs the run to
MLflow."""
