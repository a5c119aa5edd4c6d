"""Every CUDA path of the project in one short command, for the first GPU machine at hand.

    python -m benchmarks.device_check [--out DIR] [--cpu] [--skip-profiles]
    python -m benchmarks.device_check --publish docs/device_check/<gpu>_<date>   # the docs' tables

Prints one table (check, result, figure) and writes it, with the profiles, into --out:

| check | what it runs |
| --- | --- |
| cuda | torch sees the GPUs: name, memory, compute capability, torch and CUDA versions |
| nccl | NCCL is there; with one GPU, replica groups share it over gloo (CPU copies) |
| diffserve real | `cascade=tiny execution=real` on the GPU: real role processes, every query accounted, images written |
| diffserve float16 | the same with both models in float16 |
| gpt tokens | the sharded GPT's greedy tokens: a tp 2 replica of two processes on the GPU = one CPU process |
| gpt migration | a request cut after 4 tokens under tp 2 resumes under pp 2 from its migrated KV cache, exact |
| gpt float16 | the same decoding in float16 against float32: the share of equal tokens (information) |
| spotserve real | `system=spotserve model=tiny execution=real trace=tiny_spot_short` on the GPU: a worker process receives weights and KV caches from another, every request accounted |
| unet <model> | each cascade model's UNet at its published shape (random weights, float16): one step per batch 1-32 |
| gpt <model> | 6.7B, 20B, 30B at tp 1 (float16, random weights): prefill and decode per batch |

`--cpu` is the dry run the test suite runs: the same command on the CPU with tiny shapes (the
tiny cascade's UNet, the tiny GPT), every CUDA-only row skipped with its reason. The profiles
go to `--out`: `cascade/<name>_<gpu>.yaml` and `model/<name>_<gpu>.yaml` are configs the
simulator reads (`hydra.searchpath=[file://DIR]`); `profiles.json` has every figure and the
ratios to the artifacts' published profiles. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.common import compose_config, say, table
from labkit import free_base_port

PASS, FAIL, SKIP, INFO = "PASS", "FAIL", "SKIP", "INFO"
UNET_BATCHES = (1, 2, 4, 8, 16, 32)
GPT_BATCHES = (1, 2, 4, 8)
REAL_MODELS = ("6.7B", "20B", "30B")
CASCADES = ("sdturbo", "sdxs", "sdxlltn")
# The tiny GPT of the token checks (tests/test_gpt.py's), and its prompts.
TOKEN_SHAPE = {"layers": 4, "hidden": 64, "heads": 4, "vocab": 256, "max_seq_len": 48}
PROMPT = [[5, 17, 42, 99, 3, 250, 64, 8], [1, 2, 3, 4, 5, 6, 7, 200]]
NEW_TOKENS = 10


@dataclass
class Row:
    check: str
    result: str
    figure: str
    seconds: float = 0.0


class Check:
    """Runs the checks in order, each timed and kept to one row; a failure keeps its reason."""

    def __init__(self, cpu: bool, out: Path, only: tuple[str, ...] = ()) -> None:
        self.cpu, self.out, self.only = cpu, out, only
        self.rows: list[Row] = []
        self.device = "cpu" if cpu else "cuda"
        self.work = Path(tempfile.mkdtemp(prefix="device-check-"))
        self.profiles: dict[str, Any] = {}

    def wanted(self, name: str) -> bool:
        return not self.only or any(part in name for part in self.only)

    def row(self, name: str, fn: Callable[[], tuple[str, str]], cuda_only: bool = False) -> None:
        if not self.wanted(name):
            return
        t0 = time.perf_counter()
        if cuda_only and self.cpu:
            result, figure = SKIP, "needs CUDA (--cpu)"
        else:
            try:
                result, figure = fn()
            except Exception as err:  # a failed check is a row, not the end of the run
                result, figure = (
                    FAIL,
                    f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200] if str(err).strip() else ''}",
                )
                (self.out / f"error-{name.replace(' ', '_')}.txt").write_text(traceback.format_exc())
        row = Row(name, result, figure, round(time.perf_counter() - t0, 1))
        self.rows.append(row)
        say(f"{row.result:4}  {row.check:24} {row.figure}  ({row.seconds} s)")


# --------------------------------------------------------------------------- the GPU


def cuda_row() -> tuple[str, str]:
    import torch

    if not torch.cuda.is_available():
        return FAIL, f"torch {torch.__version__} sees no CUDA device"
    names = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        names.append(f"{p.name} (sm_{p.major}{p.minor}, {p.total_memory / 2**30:.0f} GiB)")
    return PASS, f"{len(names)} x {names[0]}; torch {torch.__version__}, CUDA {torch.version.cuda}"


def nccl_row() -> tuple[str, str]:
    import torch
    import torch.distributed as dist

    if not dist.is_nccl_available():
        return FAIL, "torch.distributed has no NCCL"
    version = ".".join(map(str, torch.cuda.nccl.version()))
    if torch.cuda.device_count() < 2:
        return PASS, f"NCCL {version}; 1 GPU: a replica's ranks share it over gloo through CPU copies"
    return PASS, f"NCCL {version}; {torch.cuda.device_count()} GPUs: replica groups over NCCL"


# --------------------------------------------------------------------------- real runs


def run_job(check: Check, name: str, *overrides: str) -> dict[str, Any]:
    from orchestrator.experiment import run_experiment

    out = check.work / name
    cfg = compose_config(
        *overrides,
        f"paths.output_dir={out}",
        f"hostfile.base_port={free_base_port(60)}",
        "tracking.enabled=false",
        "run.progress=false",
    )
    result = run_experiment(cfg, out / "run")
    return {"summary": result.summary, "run_dir": out / "run"}


def diffserve_row(check: Check, float16: bool) -> tuple[str, str]:
    device = "cpu" if check.cpu else "cuda"
    overrides = [
        "cascade=tiny",
        "execution=real",
        f"execution.device={device}",
        "execution.save_images=true",
        "trace=fixed_10qps",
        "trace.duration_s=8",
        "hostfile.workers=2",
    ]
    if float16:
        overrides += ["cascade.light.dtype=float16", "cascade.heavy.dtype=float16"]
    got = run_job(check, "diffserve-fp16" if float16 else "diffserve", *overrides)
    s, run_dir = got["summary"], got["run_dir"]
    records = pd.read_parquet(run_dir / "records.parquet")
    served = records[records["outcome"].isin(["completed_on_time", "completed_late"])]["image_path"]
    images = [run_dir / p for p in served if p and (run_dir / p).is_file()]
    logs = " ".join(p.read_text() for p in (run_dir / "logs").rglob("worker*.log"))
    on = f"device={device}" in logs or (device == "cuda" and "device=cuda" in logs)
    done = s["completed_on_time"] + s["completed_late"]
    spread = _pixel_spread(images[0]) if images else 0.0
    drops = records["drop_reason"].replace("", None).dropna().value_counts().to_dict()
    ok = s["accounting_ok"] and not s["partial"] and done == s["queries_sent"] > 0 and on and len(images) == done
    ok = ok and spread > 0  # not a blank (or NaN-black) image
    figure = (
        f"{done}/{s['queries_sent']} completed, {len(images)} images (pixel std {spread:.1f}), p50 "
        f"{s['latency_p50_s'] * 1000:.0f} ms, workers on {device if on else 'NOT ' + device}"
    )
    if drops:
        errors = [ln for ln in logs.splitlines() if "Error" in ln or "error" in ln][:1]
        figure += f"; dropped {drops}" + (f": {errors[0].strip()[:160]}" if errors else "")
    return (PASS if ok else FAIL), figure


def _pixel_spread(path: Path) -> float:
    import numpy as np
    from PIL import Image

    with Image.open(path) as img:
        return float(np.asarray(img, dtype=float).std())


TAIL_S = 3.0  # seconds at a SpotServe trace's end whose requests may be cut by it


def spotserve_row(check: Check) -> tuple[str, str]:
    device = "cpu" if check.cpu else "cuda"
    # tp 1 leaves the optimizer pipelines of two stages (the tiny model's min_world_size): the
    # groups send activations between processes, and a run of 40 s keeps up on two CPU cores.
    got = run_job(
        check,
        "spotserve",
        "system=spotserve",
        "model=tiny",
        "model.max_tp=1",
        "trace=tiny_spot_short",
        "spot.grace_period_s=6",
        "execution=real",
        f"execution.device={device}",
    )
    s, run_dir = got["summary"], got["run_dir"]
    transfers_file = run_dir / "roles" / "controller" / "transfers.parquet"
    moved = 0.0  # bytes a GPU received from another worker process (not read from storage)
    if transfers_file.exists():
        t = pd.read_parquet(transfers_file)
        moved = float(t[(t["kind"] != "total") & (t["src"] != "storage")]["bytes"].sum())
    # A SpotServe run ends with its trace (no drain): a request that arrived in its last seconds
    # may be cut off on a busy machine (the last one arrives 0.2 s before the end); any other
    # request must complete.
    records = pd.read_parquet(run_dir / "records.parquet")
    cut = int(((records["outcome"] == "unfinished") & (records["arrival_s"] > s["trace_duration_s"] - TAIL_S)).sum())
    ok = s["accounting_ok"] and not s["partial"] and s["completed"] + cut == s["queries_sent"] > 0 and moved > 0
    figure = (
        f"{s['completed']}/{s['queries_sent']} completed, mean {s['latency_mean_s']:.3f} s, "
        f"{s['reconfigurations']} changes, {moved / 1e6:.2f} MB migrated"
    )
    if cut:
        figure += f" ({cut} arrived in the trace's last {TAIL_S:g} s, cut by its end)"
    missing = {k: s[k] for k in ("dropped", "queries_lost") if s.get(k)}
    if missing or s["completed"] + cut != s["queries_sent"]:  # what became of the others
        figure += "; " + ", ".join(f"{v} {k}" for k, v in missing.items()) + f" unfinished {s['unfinished']}"
    return (PASS if ok else FAIL), figure


# --------------------------------------------------------------------------- the GPT's tokens


def token_rows(check: Check) -> None:
    from runtime.models.gpt import GptShape
    from runtime.models.gpt_ranks import run_ranks, single

    shape = GptShape(**TOKEN_SHAPE)
    where = check.work / "tokens"
    reference = single(shape, 7, PROMPT, NEW_TOKENS, dtype="float32")

    def tp2() -> tuple[str, str]:
        got = run_ranks(shape, 7, PROMPT, NEW_TOKENS, 2, 1, where, "tp2", device=check.device, dtype="float32")
        same = got == reference
        return (
            PASS if same else FAIL
        ), f"tp 2 on {check.device} {'=' if same else '!='} 1 CPU process ({NEW_TOKENS} tokens x 2)"

    def migration() -> tuple[str, str]:
        before = run_ranks(shape, 7, PROMPT, 4, 2, 1, where, "before", device=check.device, dtype="float32")
        after = run_ranks(
            shape,
            7,
            PROMPT,
            NEW_TOKENS - 4,
            1,
            2,
            where,
            "after",
            device=check.device,
            dtype="float32",
            resume=where / "before",
        )
        same = [b + a for b, a in zip(before, after, strict=True)] == reference
        return (
            PASS if same else FAIL
        ), f"cut at 4 under tp 2, resumed under pp 2 from its KV cache: {'exact' if same else 'DIFFERENT'}"

    def half() -> tuple[str, str]:
        got = run_ranks(shape, 7, PROMPT, NEW_TOKENS, 1, 1, where, "fp16", device=check.device, dtype="float16")
        equal = sum(a == b for g, r in zip(got, reference, strict=True) for a, b in zip(g, r, strict=True))
        return INFO, f"{equal}/{NEW_TOKENS * len(PROMPT)} tokens as in float32 (greedy, random weights)"

    check.row("gpt tokens", tp2)
    check.row("gpt migration", migration)
    check.row("gpt float16", half, cuda_only=True)


# --------------------------------------------------------------------------- profiles


def unet_rows(check: Check) -> None:
    """Each cascade model's UNet at its published shape, one step per batch; the generation
    estimate against the artifact's profile; a cascade config the simulator reads."""
    import torch

    from orchestrator.plan import config_as
    from orchestrator.systems.diffserve.profile import summarize, write
    from runtime.models.shapes import build_unet, generation_ms, unet_parameters, unet_step_ms
    from runtime.schema.diffserve import DiffServeConfig

    dtype = torch.float32 if check.cpu else torch.float16
    cascades = ("tiny",) if check.cpu else CASCADES
    gpu = "cpu" if check.cpu else torch.cuda.get_device_name(0).replace(" ", "_")
    for name in cascades:
        cascade = config_as(compose_config(f"cascade={name}"), DiffServeConfig).cascade
        measured: dict[str, Any] = {"device": check.device, "models": {}}
        for tier, model in (("light", cascade.light), ("heavy", cascade.heavy)):
            box: dict[str, Any] = {}

            def one(model: Any = model, box: dict[str, Any] = box) -> tuple[str, str]:
                unet = build_unet(model.unet, check.device, dtype)
                batches = [b for b in UNET_BATCHES if b <= 8] if check.cpu else list(UNET_BATCHES)
                cfg = 2 if model.guidance > 1.0 else 1
                steps = {b: unet_step_ms(unet, b, check.device, dtype, repeats=3, warmup=1) for b in batches}
                if cfg == 2:  # guidance doubles the batch: 64 for 32 images
                    steps[2 * batches[-1]] = unet_step_ms(unet, 2 * batches[-1], check.device, dtype, 3, 1)
                profiled = model.profile.batch_sizes
                estimate = {
                    b: generation_ms(steps, b, model.steps, model.guidance)
                    for b in batches
                    if 2 * b in steps or cfg == 1
                }
                ratios = {
                    b: estimate[b] / ms
                    for b, ms in zip(profiled, model.profile.latency_ms, strict=True)
                    if b in estimate
                }
                box.update(params=unet_parameters(unet), step_ms=steps, estimate_ms=estimate, ratio_to_artifact=ratios)
                del unet
                if not check.cpu:
                    torch.cuda.empty_cache()
                b_max = max(estimate)
                ratio = f", {ratios[1]:.2f}x the artifact's at batch 1" if 1 in ratios else ""
                return PASS, (
                    f"{box['params'] / 1e6:.0f}M params; step b1 {steps[1]:.1f} ms, b{b_max} "
                    f"{steps[b_max]:.1f} ms; generation b1 {estimate[1]:.0f} ms{ratio}"
                )

            check.row(f"unet {name}.{tier} ({model.name})", one)
            if "estimate_ms" in box:
                measured["models"][tier] = {b: summarize([v]) for b, v in box["estimate_ms"].items()}
                check.profiles[f"unet/{name}/{tier}/{model.name}"] = box
        if set(measured["models"]) == {"light", "heavy"}:
            common = sorted(set(measured["models"]["light"]) & set(measured["models"]["heavy"]))
            measured["source"] = (
                f"estimated on {gpu} by benchmarks.device_check, {time.strftime('%Y-%m-%d')}: "
                f"UNet steps at the published shape, random weights, {str(dtype).split('.')[-1]}; "
                "the text encoder and the VAE are not included"
            )
            write(check.out, cascade, measured, common, suffix=gpu.lower())


