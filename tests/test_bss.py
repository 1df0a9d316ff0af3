"""Tests of Balance-aware Sequence Sampling (mmenv.sampling.bss)."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
import torch

from mmenv.datasets import make_synthetic
from mmenv.env import DUSEnv
from mmenv.learners import BaselineLearner, Learner, Prediction
from mmenv.sampling import SAMPLE_ORDERS, make_sample_order, scoring_context
from mmenv.sampling.bss import BSSCurriculum, BSSLearned, balance_scores, root_pacing, weighted_permutation

C = 4


class FixedLogitLearner(Learner):
    """predict returns fixed logits read from the inputs: modality m -> first C features times a scale."""

    name = "fixed"
    scales = {"m0": 2.0, "m1": 0.5, "m2": 1.0}

    def setup(self, ctx):
        pass

    def train_step(self, batch):  # pragma: no cover - never trained
        raise NotImplementedError

    def predict(self, inputs):
        per = {m: x[:, :C] * self.scales[m] for m, x in inputs.items()}
        return Prediction(sum(per.values()) / len(per), per)


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _ce(z, y):
    p = _softmax(z)
    return -np.log(p[np.arange(len(y)), y])


def _minmax(x):
    return (x - x.min()) / (x.max() - x.min())


def _hand_scores(data):
    """S, L, S~, L~ computed by hand in float64 with numpy."""
    train = data.train
    y = train.labels.numpy()
    per = {m: train.gather(m, torch.arange(len(train))).double().numpy()[:, :C] * FixedLogitLearner.scales[m]
           for m in data.modality_names}
    fused = sum(per.values()) / len(per)
    probs = [_softmax(z) for z in per.values()]
    cos = [(a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)) for a, b in combinations(probs, 2)]
    s = np.mean(cos, axis=0)
    loss = _ce(fused, y) + sum(_ce(z, y) for z in per.values())
    return s, loss, _minmax(s), _minmax(loss)


def _ctx(data, epoch=0):
    return scoring_context(FixedLogitLearner(), data, epoch=epoch, batch_size=64)


@pytest.mark.parametrize("num_modalities", [2, 3])
def test_measurer_matches_hand_computation(num_modalities):
    data = make_synthetic(n_train=200, n_val=50, n_test=100, num_modalities=num_modalities,
                          names=["m0", "m1", "m2"][:num_modalities])
    s, loss, s_n, l_n = _hand_scores(data)
    order = BSSCurriculum()
    order.setup(200, ("paired", *data.modality_names), torch.device("cpu"), torch.Generator().manual_seed(0))
    order.on_epoch_start(_ctx(data))  # batches of 64: checks the batched scoring pass too
    got = order.scores
    np.testing.assert_allclose(got.similarity.numpy(), s, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.loss.numpy(), loss, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.difficulty.numpy(), (1 - s_n) + l_n, atol=1e-5)
    np.testing.assert_allclose(got.learned_weights.numpy(), 1 - (l_n - s_n) + 0.01, atol=1e-5)
    # the ranking is easy -> hard
    d = got.difficulty[order.ranking]
    assert bool((d[1:] >= d[:-1]).all())
    assert sorted(order.ranking.tolist()) == list(range(200))


def test_measurer_rejects_one_modality():
    z = torch.zeros(3, C)
    with pytest.raises(ValueError, match="at least two modalities"):
        balance_scores(z, {"a": z}, torch.zeros(3, dtype=torch.long))


def test_pacing_function_values():
    assert root_pacing(0) == pytest.approx(math.sqrt(0.1**2 + (1 - 0.1**2) / 40))
    assert root_pacing(0) == pytest.approx(0.18641, abs=1e-5)
    assert root_pacing(19) == pytest.approx(math.sqrt(0.01 + 0.99 * 20 / 40))
    for t in (39, 40, 41, 100):  # lambda reaches 1 at t + 1 = T_grow and stays there
        assert root_pacing(t) == 1.0
    assert root_pacing(0, l0=0.5, t_grow=4) == pytest.approx(math.sqrt(0.25 + 0.75 / 4))
    values = [root_pacing(t) for t in range(45)]
    assert all(b >= a for a, b in zip(values, values[1:]))


class RecordingLearner(BaselineLearner):
    """Baseline that records each batch's (epoch, indices, num_paired, masks)."""

    def setup(self, ctx):
        super().setup(ctx)
        self.log = []

    def train_step(self, batch):
        self.log.append((batch.epoch, {m: i.clone() for m, i in batch.indices.items()}, batch.num_paired, batch.masks))
        return super().train_step(batch)


def _data():
    return make_synthetic(n_train=200, n_val=50, n_test=100)


@pytest.mark.parametrize("rerank_every", [1, 0])
def test_curriculum_subset_grows_with_pacing(rerank_every):
    learner = RecordingLearner()
    env = DUSEnv(_data(), learner, epochs=4, batch_budget=32, sample_order="bss-curriculum",
                 sample_order_kwargs={"t_grow": 4, "rerank_every": rerank_every})
    order = env.sample_order
    env.reset(seed=3)
    rankings = []
    for t in range(4):
        env.step(env.uniform_action())
        expected = math.floor(200 * root_pacing(t, 0.1, 4))
        assert order.pass_size == expected
        rankings.append(order.ranking.clone())
        seen = torch.cat([torch.cat(list(idx.values())) for e, idx, _, _ in learner.log if e == t]).unique()
        # every sample drawn this epoch lies in the easiest `expected`, and (enough draws) all of them are seen
        assert set(seen.tolist()) == set(order.ranking[:expected].tolist())
    assert [order.subset_size(t) for t in range(4)] == [101, 142, 173, 200]
    if rerank_every == 0:  # ranked once with the initial model
        assert all(torch.equal(r, rankings[0]) for r in rankings)
    else:  # re-ranked with the trained model
        assert not torch.equal(rankings[0], rankings[-1])


