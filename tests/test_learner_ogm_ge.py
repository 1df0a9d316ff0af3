import math

import pytest
import torch

from mmenv.learners import LearnerError, OGMGELearner, make_learner
from mmenv.learners.ogm_ge import ogm_coefficients
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


def test_coefficient_code_and_continuous_forms():
    scores = torch.tensor([0.6, 0.3])
    k = ogm_coefficients(scores, alpha=0.8, form="continuous")
    assert k[0].item() == pytest.approx(1 - math.tanh(0.8 * 1.0))  # rho = 2
    assert k[1].item() == 1.0
    k_code = ogm_coefficients(scores, alpha=0.8, form="code")
    assert k_code[0].item() == pytest.approx(1 - math.tanh(0.8 * 2.0))
    assert torch.equal(ogm_coefficients(scores, alpha=0.8), k_code)  # "code" is the default
    # Equal scores (rho = 1): both forms leave both modalities alone.
    for form in ("code", "continuous"):
        assert torch.equal(ogm_coefficients(torch.tensor([0.4, 0.4]), 0.8, form), torch.ones(2))


def test_coefficient_three_modalities_compares_leader_with_mean_of_others():
    k = ogm_coefficients(torch.tensor([0.2, 0.6, 0.4]), alpha=0.5)
    assert k[1].item() == pytest.approx(1 - math.tanh(0.5 * (0.6 / 0.3)))
    assert k[0].item() == 1.0 and k[2].item() == 1.0


def test_dominant_encoder_gradient_is_scaled_and_the_other_untouched():
    ds = tiny_data()
    batch = make_batch(ds, [24, 8], num_paired=8)
    mod = setup_learner(OGMGELearner(ge=False, alpha=2.0), ds)
    ref = setup_learner(OGMGELearner(ge=False, alpha=2.0, modulation_starts=1), ds)  # epoch 0 outside the window
    out = mod.train_step(batch)
    ref.train_step(batch)
    scores = torch.stack([out.extras["score_strong"], out.extras["score_weak"]])
    dom, other = ("strong", "weak") if scores[0] > scores[1] else ("weak", "strong")
    k = out.extras[f"coeff_{dom}"]
    assert 0.0 < k.item() < 1.0
    assert out.extras[f"coeff_{other}"].item() == 1.0
    for g, g0 in zip(encoder_grads(mod, dom), encoder_grads(ref, dom)):
        torch.testing.assert_close(g, k * g0)
    for g, g0 in zip(encoder_grads(mod, other), encoder_grads(ref, other)):
        torch.testing.assert_close(g, g0)


def test_ge_noise_comes_from_the_env_generator_and_has_the_gradient_std():
    ds = tiny_data()
    batch = make_batch(ds, [16, 16], num_paired=16)
    a = setup_learner(OGMGELearner(ge=True), ds)
    b = setup_learner(OGMGELearner(ge=True), ds)
    plain = setup_learner(OGMGELearner(ge=False, modulation_starts=1), ds)
    out = a.train_step(batch)
    b.train_step(batch)
    plain.train_step(batch)
    for g, g2 in zip(encoder_grads(a, "weak"), encoder_grads(b, "weak")):
        torch.testing.assert_close(g, g2)  # same generator seed, same noise
    coeff = out.extras["coeff_weak"]
    w, w0 = encoder_grads(a, "weak")[0], encoder_grads(plain, "weak")[0]
    noise = w - coeff * w0
    assert noise.abs().sum() > 0
    assert noise.std().item() == pytest.approx(w0.std().item(), rel=0.1)


def test_modulation_window_includes_both_ends_as_the_authors_code():
    ds = tiny_data()
    learner = setup_learner(OGMGELearner(ge=False, alpha=5.0, modulation_starts=1, modulation_ends=2), ds)
    modulated = {}
    for epoch in range(4):
        out = learner.train_step(make_batch(ds, [16, 16], num_paired=16, epoch=epoch, seed=epoch))
        modulated[epoch] = bool((torch.stack([out.extras["coeff_strong"], out.extras["coeff_weak"]]) < 1).any())
    assert modulated == {0: False, 1: True, 2: True, 3: False}
    assert learner.modulating(2) and not learner.modulating(3)
    assert setup_learner(OGMGELearner(), ds).modulating(10**6)  # ends=None: to the end


def test_ge_noise_std_has_the_authors_epsilon():
    """A parameter whose gradient is exactly zero still gets N(0, 1e-8) noise (std(g) + 1e-8)."""
    ds = tiny_data()
    batch = make_batch(ds, [16, 16], num_paired=16)
    batch.inputs["weak"] = torch.zeros_like(batch.inputs["weak"])  # first-layer weight grad = 0
    learner = setup_learner(OGMGELearner(ge=True), ds)
    plain = setup_learner(OGMGELearner(ge=False, modulation_starts=1), ds)
    learner.train_step(batch)
    plain.train_step(batch)
    w0 = encoder_grads(plain, "weak")[0]
    assert w0.dim() == 2 and torch.count_nonzero(w0) == 0
    w = encoder_grads(learner, "weak")[0]
    assert torch.count_nonzero(w) == w.numel()
    assert w.std().item() == pytest.approx(1e-8, rel=0.1)


def test_conv_only_filter_leaves_mlp_encoders_unmodulated():
    ds = tiny_data()
    batch = make_batch(ds, [24, 8], num_paired=8)
    conv = setup_learner(OGMGELearner(alpha=5.0, params="conv"), ds)
    ref = setup_learner(OGMGELearner(ge=False, modulation_starts=1), ds)
    out = conv.train_step(batch)
    ref.train_step(batch)
    assert min(out.extras["coeff_strong"].item(), out.extras["coeff_weak"].item()) < 1.0
    for m in ds.modality_names:  # the MLP encoders have no 4-D parameter: nothing is touched
        for g, g0 in zip(encoder_grads(conv, m), encoder_grads(ref, m)):
            torch.testing.assert_close(g, g0)


def test_unimodal_logits_sum_to_fused_logits():
    ds = tiny_data()
    learner = setup_learner(OGMGELearner(), ds)
    inputs = {m: ds.test.gather(m, torch.arange(10)) for m in ds.modality_names}
    pred = learner.predict(inputs)
    torch.testing.assert_close(sum(pred.per_modality.values()), pred.fused)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="coefficient"):
        OGMGELearner(coefficient="other")
    with pytest.raises(ValueError, match="params"):
        OGMGELearner(params="linear")
    with pytest.raises(LearnerError, match="supports 2"):
        make_learner("ogm-ge").check_modalities(["only"])


@pytest.mark.parametrize("action", TWO_MODALITY_ACTIONS)
def test_trains_above_chance(action):
    assert train_episode(make_learner("ogm-ge"), action)["fused"]["accuracy"] > CHANCE + 0.3


@pytest.mark.parametrize("action", THREE_MODALITY_ACTIONS)
def test_trains_above_chance_three_modalities(action):
    assert train_episode(make_learner("ogm-ge"), action, num_modalities=3)["fused"]["accuracy"] > CHANCE + 0.3
