"""Precomputed-feature data sets: generic npz/HDF5, Twitter2015, Sarcasm, NVGesture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import mmenv
from mmenv.datasets import DatasetError, TensorSplit, make_dataset
from mmenv.datasets.features import HDF5Split, save_features


def arrays(rng, n, dims, num_classes):
    labels = np.arange(n) % num_classes
    xs = {m: (rng.normal(size=(n, d)) + labels[:, None] * (k + 1) / num_classes).astype(np.float32)
          for k, (m, d) in enumerate(dims.items())}
    return xs, labels


def one_epoch(ds, m):
    env = mmenv.DUSEnv(dataset=ds, epochs=1, batch_budget=3 * m)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (m,)
    _, reward, terminated, _, info = env.step(env.uniform_action())
    assert terminated and np.isfinite(reward)
    return info


# --------------------------------------------------------------------------- generic files
DIMS = {"a": 5, "b": 3, "c": 7}


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_generic_three_modalities(tmp_path, suffix):
    rng = np.random.default_rng(0)
    tr, ytr = arrays(rng, 40, DIMS, 4)
    te, yte = arrays(rng, 12, DIMS, 4)
    save_features(tmp_path / f"train{suffix}", tr, ytr, class_names=["w", "x", "y", "z"])
    save_features(tmp_path / f"test{suffix}", te, yte)
    ds = make_dataset("features", root=tmp_path, val_fraction=0.3)
    assert ds.modality_names == ("a", "b", "c") and ds.num_classes == 4
    assert list(ds.class_names) == ["w", "x", "y", "z"]
    assert [s.shape for s in ds.modalities] == [(5,), (3,), (7,)]
    assert (len(ds.train), len(ds.val), len(ds.test)) == (28, 12, 12)
    assert np.bincount(ds.val.labels.numpy()).tolist() == [3, 3, 3, 3]
    lazy = isinstance(ds.train, HDF5Split)
    assert lazy == (suffix == ".h5") and isinstance(ds.test, HDF5Split if lazy else TensorSplit)
    # Gathering follows the index order, repeats included, and returns the stored rows.
    idx = torch.tensor([11, 0, 11, 5])
    torch.testing.assert_close(ds.test.gather("c", idx), torch.from_numpy(te["c"][[11, 0, 11, 5]]))
    assert ds.test.labels.tolist() == yte.tolist()
    info = one_epoch(ds, 3)
    assert set(info["test"]) == {"fused", "a", "b", "c"}


def test_generic_explicit_paths_subset_and_in_memory(tmp_path):
    rng = np.random.default_rng(1)
    for split, n in (("tr", 30), ("va", 9), ("te", 9)):
        x, y = arrays(rng, n, DIMS, 3)
        save_features(tmp_path / f"{split}.hdf5", x, y)
    ds = make_dataset("features", train=tmp_path / "tr.hdf5", val=tmp_path / "va.hdf5",
                      test=tmp_path / "te.hdf5", modalities=["c", "a"], in_memory=True)
    assert ds.modality_names == ("c", "a") and isinstance(ds.train, TensorSplit)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (30, 9, 9) and ds.num_classes == 3


def test_generic_bad_input(tmp_path):
    rng = np.random.default_rng(2)
    x, y = arrays(rng, 10, DIMS, 2)
    with pytest.raises(DatasetError, match="does not exist"):
        make_dataset("features", root=tmp_path / "missing")
    with pytest.raises(DatasetError, match="no train feature file"):
        make_dataset("features", root=tmp_path)
    bad = dict(x, b=x["b"][:9])
    for suffix in (".npz", ".h5"):
        save_features(tmp_path / f"train{suffix}", bad, y)
        save_features(tmp_path / f"test{suffix}", x, y)
        with pytest.raises(DatasetError, match=rf"train{suffix}: modality 'b' has 9 rows but there are 10 labels"):
            make_dataset("features", root=tmp_path)
        (tmp_path / f"train{suffix}").unlink()
        (tmp_path / f"test{suffix}").unlink()
    np.savez(tmp_path / "train.npz", **x)
    save_features(tmp_path / "test.npz", x, y)
    with pytest.raises(DatasetError, match=r"train.npz: no 'labels' array"):
        make_dataset("features", root=tmp_path)
    (tmp_path / "train.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DatasetError, match=r"cannot read feature file .*train.npz"):
        make_dataset("features", root=tmp_path)
    save_features(tmp_path / "train.npz", x, y)
    with pytest.raises(DatasetError, match=r"modalities \['z'\] not in the file"):
        make_dataset("features", root=tmp_path, modalities=["a", "z"])
    save_features(tmp_path / "test.npz", {"a": x["a"][:, :2], "b": x["b"], "c": x["c"]}, y)
    with pytest.raises(DatasetError, match=r"modality 'a' has row shape \(2,\), train has \(5,\)"):
        make_dataset("features", root=tmp_path)


# --------------------------------------------------------------------------- Twitter2015 / Sarcasm
def write_features(root: Path, split: str, dims: dict[str, int], n: int, seed: int) -> None:
    folder = root / "features" / split
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for m, d in dims.items():
        np.save(folder / f"{m}.npy", rng.normal(size=(n, d)).astype(np.float32))


def test_twitter2015(tmp_path):
    header = "index\t#1 Label\t#2 ImageID\t#3 String\t#3 String\n"
    for k, (split, fname, n) in enumerate((("train", "train.tsv", 9), ("val", "dev.tsv", 3), ("test", "test.tsv", 6))):
        rows = "".join(f"{i}\t{i % 3}\t{100 + i}.jpg\tRT @user : $T$ is great\tTarget{i}\n" for i in range(n))
        (tmp_path / fname).write_text(header + rows)
        write_features(tmp_path, split, {"image": 8, "text": 6}, n, k)
    ds = make_dataset("twitter2015", root=tmp_path)
    assert ds.modality_names == ("image", "text") and ds.num_classes == 3
    assert list(ds.class_names) == ["negative", "neutral", "positive"]
    assert (len(ds.train), len(ds.val), len(ds.test)) == (9, 3, 6)
    assert ds.train.labels.tolist() == [0, 1, 2] * 3
    assert ds.train.inputs["image"].shape == (9, 8) and ds.train.inputs["text"].shape == (9, 6)
    one_epoch(ds, 2)
    # Unknown label, named by file and row; features that do not follow the label file.
    (tmp_path / "test.tsv").write_text(header + "0\t1\ta.jpg\ts\tt\n1\t5\tb.jpg\ts\tt\n")
    with pytest.raises(DatasetError, match=r"test.tsv, row 3: unknown label '5'"):
        make_dataset("twitter2015", root=tmp_path)
    (tmp_path / "test.tsv").write_text(header + "0\t1\ta.jpg\ts\tt\n")
    with pytest.raises(DatasetError, match=r"image.npy has 6 rows but .*test.tsv lists 1 samples"):
        make_dataset("twitter2015", root=tmp_path)


def test_twitter2015_headerless_columns(tmp_path):
    (tmp_path / "train.tsv").write_text("".join(f"{i}.jpg\ttext {i}\t{i % 3}\n" for i in range(6)))
    (tmp_path / "test.tsv").write_text("".join(f"{i}.jpg\ttext {i}\t{2 - i % 3}\n" for i in range(3)))
    write_features(tmp_path, "train", {"image": 4, "text": 4}, 6, 0)
    write_features(tmp_path, "test", {"image": 4, "text": 4}, 3, 1)
    ds = make_dataset("twitter2015", root=tmp_path)
    assert ds.val is None and ds.test.labels.tolist() == [2, 1, 0]


def test_sarcasm(tmp_path):
    for k, (split, fname, n) in enumerate((("train", "train.json", 8), ("val", "valid.json", 4), ("test", "test.json", 4))):
        recs = [{"image": f"{900 + i}", "text": f"what a day #{i}", "label": i % 2} for i in range(n)]
        (tmp_path / fname).write_text(json.dumps(recs))
        write_features(tmp_path, split, {"image": 5, "text": 7}, n, k)
    ds = make_dataset("sarcasm", root=tmp_path)
    assert ds.num_classes == 2 and list(ds.class_names) == ["not-sarcastic", "sarcastic"]
    assert (len(ds.train), len(ds.val), len(ds.test)) == (8, 4, 4)
    assert ds.val.labels.tolist() == [0, 1, 0, 1]
    one_epoch(ds, 2)
    # JSON Lines works too; an unknown label is named by file and record.
    lines = [json.dumps({"image_id": "1", "text": "x", "label": 1}), json.dumps({"image": "2", "text": "y", "label": 3})]
    (tmp_path / "test.json").write_text("\n".join(lines))
    with pytest.raises(DatasetError, match=r"test.json, row 2: unknown label 3"):
        make_dataset("sarcasm", root=tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        make_dataset("sarcasm", root=tmp_path / "nope")


# --------------------------------------------------------------------------- NVGesture
def nv_line(i: int, label: int) -> str:
    return (f"path:./Video_data/class_{label:02d}/subject{i}_r0 depth:sk_depth:10:80 "
            f"color:sk_color:10:80 duo_left:duo_left:12:90 label:{label}\n")


def test_nvgesture_three_modalities(tmp_path):
    dims = {"rgb": 6, "depth": 4, "flow": 5}
    train_labels = [1 + i % 25 for i in range(50)]
    (tmp_path / "nvgesture_train_correct_cvpr2016_v2.lst").write_text("".join(nv_line(i, k) for i, k in enumerate(train_labels)))
    (tmp_path / "nvgesture_test_correct_cvpr2016_v2.lst").write_text("".join(nv_line(i, 25 - i) for i in range(10)))
    write_features(tmp_path, "train", dims, 50, 0)
    write_features(tmp_path, "test", dims, 10, 1)
    ds = make_dataset("nvgesture", root=tmp_path, val_fraction=0.5)
    assert ds.modality_names == ("rgb", "depth", "flow") and ds.num_classes == 25
    assert (len(ds.train), len(ds.val), len(ds.test)) == (25, 25, 10)
    assert sorted(ds.train.labels.tolist()) == list(range(25))  # one of each class's two samples
    assert ds.test.labels.tolist() == [24 - i for i in range(10)]  # label:k -> k - 1
    assert [s.shape for s in ds.modalities] == [(6,), (4,), (5,)]
    one_epoch(ds, 3)
    (tmp_path / "nvgesture_test_correct_cvpr2016_v2.lst").write_text(nv_line(0, 3) + nv_line(1, 26))
    with pytest.raises(DatasetError, match=r"test_correct_cvpr2016_v2.lst, line 2: unknown label '26'"):
        make_dataset("nvgesture", root=tmp_path)
    (tmp_path / "features" / "test" / "flow.npy").unlink()
    (tmp_path / "nvgesture_test_correct_cvpr2016_v2.lst").write_text("".join(nv_line(i, 3) for i in range(10)))
    with pytest.raises(DatasetError, match=r"flow.npy not found"):
        make_dataset("nvgesture", root=tmp_path)


# --------------------------------------------------------------------------- review: headers, folders, devices
@pytest.mark.parametrize("header,order", [
    ("ImageID\tString\tLabel", ("img", "txt", "lab")),                  # the column names of the design notes
    ("image_id\ttext\tlabel", ("img", "txt", "lab")),
    ("index\t#1 Label\t#2 ImageID\t#3 String\t#3 String", ("idx", "lab", "img", "txt", "tgt")),  # TomBERT
    ("#1 Label\t#2 Image ID\t#3 Tweet", ("lab", "img", "txt")),
])
def test_twitter2015_header_variants(tmp_path, header, order):
    def rows(n, shift):
        cells = {"idx": lambda i: str(i), "lab": lambda i: str((i + shift) % 3), "img": lambda i: f"{i}.jpg",
                 "txt": lambda i: f"RT $T$ {i}", "tgt": lambda i: "Target"}
        return header + "\n" + "".join("\t".join(cells[c](i) for c in order) + "\n" for i in range(n))

    (tmp_path / "train.tsv").write_text(rows(6, 0))
    (tmp_path / "test.tsv").write_text(rows(3, 1))
    write_features(tmp_path, "train", {"image": 4, "text": 4}, 6, 0)
    write_features(tmp_path, "test", {"image": 4, "text": 4}, 3, 1)
    ds = make_dataset("twitter2015", root=tmp_path)
    assert ds.train.labels.tolist() == [0, 1, 2, 0, 1, 2] and ds.test.labels.tolist() == [1, 2, 0]


def test_twitter2015_unknown_header_lists_expected_columns(tmp_path):
    (tmp_path / "train.tsv").write_text("photo\ttext\tlabel\na.jpg\thi\t1\n")
    with pytest.raises(DatasetError, match=r"train.tsv: header .* has no image column; expected columns "
                                           r"\(image: one of \['imageid'"):
        make_dataset("twitter2015", root=tmp_path)


def test_save_features_creates_the_folder(tmp_path):
    # docs/datasets.md writes into a folder that does not exist yet.
    rng = np.random.default_rng(0)
    x, y = arrays(rng, 6, {"a": 2, "b": 3}, 2)
    for suffix in (".npz", ".h5"):
        path = save_features(tmp_path / "new" / "deeper" / f"train{suffix}", x, y)
        assert path.is_file()
    with pytest.raises(ValueError, match="unknown feature file type '.csv'"):
        save_features(tmp_path / "other" / "train.csv", x, y)
    assert not (tmp_path / "other").exists()


def test_feature_splits_are_tensors_on_the_dataset_device(tmp_path):
    # Gathering from a feature split is one index_select on the split's device (no copy
    # through NumPy), and the split moves with the data set (CUDA when there is one).
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rng = np.random.default_rng(3)
    for split, n in (("train", 20), ("test", 8)):
        x, y = arrays(rng, n, DIMS, 2)
        save_features(tmp_path / f"{split}.npz", x, y)
    ds = make_dataset("features", root=tmp_path, val_fraction=0.0).to(device)
    for split in (ds.train, ds.test):
        assert isinstance(split, TensorSplit) and split.labels.device.type == device
        assert all(t.device.type == device and t.dtype == torch.float32 for t in split.inputs.values())
        idx = torch.tensor([2, 0, 2], device=device)
        out = split.gather("a", idx)
        assert out.device.type == device and out.shape == (3, 5)
        torch.testing.assert_close(out, split.inputs["a"][idx])
