"""The discriminator that scores a light model's image: confidence that it is good enough.

`small_cnn`: four stride-2 convolutions (16/32/64/128 channels) with GroupNorm and SiLU, global
average pooling and one linear logit; confidence = sigmoid(logit). `efficientnet_v2_s`: the
paper's torchvision EfficientNet-V2-S with a 2-way head (softmax of the "real" class), only
where torchvision imports. Weights always come from a state-dict file (safetensors or a torch
state dict loaded with weights_only), never from a pickled module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from runtime.exceptions import ConfigError

# The artifact's preprocessing: one mean and std for all three channels.
MEAN, STD = 0.5074, 0.2551


class SmallCNN(nn.Module):
    def __init__(self, width: int = 16) -> None:
        super().__init__()
        layers: list[Any] = []
        channels = 3
        for out in (width, 2 * width, 4 * width, 8 * width):
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.GroupNorm(4, out), nn.SiLU()]
            channels = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(channels, 1)
        self.num_features = channels

    def forward(self, images: Any) -> Any:
        """Confidence in [0, 1] for images in [0, 1], shape (N, 3, H, W)."""
        return torch.sigmoid(self.head(self.features((images - MEAN) / STD))).squeeze(1)


def _efficientnet() -> Any:
    try:
        from torchvision.models import efficientnet_v2_s
    except Exception as err:  # torchvision is absent or broken (e.g. a CUDA build on a CPU torch)
        raise ConfigError(
            f"cascade.discriminator.architecture: efficientnet_v2_s needs torchvision, which does not import here ({type(err).__name__}); use small_cnn"
        ) from None
    model = efficientnet_v2_s(weights=None)
    model.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 2))

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def forward(self, images: Any) -> Any:
            return torch.softmax(self.net((images - MEAN) / STD), dim=1)[:, 0]

    return Head()


def load_state_dict(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"cascade.discriminator.weights: no such file: {path}")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(p)))
    try:
        state = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception:  # a pickled module (the artifact's checkpoints) is refused, not executed
        raise ConfigError(
            f"cascade.discriminator.weights: {path} is not a state dict (pickled modules are not loaded; save model.state_dict())"
        ) from None
    if not isinstance(state, dict):
        raise ConfigError(f"cascade.discriminator.weights: {path} is not a state dict")
    return state


def build(architecture: str, weights: str | None) -> Any:
    """The discriminator module with its weights loaded, in eval mode."""
    if architecture == "small_cnn":
        module = SmallCNN()
    elif architecture == "efficientnet_v2_s":
        module = _efficientnet()
    else:
        raise ConfigError(
            f"cascade.discriminator.architecture: unknown {architecture!r} (allowed: small_cnn, efficientnet_v2_s)"
        )
    if weights is None:
        raise ConfigError("cascade.discriminator.weights: live scoring needs a state-dict file")
    try:
        module.load_state_dict(load_state_dict(weights))
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ConfigError(f"cascade.discriminator.weights: {weights} does not fit {architecture} ({first})") from None
    return module.eval()
