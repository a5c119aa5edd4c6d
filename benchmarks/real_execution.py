"""Real execution of the tiny cascade on this CPU, and the cost of measuring FID.

    python -m benchmarks.real_execution

1. Per-batch latency of the tiny light model (with the discriminator) inside a worker, from the
   records of a real all-light run (stage start to finish, by batch size), against the same
   batch run directly in this process: the worker's overhead as a ratio of medians.
2. FID computation time for 1k and 10k 64x64 images (small-CNN features + Fréchet distance),
   and the Fréchet distance alone at InceptionV3's 2048 dimensions (eigh vs scipy sqrtm).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import run, say, table


def worker_batches(tmp: Path) -> pd.DataFrame:
    run(
        "cascade=tiny",
        "execution=real",
        "approach=all_light",
        "approach.light_batch=8",
        "trace=fixed_10qps",
        "trace.low_qps=250",
        "trace.high_qps=250",
        "trace.duration_s=20",
        "hostfile.workers=1",
        "time_scale=1",
        out=tmp,
    )
    rec = pd.read_parquet(tmp / "run" / "records.parquet")
    rec["stage_ms"] = (rec["light_finished_at"] - rec["light_started_at"]) * 1000
    batches = rec.drop_duplicates(["light_worker", "light_started_at"])
    return batches.groupby("light_batch_size")["stage_ms"].agg(["median", "count"])


def direct_ms(batch: int, repeats: int = 15) -> float:
    import torch

    from runtime.models.tiny import build_discriminator, build_pipeline

    torch.set_num_threads(1)
    pipe = build_pipeline("light")
    pipe.set_progress_bar_config(disable=True)
    disc = build_discriminator()
    times = []
    for r in range(repeats + 2):
        t0 = time.perf_counter()
        with torch.inference_mode():
            images = pipe(
                prompt=[f"p {r} {i}" for i in range(batch)],
                num_inference_steps=1,
                guidance_scale=0.0,
                height=64,
                width=64,
                output_type="pt",
                generator=[torch.Generator().manual_seed(r * 100 + i) for i in range(batch)],
            ).images
            disc(images)
        if r >= 2:
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def fid_times() -> list[list[object]]:
    import torch
    from scipy import linalg

    from orchestrator.quality.extractors import build_extractor
    from orchestrator.quality.frechet import fid, gaussian
    from runtime.schema.diffserve import QualityConfig

    torch.set_num_threads(2)
    extract = build_extractor(QualityConfig(extractor="small_cnn"))
    rows: list[list[object]] = []
    rng = np.random.default_rng(0)
    for n in (1_000, 10_000):
        t0 = time.perf_counter()
        feats = np.concatenate([extract(torch.rand(500, 3, 64, 64)) for _ in range(n // 500)])
        t1 = time.perf_counter()
        fid(feats, rng.normal(size=feats.shape))
        t2 = time.perf_counter()
        rows.append([f"{n} images, small CNN (128-d)", f"{t1 - t0:.2f}", f"{t2 - t1:.3f}"])
    a, b = rng.normal(size=(4000, 2048)), rng.normal(size=(4000, 2048))
    (_, s1), (_, s2) = gaussian(a), gaussian(b)
    t0 = time.perf_counter()
    fid(a, b)
    t1 = time.perf_counter()
    linalg.sqrtm(s1 @ s2)
    t2 = time.perf_counter()
    rows.append(["2048-d Fréchet (Inception size)", "-", f"{t1 - t0:.2f} (eigh) vs {t2 - t1:.2f} (sqrtm)"])
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        batches = worker_batches(Path(tmp))
    rows = []
    for batch, row in batches.iterrows():
        if row["count"] < 3:
            continue
        direct = direct_ms(int(str(batch)))
        rows.append(
            [
                int(str(batch)),
                int(row["count"]),
                f"{row['median']:.1f}",
                f"{direct:.1f}",
                f"{row['median'] / direct:.2f}",
            ]
        )
    say("Tiny light model + discriminator per batch (1 torch thread):\n")
    say(
        table(
            ["batch", "batches seen", "in the worker (ms)", "direct call (ms)", "ratio"],
            rows,
            name="real-execution-batches",
        )
    )
    say("\nFID computation:\n")
    say(table(["what", "features (s)", "Fréchet distance (s)"], fid_times(), name="real-execution-fid"))


if __name__ == "__main__":
    main()
