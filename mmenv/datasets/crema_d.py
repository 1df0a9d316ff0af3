"""CREMA-D (Cao et al., 2014) in the layout of OGM-GE's preprocessing.

::

    root/
      AudioWAV/<clip>.wav              one WAV per clip (resampled to 22,050 Hz if needed)
      Image-01-FPS/<clip>/*.jpg        frames extracted at 1 fps
      train.csv, test.csv              rows "<clip>,<LABEL>", LABEL in NEU HAP SAD FEA DIS ANG

Classes in OGM-GE's order: NEU=0, HAP=1, SAD=2, FEA=3, DIS=4, ANG=5. The published split
has 6,698 train / 744 test clips; ``val_fraction`` (10% by default) of each class of
train.csv is held out as a fixed validation split (``split_seed``). Audio becomes a
257 x 188 log spectrogram, one frame a 224 x 224 image (see :mod:`mmenv.datasets.media`).
The default encoders are ResNet-18 for both (from scratch, as in OGM-GE).
"""

from __future__ import annotations

import os

from .base import MultimodalDataset
from .media import make_media_dataset

__all__ = ["make_crema_d", "CREMA_D_CLASSES"]

CREMA_D_CLASSES = ("NEU", "HAP", "SAD", "FEA", "DIS", "ANG")


def make_crema_d(root: str | os.PathLike, train_list: str = "train.csv", test_list: str = "test.csv",
                 audio_dir: str = "AudioWAV", frames_dir: str = "Image-01-FPS", num_frames: int = 1,
                 **kwargs) -> MultimodalDataset:
    """Load CREMA-D from ``root`` (modalities ``audio`` and ``visual``).

    ``kwargs`` go to :func:`mmenv.datasets.media.make_media_dataset`: ``frame_size``,
    ``n_fft``, ``hop_length``, ``seconds``, ``sample_rate``, ``val_fraction``,
    ``split_seed``, ``num_workers``, ``cache_dir``, ``device``...
    """
    return make_media_dataset("crema-d", root, train_list, test_list, audio_dir, frames_dir,
                              kwargs.pop("classes", CREMA_D_CLASSES), num_frames=num_frames, **kwargs)
