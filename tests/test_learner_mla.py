import copy

import pytest
import torch

import mmenv.learners.mla as mla_module
from mmenv.learners import LearnerError, MLALearner, make_learner
from mmenv.learners.common import entropy_weighted_fusion
from mmenv.learners.mla import GradientProjector
from tests.learner_utils import (
    CHANCE,
    THREE_MODALITY_ACTIONS,
    TWO_MODALITY_ACTIONS,
    make_batch,
    setup_learner,
    tiny_data,
    train_episode,
)


def test_one_optimizer_step_per_modality_through_one_shared_head():
    ds = tiny_data(num_modalities=3)
    learner = setup_learner(MLALearner(), ds)
    model = learner.model
    assert model.fusion is None and len(model.heads) == 0  # only the shared head classifies
    head_snapshots = []
    step = learner.optimizer.step

    def recording_step(*args, **kwargs):
        # Exactly one encoder has a gradient at each step: modalities are trained in turn.
        with_grad = [m for m in model.modalities if model.encoders[m].net[1].weight.grad is not None]
        head_snapshots.append((with_grad, model.head.weight.detach().clone()))
        return step(*args, **kwargs)

    learner.optimizer.step = recording_step
    out = learner.train_step(make_batch(ds, [20, 8, 4], num_paired=4))
    assert [w for w, _ in head_snapshots] == [["strong"], ["weak1"], ["weak2"]]
    # The shared head moved between the modalities' steps.
    assert not torch.equal(head_snapshots[0][1], head_snapshots[1][1])
    assert learner.steps_taken == 3
    # The very first step of training is not projected (the authors' exp_count == 0).
    assert torch.linalg.matrix_norm(learner.projector.P).item() == pytest.approx(1.0, abs=1e-5)
    assert {m: z.shape[0] for m, z in out.logits.items()} == {"strong": 20, "weak1": 8, "weak2": 4}
    assert torch.allclose(out.losses["total"], sum(out.losses[m] for m in model.modalities))


def test_projector_update_follows_the_rls_formula_and_stays_normalised():
    torch.manual_seed(0)
    proj = GradientProjector(5, torch.device("cpu"))
    x = torch.randn(8, 5)
    proj.update(x, batch_idx=3, num_batches=10)
    alpha = 0.1 ** (3 / 10 + 1)
    r = x.mean(0, keepdim=True)
    k = r.T  # P = I
    expected = torch.eye(5) - k @ k.T / (alpha + r @ k)
    expected = expected / expected.norm()
    torch.testing.assert_close(proj.P, expected)
    w = torch.nn.Parameter(torch.randn(3, 5))
    w.grad = torch.randn(3, 5)
    g = w.grad.clone()
    proj.project(w)
    torch.testing.assert_close(w.grad, g @ expected.T)


def test_first_step_is_plain_later_steps_are_projected(monkeypatch):
    ds = tiny_data()
    learner = setup_learner(MLALearner(), ds)
    calls = []
    update = mla_module.projector_update
    monkeypatch.setattr(mla_module, "projector_update",
                        lambda P, r, alpha: (calls.append(learner.steps_taken), update(P, r, alpha))[1])
    learner.train_step(make_batch(ds, [16, 16], num_paired=16))
    learner.train_step(make_batch(ds, [16, 16], num_paired=16, iteration=1))
    assert len(calls) == 3  # steps 1..3 projected, step 0 (the first of training) not


def test_projector_uses_the_iteration_within_the_epoch_and_the_stepping_modality_features(monkeypatch):
    ds = tiny_data()
    learner = setup_learner(MLALearner(), ds, iters_per_epoch=10)
    batch = make_batch(ds, [20, 12], num_paired=8, epoch=1, iteration=13)
    with torch.no_grad():  # each encoder changes only at its own step, after its update
        expected = {m: learner.model.encoders[m](batch.inputs[m]) for m in ds.modality_names}
    calls = []
    update = mla_module.projector_update
    monkeypatch.setattr(mla_module, "projector_update",
                        lambda P, r, alpha: (calls.append((r.clone(), alpha)), update(P, r, alpha))[1])
    learner.train_step(batch)
    assert [alpha for _, alpha in calls] == [0.1 ** (3 / 10 + 1)] * 2  # 13 % 10 = batch 3 of 10
    for (r, _), m in zip(calls, ds.modality_names):
        torch.testing.assert_close(r, expected[m].mean(0, keepdim=True))


def test_state_dict_resumes_the_projection_schedule():
    """A learner restored from ``state_dict`` alone takes exactly the saved learner's next step."""
    ds = tiny_data()
    saved = setup_learner(MLALearner(), ds)
    saved.train_step(make_batch(ds, [16, 16], num_paired=16))
    restored = setup_learner(MLALearner(), ds, seed=1)
    restored.load_state_dict(copy.deepcopy(saved.state_dict()))  # a copy, as a checkpoint is
    assert restored.steps_taken == saved.steps_taken == 2
    batch = make_batch(ds, [16, 16], num_paired=16, iteration=1, seed=1)
    saved.train_step(batch)
    restored.train_step(batch)
    torch.testing.assert_close(restored.projector.P, saved.projector.P)
    for p, q in zip(restored.model.parameters(), saved.model.parameters()):
        torch.testing.assert_close(p, q)


def test_projector_stays_finite_and_frobenius_normalised_during_training():
    ds = tiny_data()
    learner = setup_learner(MLALearner(), ds)
    for it in range(15):
        learner.train_step(make_batch(ds, [24, 8], num_paired=8, iteration=it, seed=it))
        P = learner.projector.P
        assert torch.isfinite(P).all()
        assert torch.linalg.matrix_norm(P).item() == pytest.approx(1.0, abs=1e-5)


def test_fusion_weights_sum_to_one_and_favour_the_confident_modality():
    confident = torch.tensor([[8.0, 0.0, 0.0, 0.0], [0.0, 0.0, 6.0, 0.0]])
    flat = torch.tensor([[0.1, 0.0, 0.2, 0.0], [0.0, 0.3, 0.0, 0.1]])
    fused, w = entropy_weighted_fusion({"a": flat, "b": confident}, ["a", "b"])
    torch.testing.assert_close(w.sum(1), torch.ones(2))
    assert (w[:, 1] > w[:, 0]).all()
    torch.testing.assert_close(fused, w[:, :1] * flat + w[:, 1:] * confident)
    assert fused.argmax(1).tolist() == [0, 2]


def test_predict_uses_entropy_weighted_fusion():
    ds = tiny_data()
    learner = setup_learner(MLALearner(), ds)
    inputs = {m: ds.test.gather(m, torch.arange(12)) for m in ds.modality_names}
    pred = learner.predict(inputs)
    fused, _ = entropy_weighted_fusion(pred.per_modality, ds.modality_names)
    torch.testing.assert_close(pred.fused, fused)


def test_unequal_feature_widths_are_refused():
    ds = tiny_data()
    learner = MLALearner(encoder_kwargs={"strong": {"out_dim": 32}})
    with pytest.raises(LearnerError, match="same feature width"):
        setup_learner(learner, ds)


def test_needs_no_paired_data():
    assert MLALearner.requires_paired is False


@pytest.mark.parametrize("action", TWO_MODALITY_ACTIONS)
def test_trains_above_chance(action):
    assert train_episode(make_learner("mla"), action)["fused"]["accuracy"] > CHANCE + 0.3


@pytest.mark.parametrize("action", THREE_MODALITY_ACTIONS)
def test_trains_above_chance_three_modalities(action):
    assert train_episode(make_learner("mla"), action, num_modalities=3)["fused"]["accuracy"] > CHANCE + 0.3
