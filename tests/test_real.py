"""Real execution on the CPU with the tiny cascade: real diffusers pipelines built offline, the
live discriminator deciding the routing, saved images, measured FID, and the profile command
closing the loop to simulated execution."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from orchestrator.experiment import RunResult
from orchestrator.plan import typed_config
from orchestrator.quality.frechet import fid, frechet_distance
from runtime.exceptions import ConfigError
from runtime.models import discriminator
from tests.conftest import ROOT, compose_config, free_base_port, processes_mentioning

TINY = (
    "cascade=tiny",
    "execution=real",
    "execution.save_images=true",
    "approach=static",
    "trace=fixed_10qps",
    "trace.high_qps=2",
    "trace.low_qps=2",
    "trace.duration_s=6",
    "time_scale=1",
    "hostfile.workers=2",
    "quality.extractor=small_cnn",
    "quality.min_images=4",
    "quality.window_s=3",
    "quality.image_size=64",
)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 images of the tiny heavy model for prompts no run uses: the reference set."""
    from runtime.models.tiny import build_pipeline

    folder = tmp_path_factory.mktemp("reference")
    pipe = build_pipeline("heavy")
    pipe.set_progress_bar_config(disable=True)
    images = pipe(
        prompt=[f"reference image {i}" for i in range(20)],
        num_inference_steps=4,
        guidance_scale=7.5,
        height=64,
        width=64,
        generator=[torch.Generator().manual_seed(900 + i) for i in range(20)],
    ).images
    for i, img in enumerate(images):
        img.save(folder / f"ref_{i}.png")
    return folder


@pytest.mark.slow
def test_the_discriminator_routes_and_fid_follows_the_mix(run_job: Callable[..., RunResult], reference: Path) -> None:
    light = run_job(*TINY, "approach.threshold=0", f"quality.reference={reference}", name="t0")
    heavy = run_job(*TINY, "approach.threshold=1", f"quality.reference={reference}", name="t1")
    for result, path, model in ((light, "light", "tiny_light"), (heavy, "heavy", "tiny_heavy")):
        s = result.summary
        assert s["accounting_ok"] and s["queries_sent"] >= 8
        rec = pd.read_parquet(result.run_dir / "records.parquet")
        done = rec[rec["outcome"].str.startswith("completed")]
        assert len(done) >= 8 and (done["path"] == path).all(), f"threshold forces every query {path}"
        assert (done["served_model"] == model).all()
        # The live discriminator scored every light image (scores vary; the table would give other values).
        assert done["confidence"].notna().all() and done["confidence"].std() > 0.01
        for image in done["image_path"]:
            assert image.endswith(f"_{model}.png") and (result.run_dir / image).stat().st_size > 100
        assert s["fid_extractor"] == "small_cnn" and s["fid_measured_images"] == len(done)
        windows = pd.read_parquet(result.run_dir / "fid_windows.parquet")
        assert windows["images"].sum() == len(done) and windows["too_few"].dtype == bool
        assert windows.loc[windows["too_few"], "fid"].isna().all()
    assert heavy.summary["fid_measured"] != pytest.approx(light.summary["fid_measured"], rel=0.05)
    assert heavy.summary["fid_measured"] < light.summary["fid_measured"], "the reference set is the heavy model's"

    # The command gives the same number on a finished run.
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.fid",
            "--run",
            str(light.run_dir),
            "--reference",
            str(reference),
            "--extractor",
            "small_cnn",
            "--min-images",
            "4",
            "--window-s",
            "3",
            "--image-size",
            "64",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert f"measured FID {light.summary['fid_measured']:.3f}" in out.stdout


def test_frechet_distance_of_known_gaussians() -> None:
    """Closed form for diagonal covariances: |mu1-mu2|^2 + sum(s1 + s2 - 2 sqrt(s1 s2))."""
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 1.0])
    expected = 1 + 0 + 4 + (1 + 4 - 2 * 2) + (4 + 1 - 2 * 2) + (9 + 1 - 2 * 3)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected)
    # Rotated (non-diagonal) covariances: the same distance, as the metric is rotation invariant.
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    assert frechet_distance(q @ mu1, q @ s1 @ q.T, q @ mu2, q @ s2 @ q.T) == pytest.approx(expected)
    # From samples: large draws of the two Gaussians approach the closed form.
    rng = np.random.default_rng(1)
    a = rng.normal(mu1, np.sqrt(np.diag(s1)), size=(100_000, 3))
    b = rng.normal(mu2, np.sqrt(np.diag(s2)), size=(100_000, 3))
    assert fid(a, b) == pytest.approx(expected, rel=0.02)
    assert fid(a, a) == pytest.approx(0, abs=1e-6)


