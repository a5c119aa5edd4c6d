"""Planner search time per decision (the DiffServe controller's exact search).

    python -m benchmarks.planner

For 16 and 64 GPU workers, times `plan_cascade` on demands spread over the cascade's range
(1000 decisions each, after a warm-up) and reports the median and p99 in milliseconds.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.common import compose_config, say, table
from orchestrator.plan import config_as
from runtime.policies.diffserve.planner import CascadeModel, plan_cascade
from runtime.schema.diffserve import DiffServeConfig


def main() -> None:
    rows = []
    rng = np.random.default_rng(0)
    for cascade in ("sdturbo", "sdxs", "sdxlltn"):
        cfg = config_as(compose_config(f"cascade={cascade}", "approach=diffserve"), DiffServeConfig)
        model = CascadeModel.of(cfg.cascade, cfg.approach)
        for workers in (16, 64):
            demands = rng.uniform(1, 3 * workers, 1000)
            queues = rng.integers(0, 20, (1000, 2))
            for d in demands[:20]:
                plan_cascade(model, workers, d)
            times = []
            for d, (q1, q2) in zip(demands, queues, strict=True):
                t0 = time.perf_counter()
                plan_cascade(model, workers, float(d), float(q1), float(q2))
                times.append(time.perf_counter() - t0)
            ms = np.array(times) * 1000
            rows.append([cascade, workers, f"{np.median(ms):.3f}", f"{np.percentile(ms, 99):.3f}"])
    say(table(["cascade", "GPU workers", "median (ms)", "p99 (ms)"], rows, name="planner"))


if __name__ == "__main__":
    main()
