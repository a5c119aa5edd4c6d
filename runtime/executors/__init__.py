"""What a worker runs for a batch: simulated (sleep the profiled latency) or real models."""
