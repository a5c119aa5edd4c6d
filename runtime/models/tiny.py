"""Tiny random-weight Stable Diffusion pipelines and a tiny discriminator, built offline from
configs in well under a second and seeded, so that a CPU serves a few queries per second.

They are written with `save_pretrained` into a directory and then loaded through the same
`from_pretrained` path as a real model (runtime.models.diffusion), so the loading code a GPU
server uses is the code the tests exercise. The tokenizer is CLIP's byte-level scheme with no
merges: the 256 byte characters, the same with the end-of-word mark, then BOS and EOS.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# The two tiny models of the tiny cascade: the light one takes 1 denoising step without
# guidance (turbo style), the heavy one more steps with guidance, so it costs more per image.
TINY_SEEDS = {"light": 11, "heavy": 22, "discriminator": 33}
TINY_RESOLUTION = 64


def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP's map of the 256 bytes to printable characters."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    order = sorted(range(256), key=lambda i: printable[i])
    return [chr(chars[i]) for i in order]


def tiny_tokenizer():  # type: ignore[no-untyped-def]
    from transformers import CLIPTokenizer

    chars = _bytes_to_unicode()
    vocab = {t: i for i, t in enumerate(chars + [c + "</w>" for c in chars])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


def build_pipeline(kind: str):  # type: ignore[no-untyped-def]
    """A tiny SD-shaped pipeline (VAE factor 8: 64x64 images, 8x8 latents), random weights."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(TINY_SEEDS[kind])
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=514,
            hidden_size=32,
            intermediate_size=64,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=512,
            eos_token_id=513,
            pad_token_id=513,
            projection_dim=32,
        )
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        sample_size=TINY_RESOLUTION,
    )
    unet = UNet2DConditionModel(
        sample_size=TINY_RESOLUTION // 8,
        in_channels=4,
        out_channels=4,
        block_out_channels=(16, 32),
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
    )
    scheduler = EulerAncestralDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="trailing", steps_offset=1
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text,
        tokenizer=tiny_tokenizer(),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def ensure_pipeline(kind: str, directory: Path) -> Path:
    """`directory` holds the tiny `kind` pipeline (built and saved if missing); returns it.
    Built in a temporary directory and renamed into place, so concurrent workers do not clash."""
    if (directory / "model_index.json").exists():
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    build_pipeline(kind).save_pretrained(tmp)
    try:
        tmp.replace(directory)
    except OSError:  # another worker got there first
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


CALIBRATION_PROMPTS = 48
LOGIT_SPREAD = 1.5  # standard deviation of the calibrated logits: confidences spread over (0, 1)


def build_discriminator():  # type: ignore[no-untyped-def]
    """The tiny discriminator: random convolutions whose head is calibrated on the tiny light
    model's images (centred, scaled) so that its scores spread over (0, 1) around 0.5. A raw
    random head scores every image alike, and then any threshold defers all or nothing."""
    import torch

    from runtime.models.discriminator import SmallCNN

    torch.manual_seed(TINY_SEEDS["discriminator"])
    module = SmallCNN().eval()
    pipe = build_pipeline("light")
    pipe.set_progress_bar_config(disable=True)
    prompts = [f"a photo of object number {i}" for i in range(CALIBRATION_PROMPTS)]
    generators = [torch.Generator().manual_seed(i) for i in range(CALIBRATION_PROMPTS)]
    with torch.inference_mode():
        images = pipe(
            prompt=prompts,
            num_inference_steps=1,
            guidance_scale=0.0,
            height=TINY_RESOLUTION,
            width=TINY_RESOLUTION,
            generator=generators,
            output_type="pt",
        ).images
        logits = module.head(module.features((images - 0.5074) / 0.2551)).squeeze(1)
        scale = LOGIT_SPREAD / max(float(logits.std()), 1e-6)
        module.head.weight.mul_(scale)
        module.head.bias.copy_((module.head.bias - logits.mean()) * scale)
    return module


def ensure_discriminator(path: Path) -> Path:
    """A state-dict file of the tiny discriminator (seeded, calibrated); built if missing."""
    if path.exists():
        return path
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    save_file(build_discriminator().state_dict(), str(tmp))
    tmp.replace(path)
    return path