def gpt_rows(check: Check) -> None:
    """The SpotServe GPTs at tp 1: prefill and decode per batch, a model config the simulator reads."""
    import torch

    from orchestrator.plan import config_as
    from orchestrator.systems.spotserve.profile import measure, profiled_model, write_profile
    from runtime.schema.spotserve import SpotServeConfig

    models = ("tiny",) if check.cpu else REAL_MODELS
    gpu = "cpu" if check.cpu else torch.cuda.get_device_name(0).replace(" ", "_")
    for name in models:
        model = config_as(compose_config("system=spotserve", f"model={name}"), SpotServeConfig).model

        def one(model: Any = model, name: str = name) -> tuple[str, str]:
            batches = list(GPT_BATCHES)
            measured = measure(model, check.device, batches, [1], repeats=3, warmup=1, weights="random")
            source = (
                f"measured on {gpu} by benchmarks.device_check, {time.strftime('%Y-%m-%d')}: tp 1, "
                f"{'float32' if check.cpu else 'float16'}, random weights"
            )
            profiled = profiled_model(model, measured, batches, [1], source=source)
            profiled["name"] = f"{model.name}_{gpu.lower()}"
            write_profile(check.out, model, profiled)
            tp1 = list(model.profile_tps).index(1) if 1 in model.profile_tps else None
            ratios = {}
            if tp1 is not None:
                for i, b in enumerate(batches):
                    if b in model.profile_batches:
                        j = list(model.profile_batches).index(b)
                        ratios[b] = {
                            "init": profiled["init_ms"][0][i] / model.init_ms[tp1][j],
                            "incr": profiled["incr_ms"][0][i] / model.incr_ms[tp1][j],
                        }
            check.profiles[f"gpt/{name}"] = {
                "passes": measured["passes"],
                "init_ms": profiled["init_ms"][0],
                "incr_ms": profiled["incr_ms"][0],
                "ratio_to_t4": ratios,
            }
            r = ratios.get(1)
            vs = f"; x{r['init']:.3f} / x{r['incr']:.3f} the T4 profile" if r else ""
            return PASS, (
                f"per layer b1 prefill {profiled['init_ms'][0][0]:.3f} ms, decode "
                f"{profiled['incr_ms'][0][0]:.3f} ms; b8 {profiled['incr_ms'][0][-1]:.3f} ms{vs}"
            )

        check.row(f"gpt {name} tp1", one)
        if not check.cpu:
            torch.cuda.empty_cache()


