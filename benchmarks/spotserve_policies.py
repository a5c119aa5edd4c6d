"""SpotServe decision time per reconfiguration: the optimizer, the device mapper, the planner.

    python -m benchmarks.spotserve_policies [--repeats N]

For each model (6.7B, 20B, 30B) on 40 and 96 GPUs (10 and 24 four-GPU instances), one
reconfiguration as in a preemption: the fleet loses instance node-0 (its GPUs are dying), every
old replica was interrupted half-way through a full batch, and the controller
  1. picks the configuration for the GPUs left (`choose`),
  2. maps the surviving GPUs to it (`map_devices`, two-level matching),
  3. plans the transfers (`plan_migration`) and prices them (`transfer_time_s`, 50 Gbps).
Each step is timed separately over N repetitions after a warm-up (median and p99, ms). The last
columns give the predicted migration time with the matching and with rank order (ablation 4),
which is the model's answer, not a measurement.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from benchmarks.common import compose_config, say, table
from orchestrator.plan import config_as
from runtime.policies.spotserve.config_optimizer import choose
from runtime.policies.spotserve.device_mapper import map_devices, rank_order, resume_order
from runtime.policies.spotserve.layout import Gpu, InterruptedBatch, positions
from runtime.policies.spotserve.migration_planner import plan_migration, transfer_time_s
from runtime.schema.spotserve import SpotServeConfig

GPUS_PER_INSTANCE = 4
NETWORK_GBPS = 50.0


def timed(fn: Callable[[], object], repeats: int) -> tuple[str, str]:
    """Median and p99 of `repeats` calls of `fn`, in ms (after two warm-up calls)."""
    fn()
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1000
    return f"{np.median(ms):.2f}", f"{np.percentile(ms, 99):.2f}"


def row(name: str, gpus: int, repeats: int) -> list[object]:
    cfg = config_as(compose_config("system=spotserve", f"model={name}"), SpotServeConfig)
    model = cfg.model
    assert model is not None
    fleet = [Gpu(f"node-{i}", j) for i in range(gpus // GPUS_PER_INSTANCE) for j in range(GPUS_PER_INSTANCE)]
    dying, alive = fleet[:GPUS_PER_INSTANCE], fleet[GPUS_PER_INSTANCE:]
    old = choose(model, len(fleet), model.required_tpt).config
    layout = dict(zip(positions(old), fleet, strict=False))
    tokens = model.input_len + model.output_len // 2
    interrupted = {d: InterruptedBatch(old.batch, tokens) for d in range(old.dp)}

    def optimize() -> object:
        return choose(model, len(alive), model.required_tpt)

    new = choose(model, len(alive), model.required_tpt).config
    resume = resume_order(interrupted, new.dp)

    def mapping() -> object:
        return map_devices(model, old, layout, new, alive, GPUS_PER_INSTANCE, resume, interrupted)

    km = map_devices(model, old, layout, new, alive, GPUS_PER_INSTANCE, resume, interrupted)

    def planning() -> object:
        return plan_migration(model, old, layout, km, dying, resume, interrupted)

    plan = plan_migration(model, old, layout, km, dying, resume, interrupted)
    ro = rank_order(model, old, layout, new, alive, resume, interrupted)
    ro_plan = plan_migration(model, old, layout, ro, dying, resume, interrupted)
    opt, mapped, planned = timed(optimize, repeats), timed(mapping, repeats), timed(planning, repeats)
    return [
        name,
        f"{gpus} -> {len(alive)}",
        f"{old.dp},{old.tp},{old.pp} -> {new.dp},{new.tp},{new.pp}",
        *opt,
        *mapped,
        *planned,
        len(plan.transfers),
        f"{transfer_time_s(plan, NETWORK_GBPS):.2f}",
        f"{transfer_time_s(ro_plan, NETWORK_GBPS):.2f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per step")
    args = parser.parse_args()
    rows = [row(name, gpus, args.repeats) for name in ("6.7B", "20B", "30B") for gpus in (40, 96)]
    header = [
        "model",
        "GPUs",
        "dp,tp,pp",
        "optimizer median (ms)",
        "optimizer p99 (ms)",
        "matching median (ms)",
        "matching p99 (ms)",
        "planning median (ms)",
        "planning p99 (ms)",
        "transfers",
        "migration KM (s)",
        "migration rank order (s)",
    ]
    say(table(header, rows, name="spotserve-policies"))


if __name__ == "__main__":
    main()