@pytest.mark.slow
def test_an_absent_model_is_a_one_line_error_at_start_up(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "orchestrator",
        f"paths.output_dir={tmp_path}",
        "run.progress=false",
        *TINY,
        f"hostfile.base_port={free_base_port()}",
        "cascade.heavy.model_id=nobody/absent-model",
    ]
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert proc.returncode == 1 and len(errors) == 1 and "Traceback" not in proc.stderr.split("error: ")[-1]
    assert "start-up failed: worker-" in errors[0]
    assert "cascade.heavy (tiny_heavy): cannot load 'nobody/absent-model'" in errors[0]
    assert processes_mentioning(str(tmp_path)) == []


@pytest.mark.slow
def test_profile_closes_the_loop_to_simulated_execution(tmp_path: Path, run_job: Callable[..., RunResult]) -> None:
    out = tmp_path / "profiles"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator.profile",
            "cascade=tiny",
            "--batch-sizes",
            "1,2,4",
            "--repeats",
            "2",
            "--curve-prompts",
            "16",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    profiled = out / "cascade" / "tiny_profiled.yaml"
    assert profiled.exists() and (out / "tiny_profile.csv").read_text().startswith(",Model,Accel,batchsize,avg_runtime")
    cfg = typed_config(compose_config(f"hydra.searchpath=[file://{out}]", "cascade=tiny_profiled"))
    assert cfg.cascade is not None and cfg.cascade.light.profile.batch_sizes == [1, 2, 4]
    measured = cfg.cascade.light.profile.latency_ms
    assert (all(v > 0 for v in measured) and measured == sorted(measured)) or max(measured) < 1000
    result = run_job(
        f"hydra.searchpath=[file://{out}]", "cascade=tiny_profiled", "execution=simulated", "approach=diffserve"
    )
    assert result.summary["accounting_ok"] and result.summary["cascade"] == "tiny_profiled"
    spec = json.loads((result.run_dir / "spec.json").read_text())
    assert spec["config"]["cascade"]["light"]["profile"]["latency_ms"] == measured


def test_discriminator_weights_are_state_dicts_only(tmp_path: Path) -> None:
    module = discriminator.SmallCNN()
    good = tmp_path / "d.pt"
    torch.save(module.state_dict(), good)
    loaded = discriminator.build("small_cnn", str(good))
    images = torch.rand(3, 3, 64, 64)
    assert torch.allclose(loaded(images), module.eval()(images))
    pickled = tmp_path / "module.pt"
    torch.save(module, pickled)
    with pytest.raises(ConfigError, match="is not a state dict"):
        discriminator.build("small_cnn", str(pickled))
    with pytest.raises(ConfigError, match="unknown 'resnet'"):
        discriminator.build("resnet", str(good))


def test_real_execution_refuses_time_compression() -> None:
    from orchestrator.plan import resolve

    with pytest.raises(ConfigError, match=r"^time_scale: real execution runs at the models' own speed"):
        resolve(compose_config("cascade=tiny", "execution=real", "time_scale=5"))
    with pytest.raises(ConfigError, match=r"^execution.save_images: measured FID"):
        resolve(compose_config("cascade=tiny", "execution=real", f"quality.reference={ROOT}"))


def test_the_discriminator_scores_half_precision_images() -> None:
    """Pipelines in float16 (GPUs) hand the float32 discriminator half-precision images: it
    scores them in its own dtype (the device check found every query dropped otherwise)."""
    import torch

    from runtime.executors.real import RealExecutor
    from runtime.models.discriminator import SmallCNN

    executor = object.__new__(RealExecutor)
    executor.cascade = typed_config(compose_config("cascade=tiny")).cascade  # type: ignore[assignment]
    executor.scorer, executor.device = SmallCNN().eval(), "cpu"
    images = torch.rand(2, 3, 64, 64, dtype=torch.float16)
    scores = executor._score(images)
    assert len(scores) == 2 and all(0.0 <= s <= 1.0 for s in scores)