# --------------------------------------------------------------------------- the docs' tables


def report_tables(out: Path) -> dict[str, str]:
    """The docs' three tables of a device run, from what the run wrote into `out`: its check
    table as printed, each UNet's generation estimate beside the cascade's published profile,
    each GPT's tp-1 layer times beside the published T4 profile. Pure but for reading `out` and
    the published profiles in conf/."""
    from orchestrator.plan import config_as
    from runtime.schema.diffserve import DiffServeConfig
    from runtime.schema.spotserve import SpotServeConfig

    profiles = json.loads((out / "profiles.json").read_text())["profiles"]
    unet_rows, gpt_rows = [], []
    for key, box in profiles.items():
        kind, *names = key.split("/")
        if kind == "unet":
            cascade_name, tier, model_name = names
            model = getattr(config_as(compose_config(f"cascade={cascade_name}"), DiffServeConfig).cascade, tier)
            published = dict(zip(model.profile.batch_sizes, model.profile.latency_ms, strict=True))
            step, estimate = box["step_ms"], box["estimate_ms"]
            ratio = box["ratio_to_artifact"]
            unet_rows.append(
                [
                    cascade_name,
                    tier,
                    model_name,
                    f"{box['params'] / 1e6:.0f}M",
                    f"{step['1']:.1f} / {step['32']:.1f}",
                    f"{estimate['1']:.0f} / {estimate['16']:.0f}",
                    f"{published[1]:.0f} / {published[16]:.0f}",
                    f"{ratio['1']:.2f} / {ratio['16']:.2f}",
                ]
            )
        elif kind == "gpt":
            (name,) = names
            model = config_as(compose_config("system=spotserve", f"model={name}"), SpotServeConfig).model
            tp1 = list(model.profile_tps).index(1)
            j1, j8 = (list(model.profile_batches).index(b) for b in (1, 8))
            i1, i8 = (list(GPT_BATCHES).index(b) for b in (1, 8))
            row = [name]
            for ours, t4, part in (
                (box["init_ms"], model.init_ms[tp1], "init"),
                (box["incr_ms"], model.incr_ms[tp1], "incr"),
            ):
                r = box["ratio_to_t4"]
                row += [
                    f"{ours[i1]:.3f} / {ours[i8]:.3f}",
                    f"{t4[j1]:g} / {t4[j8]:g}",
                    f"{r['1'][part]:.3f} / {r['8'][part]:.3f}",
                ]
            gpt_rows.append(row)
    return {
        "device-check": (out / "device_check.md").read_text().strip(),
        "device-unet": table(
            [
                "cascade",
                "tier",
                "model",
                "UNet params",
                "one step b1 / b32 (ms)",
                "generation estimate b1 / b16 (ms)",
                "the artifact's profile b1 / b16 (ms)",
                "ratio b1 / b16",
            ],
            unet_rows,
        ),
        "device-gpt": table(
            [
                "model",
                "prefill b1 / b8 (ms)",
                "T4 tp 1 (ms)",
                "ratio",
                "decode b1 / b8 (ms)",
                "T4 tp 1 (ms)",
                "ratio",
            ],
            gpt_rows,
        ),
    }


