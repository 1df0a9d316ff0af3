"""Precomputed features: bring any data set as one file per split.

File format (documented in ``docs/datasets.md``):

* **NumPy** ``.npz`` (``numpy.savez``/``savez_compressed``): one array per modality,
  ``[N, ...]`` (any trailing shape, float or int), plus ``labels`` (``[N]`` integers in
  ``[0, C)``). An optional ``class_names`` array of strings names the classes. Every
  other key is a modality, in the order stored (or the order of ``modalities=``).
  Loaded into device tensors: a :class:`~mmenv.datasets.base.TensorSplit`.
* **HDF5** ``.h5``/``.hdf5`` (needs ``h5py``): the same names as top-level datasets
  (``class_names`` may also be a file attribute). Read *lazily*: only the labels are
  loaded; a batch is read from disk when gathered (:class:`HDF5Split`), for features that
  do not fit in memory. ``in_memory=True`` loads it like an ``.npz``.

A data set is a folder ``root`` with ``train.*``, ``test.*`` and optionally ``val.*``
(``.npz``, ``.h5`` or ``.hdf5``), or explicit ``train=``/``test=``/``val=`` paths.
Without a val file, ``val_fraction`` of each train class is held out (fixed by
``split_seed``). Any number (>= 2) of modalities works.

Also here: :func:`load_modality_arrays`, the helper the image-text and NVGesture loaders
use to read per-modality ``.npy`` files aligned with their label files.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..atomic import atomic_write
from ..errors import InvalidArgumentError
from ..validation import is_real
from .base import DatasetError, ModalitySpec, MultimodalDataset, Split, TensorSplit, sampled_rows, stratified_holdout
from .content_hash import file_digest

__all__ = ["make_features", "HDF5Split", "load_feature_file", "load_modality_arrays", "save_features"]

RESERVED = ("labels", "class_names")
SUFFIXES = (".npz", ".h5", ".hdf5")


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is in the test environment
        raise ImportError("reading HDF5 feature files needs h5py: pip install 'mmenv[hdf5]'") from None
    return h5py


def _check_labels(labels: np.ndarray, path: Path) -> np.ndarray:
    if labels.ndim != 1:
        raise DatasetError(f"{path}: 'labels' must be 1-D, got shape {labels.shape}")
    if labels.dtype.kind == "f":
        if not np.all(labels == np.round(labels)):
            raise DatasetError(f"{path}: 'labels' must be integers, got non-integer floats")
    elif labels.dtype.kind not in "iu":
        raise DatasetError(f"{path}: 'labels' must be integers, got dtype {labels.dtype}")
    return labels.astype(np.int64)


def _pick_modalities(keys: Sequence[str], modalities: Sequence[str] | None, path: Path) -> list[str]:
    available = [k for k in keys if k not in RESERVED]
    if modalities is None:
        return available
    missing = [m for m in modalities if m not in available]
    if missing:
        raise DatasetError(f"{path}: modalities {missing} not in the file; it holds {available}")
    return list(modalities)


def load_feature_file(path: str | os.PathLike, modalities: Sequence[str] | None = None
                      ) -> tuple[dict[str, np.ndarray], np.ndarray, list[str] | None]:
    """Read a whole ``.npz``/``.h5`` feature file: ``(arrays, labels, class_names)``."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"feature file not found: {path}")
    if path.suffix == ".npz":
        try:
            loaded = np.load(path, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise DatasetError(f"{path}: holds a single array (.npy format), not an .npz archive of named arrays; "
                                   "save it with numpy.savez(path, labels=..., <modality>=..., ...)")
            with loaded as data:
                keys = list(data.files)
                if "labels" not in keys:
                    raise DatasetError(f"{path}: no 'labels' array; the file holds {keys}")
                names = _pick_modalities(keys, modalities, path)
                arrays = {m: data[m] for m in names}
                labels = data["labels"]
                class_names = [str(c) for c in data["class_names"]] if "class_names" in keys else None
        except DatasetError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as err:
            raise DatasetError(f"cannot read feature file {path}: {err}") from None
    elif path.suffix in (".h5", ".hdf5"):
        h5py = _h5py()
        try:
            with h5py.File(path, "r") as f:
                keys = list(f.keys())
                if "labels" not in keys:
                    raise DatasetError(f"{path}: no 'labels' dataset; the file holds {keys}")
                names = _pick_modalities(keys, modalities, path)
                for key in [*names, "labels"]:
                    _h5_dataset(f, key, path)
                arrays = {m: f[m][()] for m in names}
                labels = f["labels"][()]
                class_names = _h5_class_names(f)
        except DatasetError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DatasetError(f"cannot read feature file {path}: {err}") from None
    else:
        raise DatasetError(f"{path}: unknown feature file type; use one of {list(SUFFIXES)}")
    labels = _check_labels(np.asarray(labels), path)
    _check_lengths({m: a.shape for m, a in arrays.items()}, len(labels), path)
    for m, a in arrays.items():
        _check_dtype(m, a.dtype, path)
        _check_finite_rows(m, a, 0, path)
    return arrays, labels, class_names


def _h5_dataset(f: Any, key: str, path: Path) -> Any:
    """``f[key]`` if it is an HDF5 *dataset* (an array), else :class:`DatasetError`."""
    obj = f[key]
    if not isinstance(obj, _h5py().Dataset):
        raise DatasetError(f"{path}: {key!r} is an HDF5 {type(obj).__name__.lower()}, not a dataset (array); "
                           f"store each modality and 'labels' as a top-level dataset")
    return obj


def _check_dtype(modality: str, dtype: np.dtype, path: Path) -> None:
    """Features must be real numbers (bool / int / uint / float; cast to float32 when used)."""
    if np.dtype(dtype).kind not in "biuf":
        raise DatasetError(f"{path}: modality {modality!r} has dtype {dtype}; features must be numbers "
                           "(float, int or bool)")


def _check_finite_rows(modality: str, block: np.ndarray, first_row: int, path: Path) -> None:
    """Refuse NaN / inf in ``block`` (rows ``first_row...`` of the file), naming the first bad row."""
    if block.dtype.kind != "f" or block.size == 0:
        return
    finite = np.isfinite(block.reshape(len(block), -1)).all(axis=1)
    if not finite.all():
        row = first_row + int(np.flatnonzero(~finite)[0])
        raise DatasetError(f"{path}: modality {modality!r} has NaN or inf values in row {row}; "
                           "clean or drop those rows")


#: Bytes of one modality read at a time when an HDF5 file read lazily is checked at build time.
H5_CHECK_CHUNK_BYTES = 64 * 2**20


def _check_h5_rows(f: Any, modalities: Sequence[str], path: Path) -> None:
    """Scan every modality of a lazily read HDF5 file once, in chunks, for dtype and NaN / inf.

    Done when the split is built (before anything trains), so a bad row is reported with
    the file and row, not later as the learner diverging.
    """
    for m in modalities:
        ds = f[m]
        _check_dtype(m, ds.dtype, path)
        if ds.dtype.kind != "f" or len(ds) == 0:
            continue
        row_bytes = max(1, int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize)
        step = max(1, H5_CHECK_CHUNK_BYTES // row_bytes)
        for start in range(0, len(ds), step):
            _check_finite_rows(m, ds[start:start + step], start, path)


def _h5_class_names(f) -> list[str] | None:
    raw = f["class_names"][()] if "class_names" in f else f.attrs.get("class_names")
    if raw is None:
        return None
    return [c.decode() if isinstance(c, bytes) else str(c) for c in raw]


def _check_lengths(shapes: Mapping[str, tuple[int, ...]], n: int, path: Path) -> None:
    if len(shapes) < 2:
        raise DatasetError(f"{path}: a multimodal feature file needs >= 2 modality arrays besides 'labels', "
                           f"got {list(shapes)}")
    for m, shape in shapes.items():
        if len(shape) == 0 or shape[0] != n:
            raise DatasetError(f"{path}: modality {m!r} has {shape[0] if shape else 0} rows but there are "
                               f"{n} labels; every modality needs one row per label")


def save_features(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], labels: np.ndarray,
                  class_names: Sequence[str] | None = None) -> Path:
    """Write a feature file in this module's format (``.npz`` or ``.h5`` by suffix).

    Missing parent folders are created; the file is written atomically (:mod:`mmenv.atomic`).
    """
    path = Path(path)
    if any(m in RESERVED for m in arrays):
        raise InvalidArgumentError(f"modality names {list(RESERVED)} are reserved")
    if path.suffix not in SUFFIXES:
        raise InvalidArgumentError(f"unknown feature file type {path.suffix!r}; use one of {list(SUFFIXES)}")
    if path.suffix == ".npz":
        extra = {} if class_names is None else {"class_names": np.asarray(class_names, dtype=str)}
        contents: dict[str, Any] = {**arrays, "labels": np.asarray(labels), **extra}
        atomic_write(path, lambda fh: np.savez(fh, **contents))
    elif path.suffix in (".h5", ".hdf5"):
        def write_h5(fh: Any) -> None:
            # h5py writes through the file object (it seeks; "wb" temp files are seekable).
            with _h5py().File(fh, "w") as f:
                for m, a in arrays.items():
                    f.create_dataset(m, data=a)
                f.create_dataset("labels", data=np.asarray(labels))
                if class_names is not None:
                    f.attrs["class_names"] = [str(c) for c in class_names]

        atomic_write(path, write_h5)
    else:
        raise InvalidArgumentError(f"unknown feature file type {path.suffix!r}; use one of {list(SUFFIXES)}")
    return path


class HDF5Split(Split):
    """A split read lazily from an HDF5 file: labels in memory, features gathered from disk.

    ``rows`` selects (and orders) the file rows that make up this split (used to carve a
    validation split from the train file). The file is opened on first use in each
    process, so the split can be moved to another device or process cheaply.
    """

    def __init__(self, path: str | os.PathLike, modalities: Sequence[str] | None = None,
                 rows: np.ndarray | None = None, device: torch.device | str = "cpu", name: str = "hdf5",
                 check_rows: bool = True) -> None:
        self.path = Path(path)
        self.name = name
        self.device = torch.device(device)
        h5py = _h5py()
        try:
            with h5py.File(self.path, "r") as f:
                keys = list(f.keys())
                if "labels" not in keys:
                    raise DatasetError(f"{self.path}: no 'labels' dataset; the file holds {keys}")
                self.modalities = tuple(_pick_modalities(keys, modalities, self.path))
                for key in [*self.modalities, "labels"]:
                    _h5_dataset(f, key, self.path)
                labels = _check_labels(np.asarray(f["labels"][()]), self.path)
                _check_lengths({m: f[m].shape for m in self.modalities}, len(labels), self.path)
                # A 1-D array is a modality of width 1 (gather adds the axis).
                self.shapes = {m: tuple(f[m].shape[1:]) or (1,) for m in self.modalities}
                self.class_names = _h5_class_names(f)
                if check_rows:  # copies (to(), subset()) of a checked split skip the scan
                    _check_h5_rows(f, self.modalities, self.path)
        except DatasetError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DatasetError(f"cannot read feature file {self.path}: {err}") from None
        self.rows = np.arange(len(labels)) if rows is None else np.asarray(rows, dtype=np.int64)
        self.labels = torch.from_numpy(labels[self.rows]).to(self.device)
        self._file = None

    def _handle(self):
        if self._file is None:
            self._file = _h5py().File(self.path, "r")
        return self._file

    def gather(self, modality: str, indices: Tensor) -> Tensor:
        rows = self.rows[indices.cpu().numpy()]  # reading from disk needs the indices on the host
        # h5py reads strictly increasing indices: read each row once, then restore the order.
        unique, inverse = np.unique(rows, return_inverse=True)
        block = self._handle()[modality][unique]
        x = torch.from_numpy(np.ascontiguousarray(block[inverse])).float()  # int / bool features: float, as in memory
        if x.ndim == 1:
            x = x.unsqueeze(1)
        return x.to(self.device, non_blocking=True)

    def to(self, device: torch.device | str) -> HDF5Split:
        return HDF5Split(self.path, self.modalities, self.rows, device, self.name, check_rows=False)

    def subset(self, rows: np.ndarray, name: str) -> HDF5Split:
        return HDF5Split(self.path, self.modalities, self.rows[rows], self.device, name, check_rows=False)

    def fingerprint_parts(self) -> Iterator[bytes]:
        """The file's bytes (:func:`~mmenv.datasets.content_hash.file_digest`), the file rows this
        split selects, and :data:`~mmenv.datasets.base.FINGERPRINT_ROWS` seeded sampled rows of each
        modality read through HDF5 (catches a rewrite of a large file outside the hashed chunks).
        Never the path: a copy elsewhere fingerprints the same."""
        yield file_digest(self.path).encode()
        yield np.ascontiguousarray(self.rows, dtype=np.int64).tobytes()
        try:
            with _h5py().File(self.path, "r") as f:
                for m in self.modalities:
                    idx = sampled_rows(len(self), row_bytes=4 * int(np.prod(f[m].shape[1:], dtype=np.int64)))
                    block = np.asarray(f[m][np.unique(self.rows[idx])], dtype=np.float32)
                    yield repr((m, tuple(f[m].shape[1:]), str(f[m].dtype))).encode()
                    yield block.tobytes()
        except (KeyError, ValueError, TypeError) as err:   # h5py's own errors for a broken file
            raise DatasetError(f"{self.name}: cannot read feature file {self.path} to fingerprint it: {err}") from None

    def source_files(self) -> list[Path]:
        return [self.path]

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = None
        return state


def _find(root: Path, stem: str) -> Path | None:
    for suffix in SUFFIXES:
        p = root / f"{stem}{suffix}"
        if p.is_file():
            return p
    return None


def make_features(
    root: str | os.PathLike | None = None,
    train: str | os.PathLike | None = None,
    test: str | os.PathLike | None = None,
    val: str | os.PathLike | None = None,
    modalities: Sequence[str] | None = None,
    kinds: Mapping[str, str] | None = None,
    in_memory: bool | None = None,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    num_classes: int | None = None,
    name: str = "features",
) -> MultimodalDataset:
    """Load a precomputed-feature data set (see the module docstring for the format).

    Args:
        root: folder with ``train.*``, ``test.*`` and optionally ``val.*``.
        train, test, val: explicit file paths (override ``root``'s).
        modalities: which arrays to use, in this order (default: all, file order).
        kinds: modality -> input kind (``"features"`` default; ``"spectrogram"`` or
            ``"frames"`` to get a ResNet for array-shaped inputs).
        in_memory: load HDF5 files fully (default: ``.npz`` in memory, HDF5 lazy).
        val_fraction: share of each train class held out when there is no val file
            (0 disables validation).
        split_seed: seed of that hold-out.
        num_classes: C (default: from ``class_names`` or ``max label + 1``).
        name: the data set's name.
    """
    if not is_real(val_fraction) or not 0.0 <= float(val_fraction) < 1.0:
        raise DatasetError(f"{name}: val_fraction must be a number in [0, 1), got {val_fraction!r}")
    paths: dict[str, Path | None] = {}
    base = None if root is None else Path(root)
    if base is not None and not base.is_dir():
        raise DatasetError(f"{name}: feature folder {base} does not exist")
    for split, given in (("train", train), ("test", test), ("val", val)):
        paths[split] = Path(given) if given is not None else (_find(base, split) if base is not None else None)
    for split in ("train", "test"):
        if paths[split] is None:
            where = f"in {base} (train.npz, train.h5 or train.hdf5)" if base is not None else "(pass root= or train=/test=)"
            raise DatasetError(f"{name}: no {split} feature file found {where}")
        if not paths[split].is_file():  # type: ignore[union-attr]  # None was refused just above
            raise DatasetError(f"{name}: {split} feature file {paths[split]} does not exist")

    def load(split: str) -> tuple[Split, list[str] | None]:
        path = paths[split]
        assert path is not None
        s: Split
        lazy = path.suffix in (".h5", ".hdf5") and not in_memory
        if lazy:
            s = HDF5Split(path, modalities, name=f"{name}/{split}")
            if len(s) == 0:
                raise DatasetError(f"{path}: the {split} split is empty (0 labels)")
            return s, s.class_names
        arrays, labels, class_names = load_feature_file(path, modalities)
        if len(labels) == 0:
            raise DatasetError(f"{path}: the {split} split is empty (0 labels)")
        s = TensorSplit({m: torch.from_numpy(np.ascontiguousarray(a)) for m, a in arrays.items()},
                        torch.from_numpy(labels), name=f"{name}/{split}")
        return s, class_names

    tr, class_names = load("train")
    te, _ = load("test")
    order = list(tr.modalities)
    for s, split in ((te, "test"),):
        if list(s.modalities) != order and set(s.modalities) != set(order):
            raise DatasetError(f"{name}: {paths[split]} holds modalities {list(s.modalities)}, "
                               f"{paths['train']} holds {order}")
    va: Split | None = None
    if paths["val"] is not None:
        va, _ = load("val")
    elif val_fraction > 0:
        keep, held = stratified_holdout(tr.labels.cpu().numpy(), val_fraction, split_seed)
        if len(held):
            tr, va = _subset(tr, keep, f"{name}/train"), _subset(tr, held, f"{name}/val")
    shapes = _row_shapes(tr)
    for held_out in (te, va):
        if held_out is None:
            continue
        other = _row_shapes(held_out)
        for m in order:
            if other.get(m) != shapes[m]:
                raise DatasetError(f"{held_out.name}: modality {m!r} has row shape {other.get(m)}, train has {shapes[m]}")
    if num_classes is None:
        num_classes = len(class_names) if class_names else int(max(int(s.labels.max()) for s in (tr, te, va)
                                                                     if s is not None)) + 1
    for split_obj, split in ((tr, "train"), (te, "test"), (va, "val")):
        if split_obj is None:
            continue
        lo, hi = int(split_obj.labels.min()), int(split_obj.labels.max())
        if lo < 0 or hi >= num_classes:
            source = paths[split] if paths[split] is not None else paths["train"]
            raise DatasetError(f"{source}: labels of the {split} split must lie in [0, {num_classes}), found values "
                               f"from {lo} to {hi}; remap the labels or pass num_classes")
    kinds = dict(kinds or {})
    specs = [ModalitySpec(m, shapes[m], kinds.get(m, "features")) for m in order]
    ds = MultimodalDataset(name, specs, num_classes, tr, te, va, class_names)
    ds.info.update({f"{k}_file": str(v) for k, v in paths.items() if v is not None})
    return ds


def _row_shapes(split: Split) -> dict[str, tuple[int, ...]]:
    if isinstance(split, HDF5Split):
        return dict(split.shapes)
    assert isinstance(split, TensorSplit)
    return {m: tuple(x.shape[1:]) for m, x in split.inputs.items()}


def _subset(split: Split, rows: np.ndarray, name: str) -> Split:
    if isinstance(split, HDF5Split):
        return split.subset(rows, name)
    assert isinstance(split, TensorSplit)
    idx = torch.from_numpy(rows)
    return TensorSplit({m: x[idx] for m, x in split.inputs.items()}, split.labels[idx], name=name)


def load_modality_arrays(folder: Path, modalities: Sequence[str], n_rows: int, label_file: Path
                         ) -> dict[str, Tensor]:
    """Read ``folder/<modality>.npy`` for each modality; each must have ``n_rows`` rows
    (one per row of ``label_file``, in its order)."""
    if not folder.is_dir():
        raise DatasetError(f"feature folder {folder} does not exist (needed for {label_file})")
    out = {}
    for m in modalities:
        path = folder / f"{m}.npy"
        if not path.is_file():
            raise DatasetError(f"feature file {path} not found (modality {m!r} of {label_file})")
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as err:
            raise DatasetError(f"cannot read feature file {path}: {err}") from None
        _check_dtype(m, a.dtype, path)
        if a.ndim:
            _check_finite_rows(m, a, 0, path)
        if a.ndim == 0 or a.shape[0] != n_rows:
            raise DatasetError(f"{path} has {a.shape[0] if a.ndim else 0} rows but {label_file} lists "
                               f"{n_rows} samples; the feature rows must follow the label file's rows")
        out[m] = torch.from_numpy(np.ascontiguousarray(a))
    return out
