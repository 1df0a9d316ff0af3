"""Kinetics-Sounds (Arandjelovic & Zisserman, 2017; 31-class version of OGM-GE/MLA).

::

    root/
      audio/<id>.wav                   the clip's soundtrack
      visual/<id>/*.jpg                extracted frames (3 are used per clip)
      train.csv, test.csv              rows "<id>,<label>"

``label`` is a class name (or an integer index). The class order is ``classes`` when
given (31 names; a label outside them is an error), otherwise the sorted set of labels
found in the two lists (in numeric order when every label is an integer, so ``2`` stays
before ``10``); pass ``classes`` to pin the order across machines, since a class absent
from both lists would otherwise shift the indices after it. Audio and
frames go through the same pipeline as CREMA-D (:mod:`mmenv.datasets.media`), with
``num_frames=3``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from .base import MultimodalDataset
from .media import make_media_dataset

__all__ = ["make_kinetics_sounds", "KINETICS_SOUNDS_NUM_CLASSES"]

KINETICS_SOUNDS_NUM_CLASSES = 31


def make_kinetics_sounds(root: str | os.PathLike, train_list: str = "train.csv", test_list: str = "test.csv",
                         audio_dir: str = "audio", frames_dir: str = "visual", num_frames: int = 3,
                         classes: Sequence[str] | None = None, **kwargs) -> MultimodalDataset:
    """Load Kinetics-Sounds from ``root`` (modalities ``audio`` and ``visual``).

    ``kwargs`` go to :func:`mmenv.datasets.media.make_media_dataset`.
    """
    ds = make_media_dataset("kinetics-sounds", root, train_list, test_list, audio_dir, frames_dir, classes,
                            num_frames=num_frames, **kwargs)
    if ds.num_classes != KINETICS_SOUNDS_NUM_CLASSES:
        ds.info["note"] = (f"{ds.num_classes} classes found; the published Kinetics-Sounds split has "
                           f"{KINETICS_SOUNDS_NUM_CLASSES}")
    return ds
