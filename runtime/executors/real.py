"""Real execution: the worker runs the cascade's diffusion pipelines and, on the light tier,
scores every image with the discriminator (or looks the prompt up in the confidence table when
`cascade.discriminator.mode=table`). Both models stay resident, as in the artifact, so a tier
switch costs nothing. Each query's image is seeded by (run seed, query id), so it does not
depend on which batch it landed in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from runtime.executors.base import BatchItem, ItemResult
from runtime.executors.simulated import profiled_latency_s
from runtime.logs import init_logger
from runtime.models.diffusion import ModelLoadError, generate, load_pipeline
from runtime.records import Tier
from runtime.schema.diffserve import DiffServeConfig
from runtime.spec import RoleAddress

log = init_logger(__name__)

TINY_DISCRIMINATOR = "tiny:discriminator"


def pick_device(setting: str, gpu: int | None) -> str:
    import torch

    if setting == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return f"cuda:{gpu}" if gpu is not None else "cuda"
    if setting.startswith("cuda"):
        raise ModelLoadError(f"execution.device: {setting} asked for, but torch sees no CUDA device")
    return "cpu"


class RealExecutor:
    def __init__(self, config: DiffServeConfig, me: RoleAddress, out_dir: Path, confidence: np.ndarray) -> None:
        import torch

        from runtime.models import discriminator
        from runtime.models.tiny import ensure_discriminator

        cascade = self.cascade = config.cascade
        self.seed = config.seed
        self.confidence = confidence
        self.device = pick_device(config.execution.device, me.gpu)
        if self.device == "cpu" and config.execution.threads > 0:
            torch.set_num_threads(config.execution.threads)
        cache = out_dir / "models"
        self.models = {Tier.LIGHT: cascade.light, Tier.HEAVY: cascade.heavy}
        self.pipes = {
            Tier.LIGHT: load_pipeline(cascade.light, "light", self.device, cache),
            Tier.HEAVY: load_pipeline(cascade.heavy, "heavy", self.device, cache),
        }
        d = cascade.discriminator
        self.scorer: Any = None
        if d.mode == "live":
            weights = (
                str(ensure_discriminator(cache / "tiny-discriminator.safetensors"))
                if d.weights == TINY_DISCRIMINATOR
                else d.weights
            )
            self.scorer = discriminator.build(d.architecture, weights).to(self.device)
        self.images_dir = out_dir / "images" if config.execution.save_images else None
        self.image_prefix = f"roles/{me.name}/images"
        if self.images_dir is not None:
            self.images_dir.mkdir(parents=True, exist_ok=True)
        if config.execution.warmup:
            for tier in (Tier.LIGHT, Tier.HEAVY):
                self._generate(tier, [BatchItem(query_id=-1, prompt_index=0, prompt="warm-up")])
        log.info(
            "Models ready <device=%s light=%s heavy=%s scorer=%s>",
            self.device,
            cascade.light.name,
            cascade.heavy.name,
            d.architecture if self.scorer is not None else "table",
        )

    def expected_latency_s(self, tier: Tier, batch: int) -> float:
        return profiled_latency_s(self.cascade, tier, batch)

    def _generate(self, tier: Tier, items: list[BatchItem]) -> Any:
        import torch

        model = self.models[tier]
        generators = [torch.Generator().manual_seed(self.seed * 1_000_003 + item.query_id) for item in items]
        with torch.inference_mode():
            out = generate(self.pipes[tier], model, [item.prompt for item in items], generators)
        return out.images  # (N, 3, H, W) in [0, 1]

    def _score(self, images: Any) -> list[float]:
        import torch
        from torch.nn import functional

        size = self.cascade.discriminator.image_size
        with torch.inference_mode():
            if images.shape[-1] != size:
                images = functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
            # The scorer keeps its own dtype (float32) whatever the pipelines run in (float16 on GPUs).
            dtype = next(self.scorer.parameters()).dtype
            return [float(c) for c in self.scorer(images.to(self.device, dtype=dtype))]

    def _save(self, items: list[BatchItem], images: Any, model_name: str) -> list[str]:
        from PIL import Image

        assert self.images_dir is not None
        pixels = (images.clamp(0, 1) * 255).round().to("cpu", dtype=torch_uint8()).permute(0, 2, 3, 1).numpy()
        paths = []
        for item, array in zip(items, pixels, strict=True):
            name = f"{item.query_id}_{model_name}.png"
            Image.fromarray(array).save(self.images_dir / name)
            paths.append(f"{self.image_prefix}/{name}")
        return paths

    def execute(self, tier: Tier, items: list[BatchItem]) -> list[ItemResult]:
        model = self.models[tier]
        images = self._generate(tier, items)
        paths = self._save(items, images, model.name) if self.images_dir is not None else [""] * len(items)
        if tier is not Tier.LIGHT:
            return [ItemResult(image_path=p, model=model.name) for p in paths]
        if self.scorer is not None:
            scores = self._score(images)
        else:
            scores = [float(self.confidence[i.prompt_index]) for i in items]
        return [ItemResult(confidence=c, image_path=p, model=model.name) for c, p in zip(scores, paths, strict=True)]


def torch_uint8() -> Any:
    import torch

    return torch.uint8
