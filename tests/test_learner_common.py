"""Properties every balance learner shares: registry, reproducibility, edge batches, helpers."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from mmenv.env import DUSEnv
from mmenv.learners import LEARNERS, BaselineLearner, make_learner
from mmenv.learners.common import concat_head_slices, modality_scores, true_class_score
from tests.learner_utils import make_batch, setup_learner, tiny_data

NAMES = ["ogm-ge", "mla", "pmr", "agm", "di-mml"]


def test_registered_by_name():
    for name in NAMES:
        assert LEARNERS[name]().name == name


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_numbers(name):
    ds = tiny_data()

    def episode():
        env = DUSEnv(dataset=ds, learner=name, epochs=1, batch_budget=32)
        env.reset(seed=3)
        obs, reward, *_ , info = env.step(np.array([0.7, 0.3], dtype=np.float32))
        return obs, reward, info["test"]["fused"]["accuracy"]

    a, b = episode(), episode()
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1:] == b[1:]


@pytest.mark.parametrize("name", NAMES)
def test_an_empty_modality_batch_trains_without_nan(name):
    # min_batch=0 lets a modality get no rows at all (and leaves no paired core).
    ds = tiny_data()
    learner = setup_learner(make_learner(name), ds)
    for it in range(3):
        out = learner.train_step(make_batch(ds, [32, 0], num_paired=0, iteration=it, seed=it))
        assert out.logits["weak"].shape == (0, ds.num_classes)
        assert all(torch.isfinite(v).all() for v in out.losses.values())
        assert all(torch.isfinite(v).all() for v in out.extras.values())
    assert all(torch.isfinite(p).all() for p in learner.model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_loss_scale_is_checked(name):
    with pytest.raises(ValueError, match="loss_scale"):
        make_learner(name, loss_scale="sum")


def test_modality_scores_use_the_paired_core():
    logits = {"a": torch.tensor([[5.0, 0.0], [0.0, 5.0], [5.0, 0.0]]), "b": torch.zeros(2, 2)}
    labels = {"a": torch.tensor([0, 1, 1]), "b": torch.tensor([0, 1])}
    s = modality_scores(logits, labels, num_paired=2, modalities=["a", "b"])
    torch.testing.assert_close(s, torch.stack([true_class_score(logits["a"][:2], labels["a"][:2]),
                                               torch.tensor(0.5)]))
    assert s[0].item() == pytest.approx(torch.sigmoid(torch.tensor(5.0)).item())


def test_zero_filled_unpaired_rows_use_their_own_features():
    """The fused CE's unpaired rows are the concat head applied to [f_m, 0, ...]."""
    ds = tiny_data()
    learner = setup_learner(BaselineLearner(fusion_input="zero-fill", loss_scale="mean"), ds)
    batch = make_batch(ds, [12, 4], num_paired=4)
    model = learner.model
    with torch.no_grad():
        feats = model.encode(batch.inputs)
        loss = learner.fused_loss(feats, batch)
        paired = model.fuse({m: f[:4] for m, f in feats.items()})
        extra = model.fuse({"strong": feats["strong"][4:]})
        slices = concat_head_slices(model.fusion, {"strong": feats["strong"][4:]}, model.feature_dims,
                                    model.modalities)
    torch.testing.assert_close(extra, slices["strong"] + model.fusion.bias / 2)
    expected = F.cross_entropy(torch.cat([paired, extra]), torch.cat([batch.labels["strong"][:4],
                                                                      batch.labels["strong"][4:]]))
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("order", ["remix", "bss-learned"])
def test_runs_under_the_other_sample_orders(name, order):
    """Data Remixing hands masked single-modality rows, BSS reorders samples."""
    env = DUSEnv(dataset=tiny_data(), learner=name, epochs=2, batch_budget=32, sample_order=order)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(np.array([0.5, 0.5], dtype=np.float32))
        done = terminated or truncated
    assert terminated and not info["diverged"]
    assert info["test"]["fused"]["accuracy"] > 0.25


@pytest.mark.parametrize("name", ["baseline", *NAMES])
def test_train_step_has_no_host_sync(name):
    """No tensor value reaches Python inside ``train_step`` (every learner, default kwargs)."""
    from tests.test_hot_path import SyncCounter

    ds = tiny_data()
    learner = setup_learner(make_learner(name), ds)
    batches = [make_batch(ds, [20, 12], num_paired=8, iteration=it, seed=it) for it in range(4)]
    learner.train_step(batches[0])  # warm-up (lazy optimizer state)
    with SyncCounter() as counter:
        for batch in batches[1:]:
            learner.train_step(batch)
    assert counter.total == 0, counter.calls


def test_every_learner_keeps_the_shared_keywords_in_its_signature_with_their_defaults():
    import dataclasses
    import inspect

    from mmenv.learners import LEARNERS
    from mmenv.learners.common import TrainingSettings

    shared = {f.name: f.default for f in dataclasses.fields(TrainingSettings)}
    for name in ("baseline", "mla", "agm", "ogm-ge", "pmr", "di-mml"):
        cls = LEARNERS.get_factory(name)
        params = inspect.signature(cls).parameters
        for key, default in shared.items():
            assert params[key].default == default, (name, key)
        learner = cls(lr=0.05, momentum=0.5, weight_decay=0.0, optimizer="adam", loss_scale="mean",
                      encoder_kwargs={"a": {"out_dim": 8}})
        assert learner.opt_kwargs == {"optimizer": "adam", "lr": 0.05, "momentum": 0.5, "weight_decay": 0.0}
        assert learner.loss_scale == "mean" and learner.encoder_kwargs == {"a": {"out_dim": 8}}
        assert learner.encoder_names is None
