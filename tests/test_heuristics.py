"""Heuristic policies give the documented proportions on hand-made observations."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
from mmenv.agents import DiscrepancyPolicy, DUSHPolicy, FixedRatioPolicy, PolicyError, UniformPolicy, make_policy
from mmenv.agents.heuristics import ratio_proportions

FAKE_ENV = SimpleNamespace(modalities=("audio", "video"), epochs=10)


def test_uniform_any_number_of_modalities():
    np.testing.assert_allclose(UniformPolicy().act(np.array([0.9, 0.1]), {}), [0.5, 0.5])
    np.testing.assert_allclose(UniformPolicy().act(np.array([0.9, 0.1, 0.3]), {}), [1 / 3] * 3)


def test_dush_start_and_end_of_training():
    pol = DUSHPolicy(epochs=10)
    obs = np.array([0.6, 0.2])  # modality 0 dominant
    # T = 0: dominant batch is half of the other's -> 1/3 vs 2/3.
    np.testing.assert_allclose(pol.act(obs, {"epoch": 0}), [1 / 3, 2 / 3])
    # T = E: equal batches.
    np.testing.assert_allclose(pol.act(obs, {"epoch": 10}), [0.5, 0.5])
    # T = E/2: ratio = 0.5 * e^(ln 2 / 2) = sqrt(0.5).
    r = math.sqrt(0.5)
    np.testing.assert_allclose(pol.act(obs, {"epoch": 5}), [r / (1 + r), 1 / (1 + r)])
    # Past E the ratio is capped at 1.
    np.testing.assert_allclose(pol.act(obs, {"epoch": 20}), [0.5, 0.5])


def test_dush_ratio_is_monotone_and_follows_formula():
    pol = DUSHPolicy(epochs=8, beta=0.5)
    ratios = [pol.ratio(t) for t in range(9)]
    assert all(b > a for a, b in zip(ratios, ratios[1:]))
    alpha = math.log(2) / 8
    assert ratios[3] == pytest.approx(0.5 * math.exp(alpha * 3))


def test_dush_three_modalities_and_dominant_follows_observation():
    pol = DUSHPolicy(epochs=4)
    p = pol.act(np.array([0.1, 0.2, 0.5]), {"epoch": 0})
    np.testing.assert_allclose(p, [0.4, 0.4, 0.2])  # 0.5x + 2x = 1 -> x = 0.4


def test_dush_epochs_and_named_dominant_from_env():
    pol = DUSHPolicy(dominant="video")
    pol.reset(FAKE_ENV)
    assert pol.epochs == 10
    # video named dominant although audio has the larger score
    np.testing.assert_allclose(pol.act(np.array([0.9, 0.1]), {"epoch": 0}), [2 / 3, 1 / 3])


def test_dush_errors_are_clear():
    with pytest.raises(PolicyError, match="epochs"):
        DUSHPolicy().act(np.array([0.5, 0.2]), {"epoch": 0})
    with pytest.raises(PolicyError, match="not one of"):
        DUSHPolicy(dominant="text").reset(FAKE_ENV)
    with pytest.raises(PolicyError, match="beta"):
        DUSHPolicy(beta=1.5)


def test_fixed_ratio_halves_the_dominant():
    pol = FixedRatioPolicy()
    np.testing.assert_allclose(pol.act(np.array([0.2, 0.7]), {}), [2 / 3, 1 / 3])
    np.testing.assert_allclose(pol.act(np.array([0.7, 0.2, 0.1]), {}), [0.2, 0.4, 0.4])
    named = FixedRatioPolicy(dominant=1)
    np.testing.assert_allclose(named.act(np.array([0.9, 0.1]), {}), [2 / 3, 1 / 3])
    # ratio 0.5 means dominant batch == half of each other's batch
    p = ratio_proportions(3, 0, 0.5)
    assert p[0] == pytest.approx(0.5 * p[1]) and p[1] == pytest.approx(p[2])


def test_discrepancy_policy_gives_less_to_the_leader():
    pol = DiscrepancyPolicy()
    p = pol.act(np.array([0.6, 0.2]), {})
    # shares (0.75, 0.25) / tau 0.25 -> softmax(-3, -1)
    e = math.exp(-2)
    np.testing.assert_allclose(p, [e / (1 + e), 1 / (1 + e)])
    np.testing.assert_allclose(pol.act(np.array([0.3, 0.3]), {}), [0.5, 0.5])
    # scale-free: the same shares give the same proportions
    np.testing.assert_allclose(pol.act(np.array([0.06, 0.02]), {}), p)
    # monotone: the more modality 0 leads, the less it gets
    shares = [pol.act(np.array([s, 0.2]), {})[0] for s in (0.1, 0.2, 0.4, 0.8)]
    assert all(b < a for a, b in zip(shares, shares[1:]))


def test_discrepancy_inverse_form():
    pol = DiscrepancyPolicy(form="inverse", eps=0.0)
    np.testing.assert_allclose(pol.act(np.array([0.6, 0.2]), {}), [0.25, 0.75])
    with pytest.raises(PolicyError, match="form"):
        DiscrepancyPolicy(form="log")


@pytest.mark.parametrize("name", ["uniform", "dus-h", "fixed", "discrepancy"])
@pytest.mark.parametrize("obs", [[0.0, 0.0], [1.0, 1.0], [1e-9, 0.0], [1.0, 0.0], [0.0, 0.3, 1.0], [np.nan, 0.2]])
def test_outputs_are_valid_proportions(name, obs):
    pol = make_policy(name, epochs=5) if name == "dus-h" else make_policy(name)
    p = pol.act(np.array(obs), {"epoch": 2})
    assert p.shape == (len(obs),)
    assert np.all(np.isfinite(p)) and np.all(p >= 0) and np.all(p <= 1)
    assert p.sum() == pytest.approx(1.0)


def test_dominant_per_sample_under_sum_discrepancy():
    from mmenv.agents.heuristics import DUSHPolicy, FixedRatioPolicy

    class Env:
        modalities = ("strong", "weak")
        epochs = 4

        class tracker:
            mode = "sum"

    # The weak modality got 43 of 64 rows: its raw score is larger, per sample it is not.
    obs = np.array([0.20, 0.25])
    info = {"batch_sizes": [21, 43], "iteration": 63, "epoch": 1}
    for pol in (DUSHPolicy(), FixedRatioPolicy()):
        pol.reset(Env)
        assert pol.dominant_index(obs, info) == 0  # 0.20/21 > 0.25/43
    raw = FixedRatioPolicy(dominant_by="observation")
    raw.reset(Env)
    assert raw.dominant_index(obs, info) == 1
    # Mean batch sizes are averaged over iterations: after a second step with [43, 21]
    # both averaged 32, so the raw comparison decides.
    pol = FixedRatioPolicy()
    pol.reset(Env)
    pol.dominant_index(obs, info)
    assert pol.dominant_index(np.array([0.2, 0.25]), {"batch_sizes": [43, 21], "iteration": 126}) == 1
    Env.tracker.mode = "mean"
    pol.reset(Env)
    assert pol.dominant_index(obs, info) == 1  # "mean" scores are per sample already


# ---------------------------------------------------------------------- val-gain (reads the run)
class _ScriptedEnv:
    """An environment stand-in whose per-modality validation accuracies follow a script."""

    def __init__(self, modalities, accuracies):
        self.modalities = list(modalities)
        self._script = iter(accuracies)

    def evaluate(self, split):
        assert split == "val"
        accs = next(self._script)
        return {"fused": {"accuracy": 0.5}, **{m: {"accuracy": a} for m, a in zip(self.modalities, accs)}}


def test_val_gain_gives_the_rising_modality_its_share():
    from mmenv.agents.heuristics import ValGainPolicy

    policy = make_policy("val-gain", share=0.8)
    assert isinstance(policy, ValGainPolicy)
    env = _ScriptedEnv(["a", "b"], [(0.6, 0.3), (0.7, 0.32), (0.71, 0.40), (0.71, 0.40)])
    policy.reset(env)
    obs = np.zeros(2)
    np.testing.assert_allclose(policy.act(obs, {}), [0.5, 0.5])     # first step: no change known
    np.testing.assert_allclose(policy.act(obs, {}), [0.8, 0.2])     # a rose 0.10, b 0.02
    np.testing.assert_allclose(policy.act(obs, {}), [0.2, 0.8])     # now b rises (0.08 vs 0.01)
    np.testing.assert_allclose(policy.act(obs, {}), [0.5, 0.5])     # a tie: uniform
    three = ValGainPolicy(share=0.6)
    three.reset(_ScriptedEnv(["a", "b", "c"], [(0.3, 0.3, 0.3), (0.3, 0.31, 0.5)]))
    three.act(np.zeros(3), {})
    np.testing.assert_allclose(three.act(np.zeros(3), {}), [0.2, 0.2, 0.6])
    # a new episode starts over
    policy.reset(_ScriptedEnv(["a", "b"], [(0.9, 0.1)]))
    np.testing.assert_allclose(policy.act(obs, {}), [0.5, 0.5])


def test_val_gain_refuses_bad_settings_and_a_missing_reset():
    from mmenv.agents.heuristics import ValGainPolicy

    for bad in (0.0, 1.0, 1.5, "0.7", True):
        with pytest.raises(PolicyError, match="share"):
            ValGainPolicy(share=bad)
    with pytest.raises(PolicyError, match="reset"):
        ValGainPolicy().act(np.zeros(2), {})
    with pytest.raises(PolicyError, match="validation accuracy"):
        ValGainPolicy().reset(SimpleNamespace())


def test_val_gain_plays_the_same_batched_and_alone():
    from mmenv.agents import run_policy

    from mmenv import DUSEnv
    from mmenv.engine import play_batch

    kw = {"dataset": "synthetic", "dataset_kwargs": {"n_train": 120, "n_val": 60, "n_test": 60},
          "learner": "ogm-ge", "epochs": 3, "batch_budget": 16, "step_every": "epoch"}
    alone = [run_policy(DUSEnv(**kw), make_policy("val-gain"), seeds=[s], learn=False)[0] for s in (0, 1)]
    batched = play_batch(kw, [make_policy("val-gain"), make_policy("val-gain")], [0, 1], learn=False)
    for a, b in zip(alone, batched):
        np.testing.assert_allclose(a.proportions, b.proportions)
        assert a.test["fused"]["accuracy"] == pytest.approx(b.test["fused"]["accuracy"], abs=1e-6)
    assert any(abs(p[0] - 0.5) > 0.1 for rec in alone for p in rec.proportions)   # it left uniform


def test_val_gain_refuses_a_share_that_would_flip_the_rule():
    from mmenv.agents.heuristics import ValGainPolicy

    with pytest.raises(PolicyError, match="1/m"):
        ValGainPolicy(share=0.3).reset(_ScriptedEnv(["a", "b", "c"], []))
    with pytest.raises(PolicyError, match="min_gain"):
        ValGainPolicy(min_gain="x")
