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

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..errors import MMEnvError

__all__ = ["ModalitySpec", "Split", "TensorSplit", "MultimodalDataset", "DatasetError", "stratified_holdout",
           "read_text_file", "data_fingerprint", "data_sources", "describe_sources", "FINGERPRINT_ROWS",
           "FINGERPRINT_SEED", "FINGERPRINT_VERSION", "FINGERPRINT_BYTES", "sampled_rows", "fingerprints_differ"]


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

    def to(self, device: torch.device | str) -> Split:  # pragma: no cover - overridden
        return self

    def fingerprint_parts(self) -> Iterator[bytes]:
        """Bytes that stand for this split's contents beyond its labels (:func:`data_fingerprint`).

        Never paths: a copy of the data in another folder must give the same bytes. The
        base class yields nothing, so a split of your own is fingerprinted by its length
        and labels only unless it overrides this (hash what its rows are made of: its
        files with :func:`mmenv.datasets.content_hash.file_digest`, or a sample of rows).
        """
        return iter(())

    def source_files(self) -> list[Path]:
        """The files this split reads its rows from (named in error messages); none in memory."""
        return []


def _as_feature_tensor(x: object, where: str) -> Tensor:
    """A modality's rows as a float tensor: float types become float32 and int / uint8 / bool
    features are cast to float32 (an encoder computes in float); anything else is refused."""
    if not isinstance(x, Tensor):
        arr = np.asarray(x)
        if arr.dtype.kind not in "biuf":
            raise DatasetError(f"{where} has dtype {arr.dtype}; features must be numbers (float, int or bool)")
        x = torch.from_numpy(np.ascontiguousarray(arr))
    if x.dtype.is_complex:
        raise DatasetError(f"{where} has dtype {x.dtype}; features must be real numbers (float, int or bool)")
    return x.float()


def _as_label_tensor(labels: object, where: str) -> Tensor:
    if isinstance(labels, Tensor):
        return labels
    arr = np.asarray(labels)
    if arr.dtype.kind not in "biuf":
        raise DatasetError(f"{where}: labels have dtype {arr.dtype}; labels must be integers in [0, C)")
    return torch.from_numpy(np.ascontiguousarray(arr))


class TensorSplit(Split):
    """A split held as one tensor per modality (all on the same device)."""

    def __init__(self, inputs: Mapping[str, Tensor], labels: Tensor, name: str = "split") -> None:
        if not inputs:
            raise DatasetError(f"{name}: no modalities given")
        labels = _as_label_tensor(labels, name)
        if labels.ndim != 1:
            raise DatasetError(f"{name}: labels must be 1-D, got shape {tuple(labels.shape)}")
        if labels.dtype.is_floating_point:
            if not torch.all(labels == labels.round()):
                raise DatasetError(f"{name}: labels must be integers, got non-integer floats")
        self.labels = labels.long()
        self.inputs: dict[str, Tensor] = {}
        for m, x in inputs.items():
            x = _as_feature_tensor(x, f"{name}: modality {m!r}")
            if x.ndim == 0:
                raise DatasetError(f"{name}: modality {m!r} is a scalar; give one row per sample ([N, ...])")
            if x.shape[0] != self.labels.shape[0]:
                raise DatasetError(
                    f"{name}: modality {m!r} has {x.shape[0]} samples but there are "
                    f"{self.labels.shape[0]} labels; every modality needs one row per label"
                )
            if x.ndim == 1:  # one number per sample: a modality of width 1
                x = x.unsqueeze(1)
            if not torch.isfinite(x).all():
                row = int(torch.nonzero(~torch.isfinite(x.reshape(len(x), -1)).all(dim=1))[0, 0])
                raise DatasetError(f"{name}: modality {m!r} contains NaN or inf values (first in row {row})")
            self.inputs[m] = x
        self.modalities = tuple(self.inputs)
        self.name = name

    def gather(self, modality: str, indices: Tensor) -> Tensor:
        return self.inputs[modality].index_select(0, indices)

    def to(self, device: torch.device | str) -> TensorSplit:
        return TensorSplit({m: x.to(device) for m, x in self.inputs.items()}, self.labels.to(device), self.name)

    def fingerprint_parts(self) -> Iterator[bytes]:
        """Each modality's shape and dtype and the :func:`sampled_rows` of it (as float32 bytes)."""
        for m in self.modalities:
            x = self.inputs[m].detach()
            yield repr((m, tuple(x.shape), str(x.dtype))).encode()
            idx = sampled_rows(len(self), row_bytes=4 * (x[0].numel() if len(x) else 1))
            if x.device.type == "cpu":   # NumPy indexing: no torch thread pool for 64 rows
                rows = np.ascontiguousarray(x.numpy()[idx], dtype=np.float32)
            else:
                rows = x.index_select(0, torch.from_numpy(idx).to(x.device)).to("cpu", torch.float32).numpy()
            yield np.ascontiguousarray(rows).tobytes()


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

    def to(self, device: torch.device | str) -> MultimodalDataset:
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


#: Rows of each modality hashed into a data fingerprint (a seeded sample, the same for every call).
FINGERPRINT_ROWS = 32
#: Seed of that sample (fixed: the fingerprint of unchanged data never changes).
FINGERPRINT_SEED = 0
#: Prefix of fingerprints of contents (this scheme). Fingerprints without it were written by
#: versions that hashed file paths and 16 evenly spaced rows; they are not compared.
FINGERPRINT_VERSION = "c1-"


#: Bytes of sampled rows hashed per modality and split at most (fewer rows when rows are large).
FINGERPRINT_BYTES = 1 << 20