def test_curriculum_t_grow_none_uses_episode_length():
    env = DUSEnv(_data(), "baseline", epochs=3, batch_budget=32, sample_order="bss-curriculum",
                 sample_order_kwargs={"t_grow": None})
    env.reset(seed=0)
    sizes = []
    for _ in range(3):
        env.step(env.uniform_action())
        sizes.append(env.sample_order.pass_size)
    assert sizes == [math.floor(200 * root_pacing(t, 0.1, 3)) for t in range(3)] and sizes[-1] == 200


def test_weighted_permutation_first_position_frequencies():
    w = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.5, 0.01])
    gen = torch.Generator().manual_seed(0)
    draws = 12000
    first = torch.zeros(len(w))
    second_given_3_first = torch.zeros(len(w))
    for _ in range(draws):
        perm = weighted_permutation(w, gen)
        assert sorted(perm.tolist()) == list(range(len(w)))
        first[perm[0]] += 1
        if perm[0] == 3:
            second_given_3_first[perm[1]] += 1
    p = (w / w.sum()).double()
    expected = p * draws
    chi2 = float(((first.double() - expected) ** 2 / expected).sum())
    assert chi2 < 20.5, (chi2, first / draws, p)  # df = 5, p = 0.001 critical value 20.5
    # without replacement: the next position is drawn from the remaining weights
    w2 = w.clone(); w2[3] = 0.0
    q = w2 / w2.sum()
    freq2 = second_given_3_first / second_given_3_first.sum()
    assert second_given_3_first[3] == 0
    assert torch.allclose(freq2, q, atol=0.03)


def test_learned_order_uses_scores_and_is_permutation():
    data = make_synthetic(n_train=200, n_val=50, n_test=100, names=["m0", "m1"])
    order = BSSLearned()
    order.setup(200, ("paired", *data.modality_names), torch.device("cpu"), torch.Generator().manual_seed(1))
    order.on_epoch_start(_ctx(data))
    _, _, s_n, l_n = _hand_scores(data)
    np.testing.assert_allclose(order.weights.numpy(), 1 - (l_n - s_n) + 0.01, atol=1e-5)
    p1, p2 = order.next_pass("m0", 0), order.next_pass("m0", 0)
    assert sorted(p1.tolist()) == list(range(200)) and not torch.equal(p1, p2)
    # heavier samples come earlier on average: the mean position over many passes falls with the weight
    mean_rank = torch.zeros(200)
    for _ in range(300):
        perm = order.next_pass("paired", 0)
        mean_rank[perm] += torch.arange(200, dtype=torch.float) / 300
    corr = np.corrcoef(order.weights.numpy(), mean_rank.numpy())[0, 1]
    assert corr < -0.8, corr


@pytest.mark.parametrize("name", ["bss-curriculum", "bss-learned"])
def test_combines_with_dus_policy(name):
    kwargs = {"t_grow": 3} if name == "bss-curriculum" else {}
    env = DUSEnv(_data(), "baseline", epochs=4, batch_budget=32, sample_order=name, sample_order_kwargs=kwargs)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, term, trunc, info = env.step(np.array([0.7, 0.3], dtype=np.float32))
        assert sum(info["batch_sizes"]) == 32 and info["batch_sizes"] == [22, 10]
        done = term or trunc
    assert term and not info["diverged"]
    assert info["test"]["fused"]["accuracy"] > 0.5  # chance is 1/4


def test_same_seed_same_batches():
    def run():
        learner = RecordingLearner()
        env = DUSEnv(_data(), learner, epochs=2, batch_budget=32, sample_order="bss-learned")
        env.reset(seed=7)
        env.step(env.uniform_action())
        env.step(np.array([0.3, 0.7], dtype=np.float32))
        return torch.cat([torch.cat(list(idx.values())) for _, idx, _, _ in learner.log])
    assert torch.equal(run(), run())


def test_registry_and_bad_arguments():
    assert {"shuffle", "bss-curriculum", "bss-learned", "remix"} <= set(SAMPLE_ORDERS)
    assert isinstance(make_sample_order("bss-curriculum", t_grow=5), BSSCurriculum)
    with pytest.raises(ValueError, match="valid names"):
        make_sample_order("bss")
    with pytest.raises(ValueError, match="only apply when sample_order is given by name"):
        make_sample_order(BSSLearned(), eps=0.1)
    with pytest.raises(ValueError, match="rerank_every"):
        BSSCurriculum(rerank_every=-1)
    with pytest.raises(ValueError, match="l0"):
        BSSCurriculum(l0=0.0)
    order = BSSLearned()
    order.setup(10, ("paired", "a", "b"), torch.device("cpu"), torch.Generator())
    with pytest.raises(RuntimeError, match="on_epoch_start"):
        order.next_pass("a", 0)


def test_curriculum_longer_than_the_episode_warns():
    import warnings as _w

    from mmenv import DUSEnv
    from mmenv.datasets import make_synthetic

    ds = make_synthetic(n_train=120, n_val=20, n_test=40)
    env = DUSEnv(dataset=ds, epochs=2, batch_budget=16, sample_order="bss-curriculum")
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="t_grow=40 is longer than the episode"):
        env.step(env.uniform_action())
    env = DUSEnv(dataset=ds, epochs=2, batch_budget=16, sample_order="bss-curriculum",
                 sample_order_kwargs={"t_grow": None})
    env.reset(seed=0)
    with _w.catch_warnings():
        _w.simplefilter("error")
        env.step(env.uniform_action())
