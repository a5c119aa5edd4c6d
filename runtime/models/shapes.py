"""Models at their published shapes with random weights, to time any GPU without a download.

A cascade model's UNet is built from its published configuration (`cascade.<tier>.unet`,
conf/unet/) directly on the device, and one denoising step is timed per batch size; a
generation's estimate is `steps` such steps, twice the batch under classifier-free guidance
(the text encoder and the VAE are left out, and said so where the estimate is shown). A
SpotServe GPT takes its shape from its model config (runtime/models/gpt.py) and its weights
from `RandomBlocks`, drawn on the device: the values differ from the seeded CPU blocks that
real execution uses, which a latency profile does not need, and a 30B model is ready in
seconds instead of minutes.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

from runtime.models.gpt import GptShape, Place, block_names, block_shape

TEXT_TOKENS = 77  # CLIP's context: the encoder states every UNet step cross-attends to


def build_unet(shape: Mapping[str, Any], device: str, dtype: torch.dtype) -> Any:
    """A UNet2DConditionModel of `shape`, its weights random, created on `device`."""
    from diffusers import UNet2DConditionModel

    from runtime.models.diffusion import quiet_libraries

    quiet_libraries()
    with torch.device(device):
        unet = UNet2DConditionModel(**dict(shape))
    return unet.to(dtype).eval()  # type: ignore[attr-defined]


def unet_parameters(unet: Any) -> int:
    return sum(p.numel() for p in unet.parameters())


def unet_inputs(
    unet: Any, batch: int, device: str, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
    """Random latents, a timestep, text states and (SDXL) the pooled text and size conditions."""
    cfg = unet.config
    gen = torch.Generator(device=device).manual_seed(batch)
    size = cfg.sample_size
    latents = torch.randn(batch, cfg.in_channels, size, size, generator=gen, device=device, dtype=dtype)
    states = torch.randn(batch, TEXT_TOKENS, cfg.cross_attention_dim, generator=gen, device=device, dtype=dtype)
    added: dict[str, Tensor] = {}
    if cfg.addition_embed_type == "text_time":
        pooled = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
        added = {
            "text_embeds": torch.randn(batch, pooled, generator=gen, device=device, dtype=dtype),
            "time_ids": torch.tensor(
                [[size * 8, size * 8, 0, 0, size * 8, size * 8]] * batch, device=device, dtype=dtype
            ),
        }
    return latents, torch.tensor(500, device=device), states, added


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def unet_step_ms(unet: Any, batch: int, device: str, dtype: torch.dtype, repeats: int, warmup: int) -> float:
    """Median milliseconds of one denoising step of `batch` latents."""
    latents, t, states, added = unet_inputs(unet, batch, device, dtype)
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            synchronize(device)
            t0 = time.perf_counter()
            unet(latents, t, encoder_hidden_states=states, added_cond_kwargs=added or None)
            synchronize(device)
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def generation_ms(step_ms: Mapping[int, float], batch: int, steps: int, guidance: float) -> float:
    """A generation's estimate from UNet steps: `steps` steps, at twice the batch under guidance."""
    return steps * step_ms[batch * 2 if guidance > 1.0 else batch]


class RandomBlocks(Mapping[str, Tensor]):
    """A GPT shard's weight blocks, drawn on the device when asked (GptShard's `blocks`)."""

    def __init__(self, shape: GptShape, place: Place, device: str, dtype: torch.dtype, seed: int = 0) -> None:
        self.shape, self.device, self.dtype = shape, device, dtype
        self.names = block_names(shape, place)
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.std = 0.02 * math.sqrt(64 / shape.hidden)

    def __getitem__(self, name: str) -> Tensor:
        rows, cols = block_shape(self.shape, name)
        out = torch.empty(rows, cols, device=self.device, dtype=self.dtype)
        return out.normal_(0.0, self.std, generator=self.gen)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)
