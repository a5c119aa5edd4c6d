"""The testbed's own overhead: real roles, gRPC and a zero-latency simulated model.

    python -m benchmarks.testbed_overhead [--quick]

1. Added end-to-end latency per query at a light load (client -> load balancer -> worker ->
   sink -> client), p50 and p99, with 4 and 16 workers.
2. The highest constant rate the roles sustain on this machine with 4 and 16 workers: the
   largest tried rate at which the client keeps pace (its send lag, sent_at - arrival, is at
   most 50 ms at p99: it sends the trace as written) and >= 99% of queries complete within
   0.5 s. (Counting the queries sent is no test: a client that falls behind still sends them
   all, late.)
Everything is wall-clock time on this machine (time_scale 1); the numbers are medians of the
runs' own per-query latencies, so noise from other processes shows up as a worse p99.
"""

from __future__ import annotations

import argparse
import logging

from benchmarks.common import run, say, table

ZERO = (
    "cascade=sdxs",
    "approach=all_light",
    "approach.light_batch=32",
    "cascade.light.profile.latency_ms=[0,0,0,0,0,0]",
    "cascade.discriminator.latency_ms=0",
    "cascade.slo_s=0.5",
    "trace.shape=constant",
    "time_scale=1",
)


MAX_LAG_MS = 50.0  # the client sends the trace as written: no query more than this late (p99)


def job(workers: int, qps: float, seconds: float) -> dict[str, float]:
    s = run(
        *ZERO,
        f"hostfile.workers={workers}",
        f"trace.low_qps={qps}",
        f"trace.high_qps={qps}",
        f"trace.duration_s={seconds}",
    )
    return {
        "qps": qps,
        "lag_p99_ms": 1000 * s["client_send_lag_p99_s"],
        "p50_ms": 1000 * s["latency_p50_s"],
        "p99_ms": 1000 * s["latency_p99_s"],
        "on_time": s["completed_on_time"] / max(1, s["queries_sent"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer, shorter runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    seconds = 8.0 if args.quick else 15.0
    rates = [100, 400, 800] if args.quick else [100, 200, 300, 400, 500, 600, 800, 1000, 1200, 1600]
    rows_latency, rows_rate = [], []
    for workers in (4, 16):
        low = job(workers, 10, seconds)
        rows_latency.append([workers, f"{low['p50_ms']:.2f}", f"{low['p99_ms']:.2f}"])
        best = None
        for qps in rates:
            r = job(workers, qps, seconds)
            ok = r["lag_p99_ms"] <= MAX_LAG_MS and r["on_time"] >= 0.99
            say(
                f"workers={workers} qps={qps}: send lag p99 {r['lag_p99_ms']:.1f} ms, p50 {r['p50_ms']:.1f} ms "
                f"p99 {r['p99_ms']:.1f} ms on-time {100 * r['on_time']:.1f}% -> {'sustained' if ok else 'not sustained'}"
            )
            if not ok:
                break
            best = r
        rows_rate.append(
            [
                workers,
                best["qps"] if best else "< " + str(rates[0]),
                f"{best['p99_ms']:.1f}" if best else "-",
                f"{best['lag_p99_ms']:.1f}" if best else "-",
            ]
        )
    say("\nAdded latency per query at 10 q/s (zero-latency model):\n")
    say(table(["workers", "p50 (ms)", "p99 (ms)"], rows_latency, name="testbed-latency"))
    say(f"\nHighest sustained rate (send lag p99 <= {MAX_LAG_MS} ms, >= 99% within 0.5 s):\n")
    say(table(["workers", "rate (q/s)", "p99 at that rate (ms)", "send lag p99 (ms)"], rows_rate, name="testbed-rate"))


if __name__ == "__main__":
    main()
