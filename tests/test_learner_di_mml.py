import pytest
import torch

from mmenv.learners import DIMMLLearner, LearnerError, make_learner
from mmenv.learners.di_mml import certainty_weighted_fusion, unidirectional_contrastive
from tests.learner_utils import (
    CHANCE,
    THREE_MODALITY_ACTIONS,
    TWO_MODALITY_ACTIONS,
    make_batch,
    setup_learner,
    tiny_data,
    train_episode,
)


def grad_norms(learner):
    model = learner.model
    norms = {m: sum(p.grad.norm() for p in model.encoders[m].parameters() if p.grad is not None)
             for m in model.modalities}
    norms["head"] = model.head.weight.grad.norm() if model.head.weight.grad is not None else torch.tensor(0.0)
    return {k: float(v) for k, v in norms.items()}


def test_paired_and_unpaired_losses_both_produce_gradients():
    ds = tiny_data()
    learner = setup_learner(DIMMLLearner(), ds)
    batch = make_batch(ds, [24, 8], num_paired=8)
    feats = learner.model.encode(batch.inputs)
    learner.paired_loss(feats, batch).backward()
    paired = grad_norms(learner)
    assert paired["strong"] > 0 and paired["weak"] > 0  # each learns from the other on some dimensions
    assert paired["head"] == 0.0  # the contrastive term does not train the head

    learner.optimizer.zero_grad(set_to_none=True)
    unpaired = {m: x[8:] for m, x in batch.inputs.items()}
    logits = {m: learner.model.head(learner.model.encoders[m](x)) for m, x in unpaired.items()}
    losses = learner.unimodal_loss(logits, {m: y[8:] for m, y in batch.labels.items()})
    sum(losses.values()).backward()
    assert grad_norms(learner)["strong"] > 0 and grad_norms(learner)["head"] > 0


def test_contrastive_term_is_unidirectional_and_dimension_masked():
    torch.manual_seed(0)
    student = torch.randn(6, 4, requires_grad=True)
    teacher = torch.randn(6, 4, requires_grad=True)
    mask = torch.tensor([1.0, 1.0, 0.0, 0.0])
    unidirectional_contrastive(student, teacher, mask, tau=0.5).backward()
    assert teacher.grad is None  # knowledge flows one way
    assert student.grad[:, :2].abs().sum() > 0
    assert student.grad[:, 2:].abs().sum() == 0  # dimensions outside the mask are untouched


def test_step_reports_both_loss_parts():
    ds = tiny_data()
    learner = setup_learner(DIMMLLearner(contrastive_weight=0.5), ds)
    out = learner.train_step(make_batch(ds, [20, 12], num_paired=12))
    expected = out.losses["strong"] + out.losses["weak"] + 0.5 * out.losses["contrastive"]
    torch.testing.assert_close(out.losses["total"], expected)
    assert out.losses["contrastive"] > 0


def test_fused_prediction_mean_option_is_the_mean_of_the_unimodal_logits():
    ds = tiny_data()
    learner = setup_learner(DIMMLLearner(fusion="mean"), ds)
    pred = learner.predict({m: ds.test.gather(m, torch.arange(9)) for m in ds.modality_names})
    torch.testing.assert_close(pred.fused, (pred.per_modality["strong"] + pred.per_modality["weak"]) / 2)


def test_certainty_weighting_follows_the_authors_formula():
    a = torch.tensor([[4.0, 0.0, 0.0], [0.1, 0.0, 0.2]])
    b = torch.tensor([[0.0, 0.5, 0.0], [0.0, 0.0, 5.0]])
    fused, w = certainty_weighted_fusion({"a": a, "b": b}, ["a", "b"], temperature=0.5)
    conf = torch.stack([torch.softmax(a, 1).max(1).values, torch.softmax(b, 1).max(1).values])  # [m, B]
    expected_w = torch.softmax(conf / 0.5, dim=0).T  # the authors' softmax over modalities
    torch.testing.assert_close(w, expected_w)
    torch.testing.assert_close(fused, expected_w[:, :1] * a + expected_w[:, 1:] * b)
    assert w[0, 0] > w[0, 1] and w[1, 1] > w[1, 0]  # the more certain modality weighs more, per sample


def test_predict_uses_certainty_weighting_by_default():
    ds = tiny_data()
    learner = setup_learner(DIMMLLearner(fusion_temperature=0.3), ds)
    pred = learner.predict({m: ds.test.gather(m, torch.arange(9)) for m in ds.modality_names})
    fused, _ = certainty_weighted_fusion(pred.per_modality, ds.modality_names, 0.3)
    torch.testing.assert_close(pred.fused, fused)
    with pytest.raises(ValueError, match="fusion"):
        DIMMLLearner(fusion="max")
    with pytest.raises(ValueError, match="fusion_temperature"):
        DIMMLLearner(fusion_temperature=0.0)


def test_unequal_feature_widths_are_refused():
    with pytest.raises(LearnerError, match="same feature width"):
        setup_learner(DIMMLLearner(encoder_kwargs={"weak": {"out_dim": 16}}), tiny_data())


@pytest.mark.parametrize("action", TWO_MODALITY_ACTIONS)
def test_trains_above_chance(action):
    assert train_episode(make_learner("di-mml"), action)["fused"]["accuracy"] > CHANCE + 0.3


@pytest.mark.parametrize("action", THREE_MODALITY_ACTIONS)
def test_trains_above_chance_three_modalities(action):
    assert train_episode(make_learner("di-mml"), action, num_modalities=3)["fused"]["accuracy"] > CHANCE + 0.3
