"""Image-text data sets through precomputed features: Twitter2015 and Sarcasm.

The papers encode images with ResNet-50 and text with BERT; we read those features from
per-modality ``.npy`` files whose rows follow the rows of the published label files:

Twitter2015 (Yu & Jiang, 2019, TomBERT's release; 3 classes)::

    root/
      train.tsv, dev.tsv, test.tsv     tab-separated, header "index  #1 Label  #2 ImageID
                                       #3 String  #3 String"; Label 0/1/2 =
                                       negative/neutral/positive (other headers such as
                                       "ImageID String Label" or "image_id text label"
                                       are found by name, see TWITTER_COLUMNS; files
                                       without a header are read as ImageID, String, Label)
      features/train/image.npy         [N_train, D_image], row i <-> i-th data row of train.tsv
      features/train/text.npy          [N_train, D_text]
      features/val/...  (for dev.tsv), features/test/...

Sarcasm (Cai et al., 2019; 2 classes)::

    root/
      train.json, valid.json, test.json   a JSON list of {"image": ..., "text": ..., "label": 0|1}
                                          ("image_id" is accepted for "image"; JSON Lines too)
      features/train/{image,text}.npy, features/val/..., features/test/...

A label outside the classes raises DatasetError naming the file and row; the features'
row count must equal the label file's.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import cast

import torch

from .base import DatasetError, ModalitySpec, MultimodalDataset, TensorSplit
from .features import load_modality_arrays

__all__ = ["make_twitter2015", "make_sarcasm", "read_twitter_tsv", "read_sarcasm_json",
           "TWITTER2015_CLASSES", "SARCASM_CLASSES", "TWITTER_COLUMNS"]

TWITTER2015_CLASSES = ("negative", "neutral", "positive")
SARCASM_CLASSES = ("not-sarcastic", "sarcastic")
MODALITIES = ("image", "text")


def _label_index(raw, classes, path: Path, row: int) -> int:
    text = str(raw).strip()
    if text in classes:
        return classes.index(text)
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < len(classes) or str(value) != text.lstrip("+"):
        raise DatasetError(f"{path}, row {row}: unknown label {raw!r}; valid labels: 0..{len(classes) - 1} "
                           f"or {list(classes)}")
    return value


#: Accepted header names per column role, compared after dropping a leading ``#<k>`` and
#: spaces/underscores and lower-casing ("#2 ImageID", "image_id" and "Image ID" all read
#: ``imageid``). The first matching column wins: TomBERT's files have two "#3 String"
#: columns, the tweet (with ``$T$`` for the target) and then the target itself.
TWITTER_COLUMNS: dict[str, tuple[str, ...]] = {
    "image": ("imageid", "image", "img", "imgid", "imagename"),
    "text": ("string", "text", "tweet", "sentence", "tweetcontent", "content"),
    "label": ("label", "sentiment", "polarity", "class"),
}
_TWITTER_OTHER = ("index", "id", "target", "aspect", "entity")


def _column_key(name: str) -> str:
    return re.sub(r"[\s_]+", "", re.sub(r"^#\d+", "", name.strip())).lower()


def read_twitter_tsv(path: str | os.PathLike) -> list[tuple[str, str, int]]:
    """Rows ``(image_id, text, label)`` of a Twitter2015 TSV.

    With a header row (TomBERT's ``index  #1 Label  #2 ImageID  #3 String  #3 String``,
    or ``ImageID  String  Label``, ``image_id  text  label``... see
    :data:`TWITTER_COLUMNS`), columns are found by name; a header missing one of them is
    an error listing the accepted names. Without a header the columns are ``ImageID,
    String, Label``.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"label file not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [r for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if r and any(c.strip() for c in r)]
    if not rows:
        raise DatasetError(f"{path} has no rows")
    keys = [_column_key(c) for c in rows[0]]
    known = {k for names in TWITTER_COLUMNS.values() for k in names} | set(_TWITTER_OTHER)
    if any(k in known for k in keys):  # a header row
        cols = {}
        for role, names in TWITTER_COLUMNS.items():
            cols[role] = next((i for i, k in enumerate(keys) if k in names), None)
        missing = [role for role, i in cols.items() if i is None]
        if missing:
            expected = "; ".join(f"{role}: one of {list(names)}" for role, names in TWITTER_COLUMNS.items())
            raise DatasetError(f"{path}: header {rows[0]} has no {' / '.join(missing)} column; expected columns "
                               f"({expected}; a leading '#k', spaces, underscores and case are ignored), "
                               f"e.g. TomBERT's 'index, #1 Label, #2 ImageID, #3 String, #3 String'")
        # Every role was found (missing ones were refused above).
        col_img, col_txt, col_lab = (cast(int, cols[r]) for r in ("image", "text", "label"))
        start = 1
    else:
        col_img, col_txt, col_lab, start = 0, 1, 2, 0
    out = []
    for row_no, row in enumerate(rows[start:], start=start + 1):
        if len(row) <= max(col_img, col_txt, col_lab):
            raise DatasetError(f"{path}, row {row_no}: expected at least {max(col_img, col_txt, col_lab) + 1} "
                               f"tab-separated columns, got {len(row)}")
        out.append((row[col_img], row[col_txt], _label_index(row[col_lab], TWITTER2015_CLASSES, path, row_no)))
    if not out:
        raise DatasetError(f"{path} has a header but no data rows")
    return out


