import pytest
import torch
from torch.nn import functional as F

from mmenv.learners import PMRLearner, make_learner
from mmenv.learners.pmr import pce_weights, prototype_logits
from tests.learner_utils import (
    CHANCE,
    THREE_MODALITY_ACTIONS,
    TWO_MODALITY_ACTIONS,
    make_batch,
    setup_learner,
    tiny_data,
    train_episode,
)


def class_means(feats, labels, num_classes):
    return torch.stack([feats[labels == k].mean(0) for k in range(num_classes)])


def test_prototypes_are_class_means_of_the_epoch_features():
    ds = tiny_data()
    learner = setup_learner(PMRLearner(), ds)
    batches = [make_batch(ds, [48, 16], num_paired=16, seed=s) for s in range(3)]
    feats = {m: [] for m in ds.modality_names}
    labels = {m: [] for m in ds.modality_names}
    for b in batches:
        with torch.no_grad():  # features the step sees (before its update)
            for m in ds.modality_names:
                feats[m].append(learner.model.encoders[m](b.inputs[m]))
                labels[m].append(b.labels[m])
        learner.train_step(b)
    learner.on_epoch_end(0)
    for m in ds.modality_names:
        expected = class_means(torch.cat(feats[m]), torch.cat(labels[m]), ds.num_classes)
        torch.testing.assert_close(learner.prototypes[m], expected)
        assert learner.class_counts[m].sum() == 0  # the next epoch starts afresh


def test_prototypes_enter_the_loss():
    ds = tiny_data()
    learner = setup_learner(PMRLearner(alpha=1.0, mu=0.0, loss_scale="mean"), ds)
    learner.epochs_done = 1
    learner.prototypes = {m: torch.randn(ds.num_classes, 64, generator=torch.Generator().manual_seed(1))
                          for m in ds.modality_names}
    batch = make_batch(ds, [16, 16], num_paired=16)
    with torch.no_grad():
        f = {m: learner.model.encoders[m](batch.inputs[m]) for m in ds.modality_names}
    out = learner.train_step(batch)
    for m in ds.modality_names:
        logits = prototype_logits(f[m], learner.prototypes[m])
        torch.testing.assert_close(out.logits[m], logits)
        torch.testing.assert_close(out.losses[m], F.cross_entropy(logits, batch.labels[m]))
    # The lagging modality's PCE is weighted by alpha * (s_max / s_m - 1) > 0, the leader's by 0.
    betas = {m: out.extras[f"beta_{m}"].item() for m in ds.modality_names}
    scores = {m: out.extras[f"score_{m}"].item() for m in ds.modality_names}
    lead = max(scores, key=scores.get)
    lag = min(scores, key=scores.get)
    assert betas[lead] == 0.0
    assert betas[lag] == pytest.approx(scores[lead] / scores[lag] - 1.0, rel=1e-5)
    expected_total = out.losses["fused"] + betas[lag] * out.losses[lag]
    assert out.losses["total"].item() == pytest.approx(expected_total.item(), rel=1e-5)


def test_entropy_regularisation_only_in_early_epochs_and_only_for_the_leader():
    ds = tiny_data()
    batch = make_batch(ds, [16, 16], num_paired=16)
    a = setup_learner(PMRLearner(mu=0.5, entropy_epochs=1), ds)
    b = setup_learner(PMRLearner(mu=0.0), ds)
    ta, tb = a.train_step(batch).losses["total"], b.train_step(batch).losses["total"]
    assert ta < tb  # minus mu * entropy of the leader
    late = make_batch(ds, [16, 16], num_paired=16, epoch=1)
    c = setup_learner(PMRLearner(mu=0.5, entropy_epochs=1), ds)
    d = setup_learner(PMRLearner(mu=0.0), ds)
    assert c.train_step(late).losses["total"].item() == pytest.approx(d.train_step(late).losses["total"].item())


def test_pce_weights_ratio_and_constant_forms():
    s = torch.tensor([0.6, 0.3, 0.2])
    torch.testing.assert_close(pce_weights(s, 0.5), torch.tensor([0.0, 0.5 * 1.0, 0.5 * 2.0]))
    torch.testing.assert_close(pce_weights(s, 0.5, "constant"), torch.tensor([0.0, 0.5, 0.5]))
    torch.testing.assert_close(pce_weights(torch.tensor([0.4, 0.4]), 1.0), torch.zeros(2))
    with pytest.raises(ValueError, match="coefficient"):
        PMRLearner(coefficient="other")


def test_prototype_distance_gradient_is_finite_on_the_prototype():
    f = torch.ones(1, 3, requires_grad=True)
    prototype_logits(f, torch.ones(2, 3)).sum().backward()
    assert torch.isfinite(f.grad).all()


@pytest.mark.parametrize("action", TWO_MODALITY_ACTIONS)
def test_trains_above_chance(action):
    assert train_episode(make_learner("pmr"), action)["fused"]["accuracy"] > CHANCE + 0.3


@pytest.mark.parametrize("action", THREE_MODALITY_ACTIONS)
def test_trains_above_chance_three_modalities(action):
    assert train_episode(make_learner("pmr"), action, num_modalities=3)["fused"]["accuracy"] > CHANCE + 0.3