def sampled_rows(n: int, k: int = FINGERPRINT_ROWS, row_bytes: int = 0) -> np.ndarray:
    """``min(n, k)`` distinct row indices out of ``n``, sorted, drawn with :data:`FINGERPRINT_SEED`;
    fewer (at least one) when ``k`` rows of ``row_bytes`` would exceed :data:`FINGERPRINT_BYTES`."""
    if row_bytes > 0:
        k = max(1, min(k, FINGERPRINT_BYTES // row_bytes))
    if n <= k:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(FINGERPRINT_SEED)
    return np.sort(rng.choice(n, size=k, replace=False)).astype(np.int64)


def data_fingerprint(dataset: MultimodalDataset) -> str:
    """A short hash of one data set's **contents**, location-independent and cheap.

    ``"c1-"`` (:data:`FINGERPRINT_VERSION`) and 16 hex digits of a SHA-256 of the name, the
    number of classes, each modality's name / shape / kind, and per split: its length, **all** labels (one small in-memory tensor: a reshuffle or another
    seed of the same generator changes it) and what :meth:`Split.fingerprint_parts`
    yields: for in-memory splits each modality's shape, dtype and :data:`FINGERPRINT_ROWS`
    seeded sampled rows (fewer when they would exceed :data:`FINGERPRINT_BYTES`); for HDF5 splits the file's bytes
    (:func:`mmenv.datasets.content_hash.file_digest`: whole up to 4 MiB, else header, tail
    and sampled chunks), the selected rows and a sample of decoded rows; for media splits
    every clip's id and the bytes of its WAV and frame files. Paths are never hashed: an
    identical copy of the data in another folder has the same fingerprint, and a file
    rewritten in place gets another one.

    Not a cryptographic guarantee (in-memory data differing only in unsampled rows look the
    same), but it costs milliseconds for in-memory data and one read of small files (cached
    per process by inode and change time) and catches the mistake it is for: resuming a
    checkpoint or reusing a finished run on other data. A file that cannot be read is a
    :class:`DatasetError` naming the split.
    """
    h = hashlib.sha256()   # OpenSSL's: hardware-accelerated on current CPUs

    def add(*parts: object) -> None:
        for part in parts:
            h.update(repr(part).encode())
            h.update(b"\x00")

    add(dataset.name, dataset.num_classes, [(m.name, tuple(m.shape), m.kind) for m in dataset.modalities])
    for split_name in ("train", "val", "test"):
        split = getattr(dataset, split_name)
        if split is None:
            add(split_name, None)
            continue
        labels = split.labels.detach().to("cpu", torch.int64).contiguous()
        add(split_name, len(split))
        h.update(labels.numpy().tobytes())
        try:
            for part in split.fingerprint_parts():
                h.update(len(part).to_bytes(8, "little"))
                h.update(part)
        except OSError as err:
            raise DatasetError(f"{getattr(split, 'name', split_name)}: cannot read {err.filename or 'a file'} "
                               f"to fingerprint the data: {err.strerror or err}") from None
    return FINGERPRINT_VERSION + h.hexdigest()[:16]


def fingerprints_differ(saved: str | None, current: str) -> bool:
    """Whether a recorded fingerprint ``saved`` tells of other data than ``current``.

    ``None`` (recorded before fingerprints existed) and fingerprints of the earlier scheme
    (no :data:`FINGERPRINT_VERSION` prefix: they hashed file paths) cannot be compared with
    this one and count as the same data, as a checkpoint without a fingerprint always did.
    """
    if not isinstance(saved, str) or not saved.startswith(FINGERPRINT_VERSION):
        return False
    return saved != current


def data_sources(dataset: MultimodalDataset) -> list[Path]:
    """Every file the data set's splits read rows from (empty for in-memory data), in order, once."""
    seen: dict[Path, None] = {}
    for split_name in ("train", "val", "test"):
        split = getattr(dataset, split_name)
        if split is not None:
            seen.update(dict.fromkeys(split.source_files()))
    return list(seen)


def describe_sources(dataset: MultimodalDataset, limit: int = 3) -> str:
    """``"data set 'x'"`` plus the files it reads: all of them up to ``limit``, else their count and
    common folder (for messages about changed data)."""
    files = data_sources(dataset)
    text = f"data set {dataset.name!r}"
    if not files:
        return f"{text} (in memory)"
    if len(files) <= limit:
        return f"{text} (files {', '.join(str(f) for f in files)})"
    try:
        root = Path(os.path.commonpath([str(f) for f in files]))
    except ValueError:  # different drives
        return f"{text} ({len(files)} files)"
    return f"{text} ({len(files)} files under {root})"


def read_text_file(path: str | os.PathLike, what: str = "label file", encoding: str = "utf-8-sig") -> str:
    """The text of ``path``, or :class:`DatasetError` naming the file when it is not readable text
    (a binary file, another encoding, a folder...). ``utf-8-sig`` drops a spreadsheet's
    byte-order mark. NUL bytes are refused too (``csv`` would fail on them later)."""
    path = Path(path)
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as err:
        raise DatasetError(f"{what} {path} is not UTF-8 text (byte {err.start}: {err.reason}); is it a binary "
                           "file? Save it as UTF-8 CSV/text") from None
    except OSError as err:
        raise DatasetError(f"cannot read {what} {path}: {err}") from None
    if "\x00" in text:
        raise DatasetError(f"{what} {path} holds NUL bytes; is it a binary file? Save it as UTF-8 CSV/text")
    return text


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
