"""The dataset protocol: what the environment needs from a multimodal data set.

A data set has named modalities, ``num_classes`` classes and three splits
(``train``, ``val``, ``test``). A split knows its labels (always an in-memory
``LongTensor``) and can *gather* a batch of one modality for a tensor of sample
indices. Because the environment samples every modality independently (DUS gives
each modality its own batch size), gathering is per modality.

Two kinds of split exist:

* :class:`TensorSplit` keeps every modality as one tensor on the training device,
  so gathering a batch is one indexing operation (no per-sample Python, no host
  synchronisation). Feature data sets (synthetic, UCI, precomputed features) use it.
* Raw-media splits (audio files, video frames) implement :meth:`Split.gather` by
  decoding files; see :mod:`mmenv.datasets.media`.

Every modality also carries a :class:`ModalitySpec` (its input shape and kind) so a
learner can build a suitable encoder without knowing the data set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import MMEnvError

__all__ = ["ModalitySpec", "Split", "TensorSplit", "MultimodalDataset", "DatasetError", "stratified_holdout"]


class DatasetError(MMEnvError, ValueError):
    """A data set is malformed (mismatched lengths, labels out of range, missing files...)."""


@dataclass(frozen=True)
class ModalitySpec:
    """Static description of one modality's input.

    ``kind`` picks the default encoder: ``"features"`` (a flat vector, MLP),
    ``"spectrogram"`` (``1 x F x T``, ResNet-18), ``"frames"`` (``T x 3 x H x W``,
    ResNet-18 with frames pooled over time), ``"sequence"`` (``T x (F + 1)``: padded frames
    plus a mask channel, see :mod:`mmenv.datasets.sequences`; masked 1-D convolutions) or
    ``"image"`` (``C x H x W`` small images, a small CNN).
    """

    name: str
    shape: tuple[int, ...]
    kind: str = "features"

    @property
    def dim(self) -> int:
        out = 1
        for s in self.shape:
            out *= int(s)
        return out


class Split:
    """One split of a multimodal data set (abstract).

    Subclasses set ``labels`` (``LongTensor [N]``) and implement :meth:`gather`.
    """

    labels: Tensor
    modalities: tuple[str, ...]
    name: str  # shown in error messages, e.g. "synthetic/train"

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def gather(self, modality: str, indices: Tensor) -> Tensor:  # pragma: no cover - abstract
        """Return the inputs of ``modality`` for ``indices`` (on the training device)."""
        raise NotImplementedError

    def reseed(self, seed: int) -> None:
        """Restart the split's own randomness (e.g. training augmentation) for an episode.

        The environment calls it on the train split at every ``reset`` with the episode
        seed. Splits without randomness (tensor splits) ignore it.
        """

    def iter_batches(self, batch_size: int) -> Iterator[tuple[dict[str, Tensor], Tensor]]:
        """Yield ``(inputs, labels)`` over the whole split in order (for evaluation)."""
        n = len(self)
        device = self.labels.device
        for start in range(0, n, batch_size):
            idx = torch.arange(start, min(start + batch_size, n), device=device)
            yield {m: self.gather(m, idx) for m in self.modalities}, self.labels[idx]

    def to(self, device: torch.device | str) -> "Split":  # pragma: no cover - overridden
        return self


class TensorSplit(Split):
    """A split held as one tensor per modality (all on the same device)."""

    def __init__(self, inputs: Mapping[str, Tensor], labels: Tensor, name: str = "split") -> None:
        if not inputs:
            raise DatasetError(f"{name}: no modalities given")
        labels = torch.as_tensor(labels)
        if labels.ndim != 1:
            raise DatasetError(f"{name}: labels must be 1-D, got shape {tuple(labels.shape)}")
        if labels.dtype.is_floating_point:
            if not torch.all(labels == labels.round()):
                raise DatasetError(f"{name}: labels must be integers, got non-integer floats")
        self.labels = labels.long()
        self.inputs: dict[str, Tensor] = {}
        for m, x in inputs.items():
            x = torch.as_tensor(x)
            if x.ndim == 0:
                raise DatasetError(f"{name}: modality {m!r} is a scalar; give one row per sample ([N, ...])")
            if x.shape[0] != self.labels.shape[0]:
                raise DatasetError(
                    f"{name}: modality {m!r} has {x.shape[0]} samples but there are "
                    f"{self.labels.shape[0]} labels; every modality needs one row per label"
                )
            if x.dtype.is_floating_point:
                x = x.float()
                if not torch.isfinite(x).all():
                    raise DatasetError(f"{name}: modality {m!r} contains NaN or inf values")
            self.inputs[m] = x
        self.modalities = tuple(self.inputs)
        self.name = name

    def gather(self, modality: str, indices: Tensor) -> Tensor:
        return self.inputs[modality].index_select(0, indices)

    def to(self, device: torch.device | str) -> "TensorSplit":
        return TensorSplit({m: x.to(device) for m, x in self.inputs.items()}, self.labels.to(device), self.name)


@dataclass
class MultimodalDataset:
    """A multimodal classification data set with train/val/test splits.

    Attributes:
        name: short name (e.g. ``"synthetic"``).
        modalities: the modality specs, in the order used everywhere (observation,
            action, ``info["batch_sizes"]``).
        num_classes: number of classes C; labels lie in ``[0, C)``.
        train, val, test: the splits. ``val`` may be ``None``; then a reward that
            needs validation accuracy raises a clear error when the environment is built.
        class_names: optional human-readable class names.
    """

    name: str
    modalities: Sequence[ModalitySpec]
    num_classes: int
    train: Split
    test: Split
    val: Split | None = None
    class_names: Sequence[str] | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.modalities = tuple(self.modalities)
        names = [s.name for s in self.modalities]
        if len(names) < 2:
            raise DatasetError(f"{self.name}: a multimodal data set needs at least 2 modalities, got {names}")
        if len(set(names)) != len(names):
            raise DatasetError(f"{self.name}: duplicate modality names {names}")
        if self.num_classes < 2:
            raise DatasetError(f"{self.name}: num_classes must be >= 2, got {self.num_classes}")
        for split_name in ("train", "val", "test"):
            split = getattr(self, split_name)
            if split is None:
                continue
            if set(split.modalities) != set(names):
                raise DatasetError(
                    f"{self.name}/{split_name}: modalities {list(split.modalities)} differ from {names}"
                )
            split.modalities = tuple(names)
            if len(split) == 0:
                raise DatasetError(f"{self.name}/{split_name}: split is empty")
            lo, hi = int(split.labels.min()), int(split.labels.max())
            if lo < 0 or hi >= self.num_classes:
                raise DatasetError(
                    f"{self.name}/{split_name}: labels must lie in [0, {self.num_classes}), "
                    f"found values from {lo} to {hi}; remap the labels or raise num_classes"
                )

    @property
    def modality_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.modalities)

    def to(self, device: torch.device | str) -> "MultimodalDataset":
        """Move every split to ``device`` (tensor splits move their data; media splits
        decode straight onto it)."""
        return MultimodalDataset(
            name=self.name,
            modalities=self.modalities,
            num_classes=self.num_classes,
            train=self.train.to(device),
            test=self.test.to(device),
            val=None if self.val is None else self.val.to(device),
            class_names=self.class_names,
            info=dict(self.info),
        )


def tensor_dataset(
    name: str,
    train: tuple[Mapping[str, Tensor], Tensor],
    test: tuple[Mapping[str, Tensor], Tensor],
    val: tuple[Mapping[str, Tensor], Tensor] | None = None,
    num_classes: int | None = None,
    kinds: Mapping[str, str] | None = None,
    class_names: Sequence[str] | None = None,
) -> MultimodalDataset:
    """Build an in-memory :class:`MultimodalDataset` from ``(inputs, labels)`` pairs."""
    tr = TensorSplit(*train, name=f"{name}/train")
    te = TensorSplit(*test, name=f"{name}/test")
    va = None if val is None else TensorSplit(*val, name=f"{name}/val")
    for split in (tr, te, va):
        if split is not None and len(split) == 0:
            raise DatasetError(f"{split.name}: split is empty")
    if num_classes is None:
        num_classes = int(max(int(s.labels.max()) for s in (tr, te, va) if s is not None)) + 1
    kinds = dict(kinds or {})
    specs = [ModalitySpec(m, tuple(x.shape[1:]), kinds.get(m, "features")) for m, x in tr.inputs.items()]
    for split in (te, va):
        if split is None:
            continue
        for spec in specs:
            if spec.name in split.inputs and tuple(split.inputs[spec.name].shape[1:]) != spec.shape:
                raise DatasetError(
                    f"{split.name}: modality {spec.name!r} has shape {tuple(split.inputs[spec.name].shape[1:])}, "
                    f"train has {spec.shape}"
                )
    return MultimodalDataset(name, specs, num_classes, tr, te, va, class_names)


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (keep, held_out): ``round(fraction * n_c)`` of each class held out."""
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        held.append(idx[: int(round(fraction * len(idx)))])
    held_idx = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    keep = np.setdiff1d(np.arange(len(labels)), held_idx)
    return keep, held_idx
