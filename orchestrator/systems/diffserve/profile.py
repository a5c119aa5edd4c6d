"""DiffServe's profiler (`python -m orchestrator.profile cascade=NAME ...`): measure the
cascade's models on this machine and write a cascade config that simulates it.

For the light and the heavy model and each batch size: warm-up runs, then `repeats` timed
generations (median and percentiles); the discriminator's time per light batch; and, with a
live discriminator, the deferral curve f(t) of its scores on `curve_prompts` light images.
It writes `<out>/cascade/<name>_profiled.yaml` (the cascade with the measured profiles, the
format the simulated executor reads) and `<out>/<name>_profile.csv` (the artifact's
profiling CSV columns). Simulate your hardware with:

    python -m orchestrator hydra.searchpath=[file://<out>] cascade=<name>_profiled ...
"""

from __future__ import annotations

import csv
import socket
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from omegaconf import OmegaConf

from orchestrator.systems.base import ProfileOptions
from runtime.schema.diffserve import CascadeConfig, DiffServeConfig, DiffusionModelConfig

CURVE_POINTS = np.round(np.linspace(0.0, 1.0, 21), 3)


def _prompts(n: int, offset: int = 0) -> list[str]:
    return [f"a photo of object number {offset + i}" for i in range(n)]


def time_model(pipe: Any, model: DiffusionModelConfig, batch: int, repeats: int, warmup: int) -> list[float]:
    """Milliseconds of `repeats` generations of `batch` images, after `warmup` untimed ones."""
    import torch

    from runtime.models.diffusion import generate

    def once(seed: int) -> float:
        generators = [torch.Generator().manual_seed(seed + i) for i in range(batch)]
        t0 = time.perf_counter()
        with torch.inference_mode():
            generate(pipe, model, _prompts(batch, seed), generators)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) * 1000.0

    for i in range(warmup):
        once(10_000 + i)
    return [once(20_000 + 100 * i) for i in range(repeats)]


def summarize(samples: list[float]) -> dict[str, float]:
    arr = np.asarray(samples)
    return {
        "median": float(np.median(arr)),
        "p50": float(np.percentile(arr, 50)),
        "p90": float(np.percentile(arr, 90)),
        "p95": float(np.percentile(arr, 95)),
    }


def profile(
    config: DiffServeConfig, batch_sizes: list[int], repeats: int, warmup: int, curve_prompts: int, work: Path
) -> dict[str, Any]:
    import torch

    from runtime.executors.real import TINY_DISCRIMINATOR, pick_device
    from runtime.models import discriminator
    from runtime.models.diffusion import generate, load_pipeline
    from runtime.models.tiny import ensure_discriminator

    cascade = config.cascade
    device = pick_device(config.execution.device, 0)
    if device == "cpu" and config.execution.threads > 0:
        torch.set_num_threads(config.execution.threads)
    result: dict[str, Any] = {"device": device, "models": {}}
    light_images = None
    for tier, model in (("light", cascade.light), ("heavy", cascade.heavy)):
        pipe = load_pipeline(model, tier, device, work / "models")
        stats = {b: summarize(time_model(pipe, model, b, repeats, warmup)) for b in batch_sizes}
        result["models"][tier] = stats
        print(f"{tier} {model.name}: " + ", ".join(f"b{b} {s['median']:.1f} ms" for b, s in stats.items()), flush=True)
        if tier == "light":
            generators = [torch.Generator().manual_seed(30_000 + i) for i in range(curve_prompts)]
            with torch.inference_mode():
                light_images = generate(pipe, model, _prompts(curve_prompts, 30_000), generators).images
    d = cascade.discriminator
    if d.mode == "live" and light_images is not None:
        weights = (
            str(ensure_discriminator(work / "models" / "tiny-discriminator.safetensors"))
            if d.weights == TINY_DISCRIMINATOR
            else d.weights
        )
        scorer = discriminator.build(d.architecture, weights).to(device)
        sized = torch.nn.functional.interpolate(light_images, size=(d.image_size, d.image_size), mode="bilinear")
        with torch.inference_mode():
            scores = scorer(sized.to(device)).float().cpu().numpy()
            times = []
            for b in batch_sizes:
                batch = sized[: min(b, len(sized))].to(device)
                t0 = time.perf_counter()
                for _ in range(repeats):
                    scorer(batch)
                times.append((time.perf_counter() - t0) * 1000.0 / repeats)
        result["discriminator_ms"] = float(statistics.mean(times))
        result["curve"] = [float((scores < t).mean()) for t in CURVE_POINTS]
        result["curve"][-1] = 1.0  # by definition every confidence is below 1 (f(1) = 1)
        result["curve"] = [round(float(v), 4) for v in np.maximum.accumulate(result["curve"])]
    return result


def profiled_cascade(
    cascade: CascadeConfig, measured: dict[str, Any], batch_sizes: list[int], suffix: str = "profiled"
) -> dict[str, Any]:
    """The cascade config with the measured numbers in place (a plain dict for YAML);
    `measured["source"]` replaces the default source line."""
    out: dict[str, Any] = OmegaConf.to_container(OmegaConf.structured(cascade), resolve=True)  # type: ignore[assignment]
    where = measured.get("source") or (
        f"measured by orchestrator.profile on {socket.gethostname()} ({measured['device']}), {time.strftime('%Y-%m-%d')}"
    )
    out["name"] = f"{cascade.name}_{suffix}"
    for tier in ("light", "heavy"):
        stats = measured["models"][tier]
        out[tier]["profile"] = {
            "batch_sizes": list(batch_sizes),
            "latency_ms": [round(stats[b]["median"], 3) for b in batch_sizes],
            "source": where,
        }
    if "discriminator_ms" in measured:
        out["discriminator"]["latency_ms"] = round(measured["discriminator_ms"], 3)
        out["deferral_curve"] = {
            "x": [float(x) for x in CURVE_POINTS],
            "y": measured["curve"],
            "source": where + ", discriminator scores",
        }
    return out


def write(
    out_dir: Path, cascade: CascadeConfig, measured: dict[str, Any], batch_sizes: list[int], suffix: str = "profiled"
) -> Path:
    name = f"{cascade.name}_{suffix}"
    target = out_dir / "cascade" / f"{name}.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    header = f"# {cascade.name} profiled: python -m orchestrator hydra.searchpath=[file://{out_dir.resolve()}] cascade={name}\n"
    profiled = profiled_cascade(cascade, measured, batch_sizes, suffix)
    target.write_text(header + yaml.safe_dump(profiled, sort_keys=False))
    with (out_dir / f"{cascade.name}_profile.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["", "Model", "Accel", "batchsize", "avg_runtime", "50th_pct", "90th_pct", "95th_pct"])
        row = 0
        for tier, model in (("light", cascade.light), ("heavy", cascade.heavy)):
            for b in batch_sizes:
                s = measured["models"][tier][b]
                writer.writerow(
                    [row, model.name, measured["device"], b, *(round(s[k], 3) for k in ("median", "p50", "p90", "p95"))]
                )
                row += 1
    return target


def profile_cascade(config: DiffServeConfig, options: ProfileOptions) -> str:
    """DiffServe's profiler (its registry entry calls it)."""
    batch_sizes = options.batch_sizes or [1, 2, 4, 8]
    measured = profile(config, batch_sizes, options.repeats, options.warmup, options.curve_prompts, options.out)
    target = write(options.out, config.cascade, measured, batch_sizes)
    return (
        f"Profile: {target}\nSimulate it: python -m orchestrator hydra.searchpath=[file://{options.out.resolve()}] "
        f"cascade={config.cascade.name}_profiled"
    )
