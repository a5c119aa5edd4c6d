"""Feature extractors for FID.

- `inception`: InceptionV3 pool3 (2048 features) from a local weights file. A TorchScript file
  (the `inception-2015-12-05.pt` that StyleGAN2-ADA and clean-fid use; it needs no
  torchvision) is loaded with `torch.jit.load`; a torchvision state dict (`pt_inception-...pth`)
  needs torchvision.
- `small_cnn`: the discriminator's convolutional trunk (128 features), random and seeded or
  from a state dict: runs anywhere, for tests and offline comparisons. Its numbers are not
  comparable with published FID.
- `module`: any torch module with a `num_features` attribute, from `package.module:factory`.
Each returns a callable: images (N, 3, H, W) float in [0, 1] -> features (N, D) numpy.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from runtime.exceptions import ConfigError
from runtime.schema.diffserve import QualityConfig

Extractor = Callable[[Any], np.ndarray]
SMALL_CNN_SEED = 1234


def build_extractor(q: QualityConfig, device: str = "cpu") -> Extractor:
    import torch

    if q.extractor == "inception":
        if not q.extractor_path or not Path(q.extractor_path).is_file():
            raise ConfigError(
                "quality.extractor_path: InceptionV3 needs a local weights file (inception-2015-12-05.pt, see the "
                "README), or use quality.extractor=small_cnn"
            )
        try:
            net = torch.jit.load(q.extractor_path, map_location=device).eval()
        except RuntimeError:
            net = _torchvision_inception(q.extractor_path).to(device)

        def inception(images: Any) -> np.ndarray:
            pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).to(device)
            with torch.inference_mode():
                feats = (
                    net(pixels, return_features=True)
                    if isinstance(net, torch.jit.ScriptModule)
                    else net(images.to(device))
                )
            return np.asarray(feats.float().cpu().numpy())

        return inception
    if q.extractor == "small_cnn":
        from runtime.models.discriminator import SmallCNN, load_state_dict

        torch.manual_seed(SMALL_CNN_SEED)
        module = SmallCNN()
        if q.extractor_path:
            module.load_state_dict(load_state_dict(q.extractor_path))
        trunk = module.features.eval().to(device)
        return _wrap(trunk, device)
    if q.extractor == "module":
        if not q.extractor_target or ":" not in q.extractor_target:
            raise ConfigError("quality.extractor_target: give 'package.module:factory' for extractor=module")
        mod_name, _, attr = q.extractor_target.partition(":")
        try:
            factory = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"quality.extractor_target: cannot import {q.extractor_target!r} ({err})") from None
        return _wrap(factory().eval().to(device), device)
    raise ConfigError(f"quality.extractor: unknown {q.extractor!r} (allowed: inception, small_cnn, module)")


def _wrap(module: Any, device: str) -> Extractor:
    import torch

    def extract(images: Any) -> np.ndarray:
        with torch.inference_mode():
            return np.asarray(module(images.to(device)).float().flatten(1).cpu().numpy())

    return extract


def _torchvision_inception(path: str) -> Any:
    try:
        from torchvision.models import inception_v3
    except Exception as err:
        raise ConfigError(
            f"quality.extractor_path: {path} is not TorchScript, and torchvision (needed for a state dict) does not import ({type(err).__name__})"
        ) from None
    import torch

    net = inception_v3(weights=None, aux_logits=False, init_weights=False)
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=False)
    net.fc = torch.nn.Identity()
    return net.eval()
