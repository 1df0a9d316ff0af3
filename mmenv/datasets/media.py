"""Raw audio-visual media data sets: WAV -> log spectrogram, JPEG frames -> normalised tensors.

One builder, :func:`make_media_dataset`, serves every audio + frames data set (CREMA-D,
Kinetics-Sounds, a user's own clips). A data set is a list of clips, each with a label,
a WAV file and a folder of JPEG frames. The jobs live in their own modules:

* :mod:`mmenv.datasets.wav`: WAV reading and the log spectrogram (``AudioConfig``);
* :mod:`mmenv.datasets.frames`: image decoding, RandomResizedCrop, ImageNet normalisation
  (``FrameConfig``);
* :mod:`mmenv.datasets.clip_lists`: ``<clip>,<label>`` lists resolved to :class:`MediaClip` s;
* :mod:`mmenv.datasets.media_split`: :class:`MediaSplit`, decoding on demand (caching,
  augmentation seeds, worker processes);
* this module: the builder (lists -> train / validation / test splits).

Their public names stay importable from here (``from mmenv.datasets.media import read_wav``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import InvalidArgumentError
from .base import DatasetError, ModalitySpec, MultimodalDataset, stratified_holdout
from .clip_lists import MediaClip, build_clips, check_disjoint_lists, read_label_list, sorted_labels
from .frames import IMAGENET_MEAN, IMAGENET_STD, FrameConfig, load_rgb, random_resized_crop_box
from .media_split import MediaSplit
from .wav import AudioConfig, log_spectrogram, read_wav, resample_linear

__all__ = [
    "AudioConfig",
    "FrameConfig",
    "MediaClip",
    "MediaSplit",
    "read_wav",
    "resample_linear",
    "log_spectrogram",
    "load_rgb",
    "random_resized_crop_box",
    "read_label_list",
    "stratified_holdout",
    "sorted_labels",
    "check_disjoint_lists",
    "build_clips",
    "make_media_dataset",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]


def make_media_dataset(
    name: str,
    root: str | os.PathLike,
    train_list: str,
    test_list: str,
    audio_dir: str | None,
    frames_dir: str | None,
    classes: Sequence[str] | None,
    audio_name: str = "audio",
    visual_name: str = "visual",
    audio_ext: str = ".wav",
    sample_rate: int = 22050,
    seconds: float = 3.0,
    n_fft: int = 512,
    hop_length: int = 353,
    frame_size: int = 224,
    num_frames: int = 1,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    num_workers: int = 0,
    cache_dir: str | os.PathLike | None = None,
    memory_cache: bool = True,
    device: str | torch.device = "cpu",
) -> MultimodalDataset:
    """Build an audio-visual data set from a folder of WAVs, frame folders and two label lists.

    Args:
        name: the data set's name.
        root: the data folder; ``train_list``/``test_list`` (``<clip>,<label>`` rows),
            ``audio_dir`` (``<clip><audio_ext>``) and ``frames_dir`` (``<clip>/*.jpg``)
            are relative to it.
        classes: the class order (labels outside it are errors); ``None`` takes the
            sorted set of labels found in both lists (numerically sorted when every label
            is an integer, see :func:`sorted_labels`).
        audio_name, visual_name: modality names.
        sample_rate, seconds, n_fft, hop_length: the spectrogram (:class:`AudioConfig`).
        frame_size, num_frames: the frames (:class:`FrameConfig`).
        val_fraction, split_seed: validation is ``val_fraction`` of each class of the
            train list, chosen by ``split_seed`` (fixed), decoded with the test transforms.
        num_workers: decoder processes per split (0: decode in the calling process).
        cache_dir: spectrogram disk cache (``None``: none); ``memory_cache``: keep them in
            memory too.
        device: where batches and labels are put (``DUSEnv`` moves them to its device).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{name}: data folder {root} does not exist")
    if not 0.0 <= val_fraction < 1.0:
        raise InvalidArgumentError(f"val_fraction must lie in [0, 1), got {val_fraction}")
    train_path, test_path = root / train_list, root / test_list
    train_rows = read_label_list(train_path, classes)
    test_rows = read_label_list(test_path, classes)
    check_disjoint_lists(train_rows, train_path, test_rows, test_path)
    if classes is None:
        classes = sorted_labels({r[1] for r in train_rows} | {r[1] for r in test_rows})
    class_index = {c: i for i, c in enumerate(classes)}
    dirs = {}
    for key, sub in (("audio", audio_dir), ("visual", frames_dir)):
        if sub is None:
            continue
        d = root / sub
        if not d.is_dir():
            raise DatasetError(f"{name}: {key} folder {d} does not exist (expected layout: see docs/datasets.md)")
        dirs[key] = d
    train_clips = build_clips(train_rows, train_path, class_index, dirs.get("audio"), dirs.get("visual"), audio_ext)
    test_clips = build_clips(test_rows, test_path, class_index, dirs.get("audio"), dirs.get("visual"), audio_ext)
    roles = {k: v for k, v in (("audio", audio_name), ("visual", visual_name)) if k in dirs}
    audio = AudioConfig(sample_rate, seconds, n_fft, hop_length)
    frames = FrameConfig(frame_size, num_frames)
    labels = np.array([c.label for c in train_clips])
    keep, held = stratified_holdout(labels, val_fraction, split_seed)

    def split(clips, train, tag):
        return MediaSplit(clips, audio, frames, train, roles, device, num_workers, cache_dir, split_seed,
                          f"{name}/{tag}", memory_cache)

    tr = split([train_clips[i] for i in keep], True, "train")
    va = split([train_clips[i] for i in held], False, "val") if len(held) else None
    te = split(test_clips, False, "test")
    specs = []
    if "audio" in roles:
        specs.append(ModalitySpec(audio_name, audio.shape, "spectrogram"))
    if "visual" in roles:
        specs.append(ModalitySpec(visual_name, frames.shape, "frames"))
    ds = MultimodalDataset(name, specs, len(classes), tr, te, va, list(classes))
    ds.info.update(root=str(root), val_fraction=val_fraction, split_seed=split_seed, audio=audio, frames=frames)
    return ds
