"""NVGesture (Molchanov et al., 2016): RGB, depth and optical flow, 25 classes.

The papers use I3D features (1024-d per modality); we read them as precomputed features
whose rows follow the published list files::

    root/
      nvgesture_train_correct_cvpr2016_v2.lst   1,050 lines such as
      nvgesture_test_correct_cvpr2016_v2.lst    "path:./Video_data/class_01/subject3_r0 depth:sk_depth:138:218
                                                 color:sk_color:138:218 duo_left:duo_left:161:254 label:1"
      features/train/{rgb,depth,flow}.npy       [1050, D], row i <-> line i of the train list
      features/test/{rgb,depth,flow}.npy        [482, D]

``label:k`` (1..25) becomes class ``k - 1``. Validation: ``val_fraction`` of each class of
the train list held out with ``split_seed`` (default 10%; 0 disables it). Three
modalities, so every learner must handle m = 3.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .base import DatasetError, ModalitySpec, MultimodalDataset, TensorSplit, stratified_holdout
from .features import load_modality_arrays

__all__ = ["make_nvgesture", "read_nvgesture_list", "NVGESTURE_NUM_CLASSES"]

NVGESTURE_NUM_CLASSES = 25
MODALITIES = ("rgb", "depth", "flow")
TRAIN_LIST = "nvgesture_train_correct_cvpr2016_v2.lst"
TEST_LIST = "nvgesture_test_correct_cvpr2016_v2.lst"


def read_nvgesture_list(path: str | os.PathLike) -> list[tuple[str, int]]:
    """``(video path, class index 0..24)`` for each non-empty line of an NVGesture list."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"label list not found: {path}")
    out = []
    for row_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        fields = dict(tok.split(":", 1) for tok in line.split() if ":" in tok)
        if "label" not in fields:
            raise DatasetError(f"{path}, line {row_no}: no 'label:<k>' field in {line!r}")
        try:
            k = int(fields["label"])
        except ValueError:
            k = 0
        if not 1 <= k <= NVGESTURE_NUM_CLASSES:
            raise DatasetError(f"{path}, line {row_no}: unknown label {fields['label']!r}; "
                               f"valid labels: 1..{NVGESTURE_NUM_CLASSES}")
        out.append((fields.get("path", ""), k - 1))
    if not out:
        raise DatasetError(f"{path} has no lines")
    return out


def make_nvgesture(root: str | os.PathLike, features_dir: str = "features", train_list: str = TRAIN_LIST,
                   test_list: str = TEST_LIST, val_fraction: float = 0.1, split_seed: int = 0) -> MultimodalDataset:
    """NVGesture (rgb, depth, flow; 25 classes) from its list files and precomputed features."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"nvgesture: data folder {root} does not exist")
    splits = {}
    for split, list_name in (("train", train_list), ("test", test_list)):
        path = root / list_name
        rows = read_nvgesture_list(path)
        inputs = load_modality_arrays(root / features_dir / split, MODALITIES, len(rows), path)
        splits[split] = TensorSplit(inputs, torch.tensor([r[1] for r in rows]), name=f"nvgesture/{split}")
    tr, te, va = splits["train"], splits["test"], None
    if val_fraction > 0:
        keep, held = stratified_holdout(tr.labels.numpy(), val_fraction, split_seed)
        if len(held):
            k, h = torch.from_numpy(keep), torch.from_numpy(held)
            va = TensorSplit({m: x[h] for m, x in tr.inputs.items()}, tr.labels[h], name="nvgesture/val")
            tr = TensorSplit({m: x[k] for m, x in tr.inputs.items()}, tr.labels[k], name="nvgesture/train")
    specs = [ModalitySpec(m, tuple(tr.inputs[m].shape[1:]), "features") for m in MODALITIES]
    for s in (te, va):
        for spec in specs:
            if s is not None and tuple(s.inputs[spec.name].shape[1:]) != spec.shape:
                raise DatasetError(f"{s.name}: {spec.name} features have row shape "
                                   f"{tuple(s.inputs[spec.name].shape[1:])}, train has {spec.shape}")
    ds = MultimodalDataset("nvgesture", specs, NVGESTURE_NUM_CLASSES, tr, te, va,
                           [f"class_{k:02d}" for k in range(1, NVGESTURE_NUM_CLASSES + 1)])
    ds.info.update(root=str(root), val_fraction=val_fraction, split_seed=split_seed)
    return ds

