"""Tests of Data Remixing (mmenv.sampling.remix) and of masked batches in the baseline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from mmenv.datasets import make_synthetic
from mmenv.env import DUSEnv
from mmenv.learners import BaselineLearner, Batch, Learner, LearnerContext, LearnerError, Prediction
from mmenv.sampling import scoring_context
from mmenv.sampling.remix import DataRemix, confidence_kl

C = 4


class FixedLogitLearner(Learner):
    """predict returns fixed logits read from the inputs (first C features, scaled per modality)."""

    name = "fixed"
    scales = {"m0": 2.0, "m1": 0.7, "m2": 1.3}

    def setup(self, ctx):
        pass

    def train_step(self, batch):  # pragma: no cover - never trained
        raise NotImplementedError

    def predict(self, inputs):
        per = {m: x[:, :C] * self.scales[m] for m, x in inputs.items()}
        return Prediction(sum(per.values()), per)


class RecordingLearner(BaselineLearner):
    def setup(self, ctx):
        super().setup(ctx)
        self.log = []

    def train_step(self, batch):
        self.log.append(batch)
        return super().train_step(batch)


def _data(**kw):
    return make_synthetic(n_train=200, n_val=50, n_test=100, **kw)


def _hand_kl(z):
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return (p * np.log(p * z.shape[1])).sum(1)  # KL(p || uniform)


@pytest.mark.parametrize("num_modalities", [2, 3])
def test_every_sample_goes_to_its_less_confident_modality(num_modalities):
    names = ["m0", "m1", "m2"][:num_modalities]
    data = _data(num_modalities=num_modalities, names=names)
    order = DataRemix(warmup_epochs=0)
    order.setup(200, ("paired", *names), torch.device("cpu"), torch.Generator().manual_seed(0))
    order.on_epoch_start(scoring_context(FixedLogitLearner(), data, batch_size=64))
    all_x = {m: data.train.gather(m, torch.arange(200)).double().numpy() for m in names}
    kl = np.stack([_hand_kl(all_x[m][:, :C] * FixedLogitLearner.scales[m]) for m in names], axis=1)
    np.testing.assert_allclose(order.confidence.numpy(), kl, rtol=1e-4, atol=1e-6)
    expected = kl.argmin(1)
    members = np.zeros((200, num_modalities), dtype=int)
    for j, m in enumerate(names):
        members[order.subsets[m].numpy(), j] += 1
        assert (expected[order.subsets[m].numpy()] == j).all()
    assert (members.sum(1) == 1).all()  # exactly one modality per sample
    assert all(len(order.subsets[m]) > 0 for m in names)
    # a pass of modality j is a permutation of its subset
    for m in names:
        assert sorted(order.next_pass(m, 0).tolist()) == sorted(order.subsets[m].tolist())


def test_confidence_kl_values():
    z = torch.tensor([[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]])
    kl = confidence_kl(z)
    assert kl[0].item() == pytest.approx(0.0, abs=1e-6)
    assert kl[1].item() == pytest.approx(math.log(4), abs=1e-5)


def test_remix_batches_are_single_modality_and_masked():
    learner = RecordingLearner()
    env = DUSEnv(_data(), learner, epochs=3, batch_budget=32, sample_order="remix",
                 sample_order_kwargs={"warmup_epochs": 1})
    order = env.sample_order
    env.reset(seed=0)
    sizes = [22, 10]
    for t in range(3):
        _, _, _, _, info = env.step(np.array([0.7, 0.3], dtype=np.float32))
        assert info["batch_sizes"] == sizes
        batches = [b for b in learner.log if b.epoch == t]
        assert len(batches) == env.iters_per_epoch
        for b in batches:
            assert [len(b.indices[m]) for m in env.modalities] == sizes
            if t == 0:  # warm-up: ordinary paired joint training
                assert b.num_paired == 10 and b.masks is None
            else:
                assert b.num_paired == 0
                for m in env.modalities:
                    assert b.masks[m].dtype == torch.bool and bool(b.masks[m].all())
                    assert len(b.masks[m]) == len(b.indices[m])
                    assert set(b.indices[m].tolist()) <= set(order.subsets[m].tolist())
        if t > 0:
            sub = order.subsets
            assert sum(len(sub[m]) for m in env.modalities) == 200
            seen = {m: torch.cat([b.indices[m] for b in batches]).unique() for m in env.modalities}
            # the larger budget share covers its subset within the epoch
            assert set(seen[env.modalities[0]].tolist()) == set(sub[env.modalities[0]].tolist())
    assert order.assignment.shape == (200,)


def _batch_learner(fusion_input="paired", loss_scale="mean"):
    data = _data()
    learner = BaselineLearner(fusion_input=fusion_input, loss_scale=loss_scale)
    torch.manual_seed(0)
    learner.setup(LearnerContext(data.modalities, data.num_classes, torch.device("cpu"), 32, 1, 1, 0))
    return data, learner


@pytest.mark.parametrize("loss_scale", ["mean", "budget"])
def test_baseline_fused_loss_honours_masks(loss_scale):
    data, learner = _batch_learner(loss_scale=loss_scale)
    mods = data.modality_names
    idx = {mods[0]: torch.arange(0, 6), mods[1]: torch.arange(10, 13)}
    inputs = {m: data.train.gather(m, i) for m, i in idx.items()}
    labels = {m: data.train.labels[i] for m, i in idx.items()}
    masks = {mods[0]: torch.tensor([1, 1, 0, 1, 1, 1], dtype=torch.bool), mods[1]: torch.ones(3, dtype=torch.bool)}
    batch = Batch(inputs, labels, idx, num_paired=0, masks=masks)
    model = learner.model
    with torch.no_grad():
        feats = model.encode(inputs)
        got = learner.fused_loss(feats, batch)
        # by hand: each masked row alone, the other modality zero-filled (MultimodalModel.fuse)
        rows = [F.cross_entropy(model.fuse({m: feats[m]}), labels[m], reduction="none") for m in mods]
        w = torch.cat([masks[m].float() for m in mods])
        total = (torch.cat(rows) * w).sum()
        expected = total / w.sum() if loss_scale == "mean" else total / learner.share
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    # without masks the paired-only fusion has no rows: zero loss
    with torch.no_grad():
        assert learner.fused_loss(feats, Batch(inputs, labels, idx, num_paired=0)).item() == 0.0


def test_baseline_zero_fill_keeps_own_modality_features():
    data, learner = _batch_learner(fusion_input="zero-fill")
    mods = data.modality_names
    idx = {mods[0]: torch.arange(0, 5), mods[1]: torch.arange(0, 3)}
    inputs = {m: data.train.gather(m, i) for m, i in idx.items()}
    labels = {m: data.train.labels[i] for m, i in idx.items()}
    batch = Batch(inputs, labels, idx, num_paired=3)
    model = learner.model
    with torch.no_grad():
        feats = model.encode(inputs)
        got = learner.fused_loss(feats, batch)
        paired = model.fuse({m: feats[m][:3] for m in mods})
        extra = model.fuse({mods[0]: feats[mods[0]][3:]})
        expected = F.cross_entropy(torch.cat([paired, extra]), torch.cat([labels[mods[1]], labels[mods[0]][3:]]))
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_remix_combines_with_dus_policy_and_learns():
    env = DUSEnv(_data(), "baseline", epochs=4, batch_budget=32, sample_order="remix")
    env.reset(seed=1)
    done = False
    while not done:
        _, _, term, trunc, info = env.step(np.array([0.7, 0.3], dtype=np.float32))
        assert sum(info["batch_sizes"]) == 32
        assert all(np.isfinite(v) for v in info["train_loss"].values())
        done = term or trunc
    assert term and not info["diverged"]
    assert info["test"]["fused"]["accuracy"] > 0.5  # chance is 1/4


def test_remix_refuses_learner_without_mask_support():
    class NoMasks(BaselineLearner):
        name = "no-masks"
        supports_masks = False

    with pytest.raises(LearnerError, match="supports_masks"):
        DUSEnv(_data(), NoMasks(), sample_order="remix")


def test_empty_subset_falls_back_to_all_samples():
    order = DataRemix(warmup_epochs=0)
    order.setup(6, ("paired", "a", "b"), torch.device("cpu"), torch.Generator().manual_seed(0))
    confident_a = torch.tensor([[9.0, 0, 0, 0]] * 6)
    order.assign({"a": confident_a, "b": torch.zeros(6, 4)})  # b is never more confident
    assert order.subsets["a"].numel() == 0 and order.subsets["b"].numel() == 6
    assert sorted(order.next_pass("a", 0).tolist()) == list(range(6))


def test_bad_arguments():
    with pytest.raises(ValueError, match="warmup_epochs"):
        DataRemix(warmup_epochs=-1)
    with pytest.raises(ValueError, match="reassign_every"):
        DataRemix(reassign_every=0)
