"""Frames for raw-media data sets: image decoding, RandomResizedCrop, normalisation.

``kind="frames"``, shape ``[num_frames, 3, S, S]``: JPEG/PNG files decoded with Pillow.
Training transforms: RandomResizedCrop (torchvision's algorithm: scale (0.08, 1), ratio
(3/4, 4/3), 10 tries then a centre crop) to ``S x S`` and a horizontal flip with
probability 0.5; evaluation: the whole frame resized to ``S x S``. Both normalise with
the ImageNet mean and std. Which frames of a clip are used is the decoder's choice
(:mod:`mmenv.datasets.media_split`).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .base import DatasetError

__all__ = ["FrameConfig", "IMAGENET_MEAN", "IMAGENET_STD", "IMAGE_EXTENSIONS", "load_rgb", "check_image_header",
           "random_resized_crop_box", "image_tensor"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class FrameConfig:
    """Frame decoding and augmentation settings."""

    size: int = 224
    num_frames: int = 1
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    flip_p: float = 0.5

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.num_frames, 3, self.size, self.size)


@contextlib.contextmanager
def _image_errors(path: str | os.PathLike) -> Iterator[None]:
    """Turn PIL's failures on ``path`` (missing, a decompression bomb, not an image, truncated)
    into one :class:`DatasetError` naming the file and the fix."""
    from PIL import Image, UnidentifiedImageError

    try:
        yield
    except FileNotFoundError:
        raise DatasetError(f"image file not found: {path}") from None
    except Image.DecompressionBombError as err:
        raise DatasetError(f"image {path} is too large to decode safely ({err}); resize it") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DatasetError(f"cannot decode image {path}: {err} (truncated or not an image?)") from None


def load_rgb(path: str | os.PathLike):
    """Decode an image file to an RGB ``PIL.Image`` (fully loaded), or raise DatasetError."""
    from PIL import Image

    with _image_errors(path), Image.open(path) as img:
        img.load()
        return img.convert("RGB")


def check_image_header(path: str | os.PathLike) -> tuple[int, int]:
    """Open ``path``'s header only (no pixel decoding) and return ``(width, height)``.

    Run on every frame when a media data set is built, so an unreadable, empty or
    oversized (decompression-bomb) image fails then, naming the file, and not in the
    middle of training or at the final evaluation.
    """
    from PIL import Image

    with _image_errors(path), Image.open(path) as img:
        width, height = img.size
    if width < 1 or height < 1:
        raise DatasetError(f"image {path} is empty ({width} x {height} pixels)")
    return width, height


def random_resized_crop_box(width: int, height: int, rng: np.random.Generator, scale=(0.08, 1.0),
                            ratio=(3.0 / 4.0, 4.0 / 3.0)) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop box ``(left, top, w, h)``, drawn from ``rng``."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return left, top, w, h
    # Fallback: the largest centred crop with a ratio inside the bounds.
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def image_tensor(img, size: int, box: tuple[int, int, int, int] | None, flip: bool) -> Tensor:
    """Crop ``box`` (``None``: the whole image), resize to ``size x size``, flip, ImageNet-normalise -> ``[3, S, S]``."""
    from PIL import Image

    left, top, w, h = box if box is not None else (0, 0, img.width, img.height)
    out = img.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))
    if flip:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    x = torch.from_numpy(np.asarray(out, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std
