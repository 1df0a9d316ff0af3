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


def test_env_runs_one_epoch():
    import mmenv

    env = mmenv.DUSEnv(dataset="uci-mfeat", epochs=1, dataset_kwargs={"views": ["fou", "mor", "zer"]})
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3,)
    _, _, terminated, _, info = env.step(env.uniform_action())
    assert terminated and info["test"]["fused"]["accuracy"] > 0.5
