"""UCI Multiple Features (mfeat): a real multi-view data set shipped with the package.

2,000 handwritten digits (10 classes, 200 each) described by six views:

=====  =====  ==========================================
view   width  what it is
=====  =====  ==========================================
fou       76  Fourier coefficients of the contour
fac      216  profile correlations
kar       64  Karhunen-Loeve coefficients
pix      240  pixel averages in 2 x 3 windows
zer       47  Zernike moments
mor        6  morphological features
=====  =====  ==========================================

Source and licence: Duin, R. (1998). Multiple Features [Dataset]. UCI Machine Learning
Repository. https://doi.org/10.24432/C5HC70 — CC BY 4.0; see
``mmenv/datasets/data/UCI_MFEAT_LICENSE.txt``.

Split (fixed, disjoint, stratified): within each class the 200 samples are permuted by
``numpy.random.default_rng(split_seed)`` (``split_seed=0`` by default) and the first
120 go to train, the next 40 to val and the last 40 to test: 1,200 / 400 / 400. Every
view is standardised with the *train* mean and standard deviation.

Default views: ``("fou", "mor")``. Measured with the baseline learner (MLP encoders,
10 epochs, uniform shares, 2 seeds): every pair that contains fac, kar or pix reaches
96-99% fused test accuracy, which leaves a sampling policy nothing to win. fou (~83%
alone) with mor (6 morphological features, ~72% alone) fuses to ~87%: a clear strong/weak
pair, 10+ points below what the digits allow, and fused accuracy responds to a fixed share
(85.4% / 88.0% / 86.6% for a fou share of 0.2 / 0.5 / 0.8, 3 seeds). ``docs/datasets.md``
has the full table.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

import numpy as np
import torch

from .base import DatasetError, MultimodalDataset, tensor_dataset

__all__ = ["make_uci_mfeat", "UCI_VIEWS", "load_uci_mfeat_arrays", "uci_mfeat_split_indices"]

#: View names and widths, in the order of the original files.
UCI_VIEWS: dict[str, int] = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}
DEFAULT_VIEWS: tuple[str, ...] = ("fou", "mor")
CITATION = (
    "Duin, R. (1998). Multiple Features [Dataset]. UCI Machine Learning Repository. "
    "https://doi.org/10.24432/C5HC70 (CC BY 4.0)"
)


def load_uci_mfeat_arrays() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """All six views as float32 arrays ``[2000, width]`` and the labels ``int64 [2000]``."""
    path = resources.files("mmenv.datasets").joinpath("data/uci_mfeat.npz")
    with resources.as_file(path) as p, np.load(p) as data:
        views = {v: data[v].astype(np.float32) for v in UCI_VIEWS}
        labels = data["labels"].astype(np.int64)
    return views, labels


def uci_mfeat_split_indices(
    labels: np.ndarray, split_seed: int = 0, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified, disjoint train/val/test indices (sorted), a pure function of ``split_seed``."""
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise DatasetError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    rng = np.random.default_rng(split_seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_tr = int(round(fractions[0] * len(idx)))
        n_va = int(round(fractions[1] * len(idx)))
        parts[0].append(idx[:n_tr])
        parts[1].append(idx[n_tr:n_tr + n_va])
        parts[2].append(idx[n_tr + n_va:])
    tr, va, te = (np.sort(np.concatenate(p)) for p in parts)
    return tr, va, te


def make_uci_mfeat(
    views: Sequence[str] = DEFAULT_VIEWS,
    split_seed: int = 0,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    standardize: bool = True,
) -> MultimodalDataset:
    """Build UCI Multiple Features with the chosen ``views`` (2 to 6 of fou fac kar pix zer mor).

    Args:
        views: view names, in the modality order wanted; default ``("fou", "mor")``
            (a pair that leaves headroom, see the module docstring).
        split_seed: seed of the stratified split (default 0 is *the* documented split).
        fractions: train/val/test fractions per class (default 0.6/0.2/0.2: 120/40/40).
        standardize: standardise each feature with train mean and std (constant
            features get std 1).
    """
    if isinstance(views, str):  # list("fou") would silently become ["f", "o", "u"]
        raise DatasetError(f"views must be a list of view names such as ['fou', 'mor'], got {views!r}; "
                           f"valid names: {list(UCI_VIEWS)}")
    views = list(views)
    unknown = [v for v in views if v not in UCI_VIEWS]
    if unknown:
        raise DatasetError(f"unknown UCI mfeat view(s) {unknown}; valid names: {list(UCI_VIEWS)}")
    if len(views) < 2 or len(set(views)) != len(views):
        raise DatasetError(f"choose 2 to 6 distinct views of {list(UCI_VIEWS)}, got {views}")
    data, labels = load_uci_mfeat_arrays()
    tr, va, te = uci_mfeat_split_indices(labels, split_seed, fractions)

    def part(idx: np.ndarray):
        return {v: torch.from_numpy(data[v][idx]) for v in views}, torch.from_numpy(labels[idx])

    train, val, test = part(tr), part(va), part(te)
    if standardize:
        for v in views:
            mean = train[0][v].mean(0, keepdim=True)
            std = train[0][v].std(0, keepdim=True)
            std = torch.where(std > 0, std, torch.ones_like(std))
            for split in (train, val, test):
                split[0][v] = (split[0][v] - mean) / std
    ds = tensor_dataset(
        "uci-mfeat", train, test, val if len(va) else None, num_classes=10,
        class_names=[str(d) for d in range(10)],
    )
    ds.info.update(views=tuple(views), split_seed=split_seed, fractions=tuple(fractions), citation=CITATION)
    return ds