def read_sarcasm_json(path: str | os.PathLike) -> list[tuple[str, str, int]]:
    """Rows ``(image, text, label)`` of a Sarcasm JSON (a list of objects, or JSON Lines)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"label file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        records = json.loads(text)
    except json.JSONDecodeError:
        try:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as err:
            raise DatasetError(f"{path}: not JSON or JSON Lines ({err})") from None
    if isinstance(records, dict):
        records = [records]
    out = []
    for row_no, rec in enumerate(records, start=1):
        if not isinstance(rec, dict) or "label" not in rec or not ({"image", "image_id"} & set(rec)):
            raise DatasetError(f"{path}, record {row_no}: expected an object with 'image', 'text' and 'label'")
        image = rec.get("image", rec.get("image_id"))
        out.append((str(image), str(rec.get("text", "")), _label_index(rec["label"], SARCASM_CLASSES, path, row_no)))
    if not out:
        raise DatasetError(f"{path} has no records")
    return out


def _first(root: Path, names: tuple[str, ...]) -> Path:
    for n in names:
        if (root / n).is_file():
            return root / n
    raise DatasetError(f"none of {list(names)} found in {root}")


def _image_text(name: str, root, files: dict[str, tuple[str, ...]], reader, classes, features_dir: str,
                image_kind: str) -> MultimodalDataset:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{name}: data folder {root} does not exist")
    splits = {}
    for split, candidates in files.items():
        try:
            path = _first(root, candidates)
        except DatasetError:
            if split == "val":
                continue
            raise
        rows = reader(path)
        inputs = load_modality_arrays(root / features_dir / split, MODALITIES, len(rows), path)
        labels = torch.tensor([r[2] for r in rows], dtype=torch.long)
        splits[split] = TensorSplit(inputs, labels, name=f"{name}/{split}")
    tr = splits["train"]
    specs = [ModalitySpec("image", tuple(tr.inputs["image"].shape[1:]), image_kind),
             ModalitySpec("text", tuple(tr.inputs["text"].shape[1:]), "features")]
    for s in splits.values():
        for spec in specs:
            if tuple(s.inputs[spec.name].shape[1:]) != spec.shape:
                raise DatasetError(f"{s.name}: {spec.name} features have row shape "
                                   f"{tuple(s.inputs[spec.name].shape[1:])}, train has {spec.shape}")
    ds = MultimodalDataset(name, specs, len(classes), tr, splits["test"], splits.get("val"), list(classes))
    ds.info["root"] = str(root)
    return ds


def make_twitter2015(root: str | os.PathLike, features_dir: str = "features",
                     image_kind: str = "features") -> MultimodalDataset:
    """Twitter2015 (image, text; 3 classes) from TSV label files and precomputed features."""
    files = {"train": ("train.tsv",), "val": ("dev.tsv", "val.tsv", "valid.tsv"), "test": ("test.tsv",)}
    return _image_text("twitter2015", root, files, read_twitter_tsv, TWITTER2015_CLASSES, features_dir, image_kind)


def make_sarcasm(root: str | os.PathLike, features_dir: str = "features",
                 image_kind: str = "features") -> MultimodalDataset:
    """Sarcasm (image, text; 2 classes) from JSON label files and precomputed features."""
    files = {"train": ("train.json",), "val": ("valid.json", "val.json", "dev.json"), "test": ("test.json",)}
    return _image_text("sarcasm", root, files, read_sarcasm_json, SARCASM_CLASSES, features_dir, image_kind)
