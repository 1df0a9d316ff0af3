import math

import pytest
import torch

from mmenv.learners import AGMLearner, make_learner
from mmenv.learners.agm import agm_coefficients, masked_responses, shapley_responses
from tests.learner_utils import (CHANCE, THREE_MODALITY_ACTIONS, TWO_MODALITY_ACTIONS, encoder_grads, make_batch,
                                 setup_learner, tiny_data, train_episode)


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
    mod = setup_learner(AGMLearner(alpha=3.0, response_momentum=0.5), ds)
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


@pytest.mark.parametrize("action", TWO_MODALITY_ACTIONS)
def test_trains_above_chance(action):
    assert train_episode(make_learner("agm"), action)["fused"]["accuracy"] > CHANCE + 0.3


@pytest.mark.parametrize("action", THREE_MODALITY_ACTIONS)
def test_trains_above_chance_three_modalities(action):
    assert train_episode(make_learner("agm"), action, num_modalities=3)["fused"]["accuracy"] > CHANCE + 0.3