def publish_tables(out: Path, tables: dict[str, str]) -> list[Path]:
    """Publish a device run's tables (its --out copied into docs/device_check/) as the docs' tables."""
    from benchmarks.doc_tables import publish

    command = f"python -m benchmarks.device_check --publish {out}"
    return [publish(name, text, command) for name, text in tables.items()]


# --------------------------------------------------------------------------- the command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.device_check", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=Path("outputs/device_check"), help="where the table and profiles go"
    )
    parser.add_argument("--cpu", action="store_true", help="the dry run: CPU, tiny shapes, CUDA rows skipped")
    parser.add_argument("--skip-profiles", action="store_true", help="no UNet and GPT profiles")
    parser.add_argument(
        "--only", default="", help="run only the checks whose names contain one of these (comma-separated)"
    )
    parser.add_argument(
        "--publish",
        type=Path,
        metavar="DIR",
        help="run nothing: write the docs' tables from a device run's --out copied to DIR",
    )
    args = parser.parse_args(argv)
    if args.publish is not None:
        try:
            tables = report_tables(args.publish)
        except (OSError, KeyError, ValueError) as err:
            print(
                f"--publish {args.publish}: not a GPU run's --out (profiles.json and device_check.md with the "
                f"published shapes' batches): {type(err).__name__}: {err}",
                file=sys.stderr,
            )
            return 2
        for path in publish_tables(args.publish, tables):
            say(f"wrote {path}")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    check = Check(args.cpu, args.out, tuple(p.strip() for p in args.only.split(",") if p.strip()))
    t0 = time.perf_counter()
    check.row("cuda", cuda_row, cuda_only=True)
    check.row("nccl", nccl_row, cuda_only=True)
    check.row("diffserve real", lambda: diffserve_row(check, float16=False))
    check.row("diffserve float16", lambda: diffserve_row(check, float16=True), cuda_only=True)
    token_rows(check)
    check.row("spotserve real", lambda: spotserve_row(check))
    if not args.skip_profiles:
        unet_rows(check)
        gpt_rows(check)
    total = time.perf_counter() - t0
    rows = [[r.check, r.result, r.figure, r.seconds] for r in check.rows]
    text = table(["check", "result", "figure", "s"], rows)
    failed = [r.check for r in check.rows if r.result == FAIL]
    summary = (
        f"{len(check.rows)} checks in {total:.0f} s: {sum(r.result == PASS for r in check.rows)} passed, "
        f"{len(failed)} failed, {sum(r.result == SKIP for r in check.rows)} skipped"
    )
    say("")
    say(text)
    say(summary)
    (args.out / "device_check.md").write_text(f"{text}\n\n{summary}\n")
    (args.out / "profiles.json").write_text(
        json.dumps({"rows": [asdict(r) for r in check.rows], "profiles": check.profiles}, indent=1, default=_plain)
    )
    shutil.rmtree(check.work, ignore_errors=True)
    return 1 if failed else 0


def _plain(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


if __name__ == "__main__":
    raise SystemExit(main())
