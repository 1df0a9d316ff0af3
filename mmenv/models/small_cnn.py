"""A small CNN for small single-channel images (e.g. 8x8 handwritten digits).

Reading: the LeNet-style layout scaled to tiny inputs — two 3x3 convolutions (same
padding) with ReLU, a 2x2 max-pool, a third 3x3 convolution, then a linear layer on the
flattened map (keeping where the strokes are, which a global pool would discard) and ReLU,
like the MLP encoder's output. No batch norm: a modality's batch can be a single row (or
none) under extreme shares, where batch statistics are undefined.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..datasets.base import ModalitySpec
from ..errors import InvalidArgumentError, ModelError

__all__ = ["SmallImageCNN", "image_cnn_from_spec"]


class SmallImageCNN(nn.Module):
    """``[B, C, H, W]`` (or ``[B, H, W]`` for one channel) -> ``[B, out_dim]``."""

    def __init__(self, in_channels: int = 1, height: int = 8, width: int = 8, channels: int = 32,
                 out_dim: int = 64) -> None:
        super().__init__()
        if min(in_channels, height, width, channels, out_dim) < 1:
            raise InvalidArgumentError(f"in_channels, height, width, channels and out_dim must be >= 1, "
                             f"got {in_channels}, {height}, {width}, {channels}, {out_dim}")
        pooled = (height // 2) * (width // 2) if min(height, width) >= 2 else height * width
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, channels // 2 or 1, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels // 2 or 1, channels, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2) if min(height, width) >= 2 else nn.Identity(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(channels * pooled, out_dim), nn.ReLU(),
        )
        self.in_channels = in_channels
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim == 3 and self.in_channels == 1:
            x = x.unsqueeze(1)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ModelError(f"SmallImageCNN expects [B, {self.in_channels}, H, W], got shape {tuple(x.shape)}")
        return self.net(x)


def image_cnn_from_spec(spec: ModalitySpec, channels: int = 32, out_dim: int = 64) -> nn.Module:
    """Encoder builder for ``kind="image"`` specs of shape ``[C, H, W]`` (or ``[H, W]``)."""
    if len(spec.shape) == 2:
        c, (h, w) = 1, spec.shape
    elif len(spec.shape) == 3:
        c, h, w = spec.shape
    else:
        raise ModelError(f"modality {spec.name!r}: an image modality has shape [C, H, W], got {spec.shape}")
    return SmallImageCNN(int(c), int(h), int(w), channels, out_dim)
