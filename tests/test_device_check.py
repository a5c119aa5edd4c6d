"""The device check's dry run (benchmarks/device_check.py --cpu): every check that needs no GPU
passes on this CPU with tiny shapes, every CUDA-only row is skipped with its reason, and the
profiles it writes are configs the simulator reads. So the command fails on a GPU machine only
for GPU reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.device_check import main
from orchestrator.experiment import run_experiment
from orchestrator.plan import typed_config
from tests.conftest import compose_config

pytestmark = pytest.mark.slow


def test_the_dry_run_passes_and_skips_only_cuda_rows(tmp_path: Path) -> None:
    out = tmp_path / "check"
    assert main(["--cpu", "--out", str(out)]) == 0
    rows = {r["check"]: r for r in json.loads((out / "profiles.json").read_text())["rows"]}
    skipped = {name for name, r in rows.items() if r["result"] == "SKIP"}
    assert skipped == {"cuda", "nccl", "diffserve float16", "gpt float16"}
    assert all(r["figure"] == "needs CUDA (--cpu)" for name, r in rows.items() if name in skipped)
    passed = {name for name, r in rows.items() if r["result"] == "PASS"}
    assert {"diffserve real", "gpt tokens", "gpt migration", "spotserve real", "gpt tiny tp1"} <= passed
    assert any(name.startswith("unet tiny.light") for name in passed)
    assert "| spotserve real | PASS |" in (out / "device_check.md").read_text()
    # A dry run's output has no published shapes: it is not a run the docs' tables come from.
    assert main(["--publish", str(out)]) == 2

    # The profiles are configs the simulator reads, through Hydra's search path.
    assert (out / "cascade" / "tiny_cpu.yaml").is_file() and (out / "model" / "tiny_cpu.yaml").is_file()
    cfg = compose_config(
        f"hydra.searchpath=[file://{out}]",
        "system=spotserve",
        "model=tiny_cpu",
        "trace=tiny_spot",
        "clock=virtual",
        "tracking.enabled=false",
        "run.progress=false",
        f"paths.output_dir={tmp_path}",
    )
    assert run_experiment(cfg, tmp_path / "spot").summary["accounting_ok"]
    cfg = compose_config(
        f"hydra.searchpath=[file://{out}]",
        "cascade=tiny_cpu",
        "trace=fixed_10qps",
        "trace.duration_s=5",
        "clock=virtual",
        "tracking.enabled=false",
        "run.progress=false",
        f"paths.output_dir={tmp_path}",
    )
    summary = run_experiment(cfg, tmp_path / "diff").summary
    assert summary["accounting_ok"] and summary["cascade"] == "tiny_cpu"


def test_the_tiny_unet_shape_is_the_tiny_pipelines() -> None:
    """conf/unet/tiny.yaml builds the UNet runtime/models/tiny.py builds."""
    from runtime.models.shapes import build_unet
    from runtime.models.tiny import build_pipeline

    cascade = typed_config(compose_config("cascade=tiny")).cascade
    assert cascade is not None
    import torch

    ours = build_unet(cascade.light.unet, "cpu", torch.float32)
    theirs = build_pipeline("light").unet
    assert {k: tuple(v) if isinstance(v, list) else v for k, v in ours.config.items()} == {
        k: tuple(v) if isinstance(v, list) else v for k, v in theirs.config.items()
    }
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


@pytest.mark.parametrize(
    ("cascade", "params_m"), [("sdturbo", (866, 860)), ("sdxs", (None, 860)), ("sdxlltn", (2567, 2567))]
)
def test_the_real_unet_shapes_have_their_published_sizes(cascade: str, params_m: tuple[int | None, int]) -> None:
    """The shapes of conf/unet/ make UNets of the published parameter counts (SD-Turbo = SD 2.1's
    865.9M, SD v1.5's 859.5M, SDXL's 2567.5M); built on the meta device, nothing is allocated."""
    import torch

    from runtime.models.shapes import build_unet, unet_parameters

    cfg = typed_config(compose_config(f"cascade={cascade}")).cascade
    assert cfg is not None
    for model, expected in zip((cfg.light, cfg.heavy), params_m, strict=True):
        n = unet_parameters(build_unet(model.unet, "meta", torch.float16)) / 1e6
        if expected is not None:
            assert n == pytest.approx(expected, rel=0.01), (model.name, n)
        else:
            assert 100 < n < 500, (model.name, n)  # SDXS prunes SD v1.5's UNet to a few hundred million
