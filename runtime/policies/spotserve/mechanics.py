"""The SpotServe artifact's mechanics that a GPipe serving system need not share (pure).

Each is a switch under `spot.mechanics` (all off: ours; `experiment=spotserve_artifact`: all
on), and each is read from the artifact's code (Hsword/SpotServe, branch artifact, 832b29f):

| switch               | the artifact's code                                        | what it does here                     |
| -------------------- | ---------------------------------------------------------- | ------------------------------------- |
| jit_interruption     | FasterTransformer multi_gpu_gpt_example_iter.cc,           | a draining replica finishes the batch |
|                      | `check_request_pool_status`; gpt_estimation_utils.cc,      | it runs; before each new batch it     |
|                      | `CostEstimator::calc_remain_step`                          | estimates the steps that fit (below)  |
|                      |                                                            | and runs only those, or stops         |
| power_of_two_batches | the same function's `work_req_bs`; api_server.py           | batches of 1, 2, 4, ... requests      |
|                      | `get_min_bsz`                                              |                                       |
| deadline_from_cost   | scheduler.py `switch_strategy` (est_cost: 0.5 for both      | deadline = notice + grace - cost,     |
|                      | baselines, the migration estimate + 0.5 for spotserve,     | cost < 0 when the fleet grows         |
|                      | negated when the fleet grows); the slot `30 - cost - t`    |                                       |
| fix_factor_planning_ | solver.py and gpt_estimation_utils.cc are the only places  | simulated replicas run at the         |
| only                 | final_fix_factor is applied                                | profiled time                         |
| old_batching         | scripts_ae/aws_e2e.sh `--old-batching`; api_server.py      | requests left waiting go ahead to the |
|                      | `select_replica` (pool_sz 2 for the baselines, 1 for       | busy replica holding the fewest, up   |
|                      | spotserve) and `get_min_bsz`                               | to pool_sz batches, bound to it       |
|                      |                                                            | (cores/spotserve/pool.py)             |

The estimator (`remaining_steps`): with slot = deadline - now, a replica stops when slot is
at most the prefill of one request; otherwise it takes k = int((slot - t1) / t2) - 1 decode
steps when its cost is >= 0 (conservative: t1, t2 the profiled times x final_fix_factor) or
int((slot - t1) / t2) + 1 when the fleet grows (optimistic: the profiled times divided by
final_fix_factor), where t1 is the prefill and t2 one decode step at the batch size it takes
(the prefill counts even when the batch resumes from its KV cache, as in the artifact);
k <= 0: it stops, k >= output_len: the whole batch runs, else the batch runs k steps and stops.
Our simulated replicas take the profiled time x final_fix_factor (the planners' figure), or,
with fix_factor_planning_only, the profiled time itself, as the artifact's replicas run at the
hardware's pace and the factor appears only in its solver and estimator.

The AE script runs 20B on As+o without --old-batching: set spot.mechanics.old_batching=false
there to match it (benchmarks/spotserve_run.py does).
"""

from __future__ import annotations

from runtime.policies.spotserve.timing import BatchTiming

WHOLE = -1  # remaining_steps: the whole batch fits


def power_of_two_at_most(n: int) -> int:
    """The largest power of two <= n (0 for n < 1)."""
    return 1 << (n.bit_length() - 1) if n >= 1 else 0


def stop_now(profile: BatchTiming, slot_s: float, fix_factor: float) -> bool:
    """Whether a draining replica stops now: its slot is at most one request's prefill
    (conservative); `profile` is the profiled timing, without the fix factor."""
    return slot_s <= profile.prefill_s[0] * fix_factor


def remaining_steps(
    profile: BatchTiming, batch: int, slot_s: float, conservative: bool, fix_factor: float, output_len: int
) -> int:
    """`CostEstimator::calc_remain_step`: WHOLE, 0 (stop), or the decode steps to run;
    `profile` is the profiled timing, without the fix factor."""
    scale = fix_factor if conservative else 1.0 / fix_factor
    t1, t2 = profile.prefill_s[batch - 1] * scale, profile.step_s[batch - 1] * scale
    step = int((slot_s - t1) / t2) + (-1 if conservative else 1)
    if step <= 0:
        return 0
    if step >= output_len:
        return WHOLE
    return step
