import math

import pytest
import torch

from mmenv.learners import AGMLearner, make_learner
from mmenv.learners.agm import agm_code_coefficients, agm_coefficients, ce_scores, masked_responses, shapley_responses
from tests.learner_utils import (
    CHANCE,
    THREE_MODALITY_ACTIONS,
    TWO_MODALITY_ACTIONS,
    encoder_grads,
    make_batch,
    setup_learner,
    tiny_data,
    train_episode,
)


def test_coefficients_respond_to_the_gap():
    kappa, gap = agm_coefficients(torch.tensor([0.6, 0.3]), alpha=1.0)
    torch.testing.assert_close(gap, torch.tensor([0.3, -0.3]))
    assert kappa[0].item() == pytest.approx(math.exp(-0.3)) and kappa[1].item() == pytest.approx(math.exp(0.3))
    wider, _ = agm_coefficients(torch.tensor([0.8, 0.2]), alpha=1.0)
    assert wider[0] < kappa[0] < 1.0 < kappa[1] < wider[1]  # a larger gap modulates harder
    equal, _ = agm_coefficients(torch.tensor([0.4, 0.4, 0.4]), alpha=1.0)
    torch.testing.assert_close(equal, torch.ones(3))


def test_shapley_responses_are_efficient_and_match_masking_for_the_linear_head():
    ds = tiny_data(num_modalities=3)
    learner = setup_learner(AGMLearner(), ds)
    with torch.no_grad():
        feats = learner.model.encode({m: ds.test.gather(m, torch.arange(7)) for m in ds.modality_names})
        shap = shapley_responses(learner.model, feats)
        torch.testing.assert_close(sum(shap.values()), learner.model.fuse(feats))
        masked = masked_responses(learner.model, feats)
    for m in ds.modality_names:
        torch.testing.assert_close(shap[m], masked[m])


def test_encoder_gradients_scaled_by_the_running_gap_coefficients():
    ds = tiny_data()
    batch = make_batch(ds, [24, 8], num_paired=8)
    mod = setup_learner(AGMLearner(alpha=3.0, response_momentum=0.5, coefficient="gap"), ds)
    ref = setup_learner(AGMLearner(alpha=0.0), ds)
    mod.running = torch.tensor([0.9, 0.1])  # a history in which "strong" led by far
    out = mod.train_step(batch)
    ref.train_step(batch)
    responses = torch.stack([out.extras["response_strong"], out.extras["response_weak"]])
    running = 0.5 * torch.tensor([0.9, 0.1]) + 0.5 * responses
    torch.testing.assert_close(mod.running, running)
    kappa, _ = agm_coefficients(running, 3.0)
    assert kappa[0] < 1.0 < kappa[1]
    for j, m in enumerate(ds.modality_names):
        assert out.extras[f"coeff_{m}"].item() == pytest.approx(kappa[j].item())
        for g, g0 in zip(encoder_grads(mod, m), encoder_grads(ref, m)):
            torch.testing.assert_close(g, kappa[j] * g0)


def test_code_coefficients_follow_the_authors_two_modality_formula():
    s_a, s_v, S_a, S_v, alpha = 0.4, 1.3, 0.7, 1.0, 0.5  # audio leads now by more than on average
    kappa, diff = agm_code_coefficients(torch.tensor([s_a, s_v]), torch.tensor([S_a, S_v]), alpha)
    ratio_a, ratio_v = math.exp(s_v - s_a), math.exp(s_a - s_v)
    opt_a, opt_v = math.exp(S_v - S_a), math.exp(S_a - S_v)
    assert kappa[0].item() == pytest.approx(math.exp(alpha * min(opt_a - ratio_a, 10)), rel=1e-5)
    assert kappa[1].item() == pytest.approx(math.exp(alpha * min(opt_v - ratio_v, 10)), rel=1e-5)
    assert kappa[0] < 1.0 < kappa[1]
    capped, _ = agm_code_coefficients(torch.tensor([5.0, 0.0]), torch.tensor([0.0, 5.0]), 1.0)
    assert capped[0].item() == pytest.approx(math.exp(10.0))  # min(eta - r, 10)
    # Three modalities: the ratio compares a modality with the mean of the others.
    k3, _ = agm_code_coefficients(torch.tensor([0.2, 0.6, 1.0]), torch.zeros(3), 1.0)
    assert k3[0].item() == pytest.approx(math.exp(1.0 - math.exp(0.8 - 0.2)), rel=1e-5)


def test_ce_scores_clamp_the_probability():
    logits = {"a": torch.tensor([[0.0, 0.0], [100.0, -100.0]]), "b": torch.tensor([[0.0, 0.0], [0.0, 0.0]])}
    labels = {"a": torch.tensor([0, 1]), "b": torch.tensor([0, 1])}
    s = ce_scores(logits, labels, 2, ["a", "b"])
    assert s[0].item() == pytest.approx((math.log(2) - math.log(1e-8)) / 2, rel=1e-5)
    assert s[1].item() == pytest.approx(math.log(2), rel=1e-5)


def test_code_form_scales_encoder_gradients_and_keeps_the_running_mean_of_scores():
    ds = tiny_data()
    mod = setup_learner(AGMLearner(alpha=0.5, coefficient="code"), ds)
    ref = setup_learner(AGMLearner(alpha=0.0), ds)
    scores = []
    for it in range(3):
        batch = make_batch(ds, [24, 8], num_paired=8, iteration=it, seed=it)
        means_before = mod.score_means.clone()
        out = mod.train_step(batch)
        ref.train_step(batch)
        s = torch.stack([out.extras["response_strong"], out.extras["response_weak"]])
        kappa, _ = agm_code_coefficients(s, means_before, 0.5)
        for j, m in enumerate(ds.modality_names):
            assert out.extras[f"coeff_{m}"].item() == pytest.approx(kappa[j].item())
        scores.append(s)
        if it == 0:  # same start, so the gradients compare exactly on the first step
            for j, m in enumerate(ds.modality_names):
                for g, g0 in zip(encoder_grads(mod, m), encoder_grads(ref, m)):
                    torch.testing.assert_close(g, kappa[j] * g0)
    torch.testing.assert_close(mod.score_means, torch.stack(scores).mean(0))
    assert mod.score_count == 3
    state = mod.state_dict()
    assert state["score_count"] == 3 and torch.equal(state["score_means"], mod.score_means)
    assert AGMLearner().coefficient == "code"  # the authors' rule is the default
    with pytest.raises(ValueError, match="coefficient"):
        AGMLearner(coefficient="other")


@pytest.mark.parametrize("action", TWO_MODALITY_ACTIONS)
def test_trains_above_chance(action):
    assert train_episode(make_learner("agm"), action)["fused"]["accuracy"] > CHANCE + 0.3


@pytest.mark.parametrize("action", THREE_MODALITY_ACTIONS)
def test_trains_above_chance_three_modalities(action):
    assert train_episode(make_learner("agm"), action, num_modalities=3)["fused"]["accuracy"] > CHANCE + 0.3


@pytest.mark.parametrize("num_modalities", [2, 3])
def test_gap_form_trains_above_chance(num_modalities):
    action = [1 / num_modalities] * num_modalities
    test = train_episode(make_learner("agm", coefficient="gap"), action, num_modalities=num_modalities)
    assert test["fused"]["accuracy"] > CHANCE + 0.3
