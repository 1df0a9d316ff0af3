"""Per-modality observation ("modal") and permutation-equivariant policies (REINFORCE, SB3 PPO / SAC)."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from mmenv.agents import ReinforcePolicy, make_policy, run_policy
from mmenv.agents.across_runs import bench_env, train_across_runs
from mmenv.agents.equivariant import EquivariantActorCriticPolicy, EquivariantSACPolicy
from mmenv.agents.policy import PolicyError
from mmenv.agents.saved import read_card
from mmenv.agents.sb3 import make_sb3_agent

from mmenv.observations import infer_observation, observation_layout

TINY = {"dataset": "synthetic", "dataset_kwargs": {"n_train": 96, "n_val": 48, "n_test": 64},
        "learner": "baseline", "epochs": 2, "batch_budget": 16}
TINY3 = {**TINY, "dataset_kwargs": {**TINY["dataset_kwargs"], "num_modalities": 3}}
K, G = 10, 1


def permute(obs: np.ndarray, order: list[int]) -> np.ndarray:
    """The modal observation with its modality blocks in ``order``."""
    m = (len(obs) - G) // K
    blocks = obs[: m * K].reshape(m, K)
    return np.concatenate([blocks[order].reshape(-1), obs[m * K:]]).astype(np.float32)


def random_modal(m: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, m * K + G).astype(np.float32)


def perturbed(policy: ReinforcePolicy) -> ReinforcePolicy:
    """Move the weights off their uniform-output start so that the test can fail."""
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        for p in policy.net.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.5)
    return policy


# ---------------------------------------------------------------------- the observation
def test_modal_observation_layout_and_values():
    env = bench_env(TINY, observation="modal")
    assert env.observation_space.shape == (21,) and env.get_wrapper_attr("observation_layout") == (2, 10, 1)
    names = env.get_wrapper_attr("observation_names")
    assert names[:10] == ["discrepancy/strong", "proportion/strong", "train_loss/strong", "train_accuracy/strong",
                          "val_accuracy/strong", "delta_discrepancy/strong", "delta_proportion/strong",
                          "delta_train_loss/strong", "delta_train_accuracy/strong", "delta_val_accuracy/strong"]
    assert names[10].endswith("/weak") and names[-1] == "progress"
    calls = []
    base = env.unwrapped
    original = base.evaluate
    base.evaluate = lambda split="test": calls.append(split) or original(split)
    obs0, _ = env.reset(seed=0)
    val0 = original("val")
    assert calls == ["val"]                       # the reward's and the observation's one pass
    blocks0 = obs0[:20].reshape(2, 10)
    np.testing.assert_allclose(blocks0[:, 1], 0.5)                      # Algorithm 1's INIT
    np.testing.assert_allclose(blocks0[:, 4], [val0["strong"]["accuracy"], val0["weak"]["accuracy"]], rtol=1e-6)
    np.testing.assert_array_equal(blocks0[:, 5:], 0.0)                  # no change before the first step
    calls.clear()
    obs1, reward, _, _, info = env.step(base.proportions_to_action([0.3, 0.7]))
    assert calls == ["val"]                       # still one validation pass per step
    val1 = original("val")
    blocks1 = obs1[:20].reshape(2, 10)
    np.testing.assert_allclose(blocks1[:, 0], info["discrepancy"], rtol=1e-6)
    np.testing.assert_allclose(blocks1[:, 1], [0.3, 0.7], atol=1e-6)
    np.testing.assert_allclose(blocks1[:, 2], [info["train_loss"][m] / math.log(4) for m in ("strong", "weak")],
                               rtol=1e-5)
    np.testing.assert_allclose(blocks1[:, 3], [info["train_accuracy"][m] for m in ("strong", "weak")], rtol=1e-6)
    np.testing.assert_allclose(blocks1[:, 4], [val1["strong"]["accuracy"], val1["weak"]["accuracy"]], rtol=1e-6)
    np.testing.assert_allclose(blocks1[:, 5:], blocks1[:, :5] - blocks0[:, :5], atol=1e-6)
    assert obs1[-1] == pytest.approx(0.5)
    assert reward == pytest.approx(val1["fused"]["accuracy"] - val0["fused"]["accuracy"])
    assert env.observation_space.contains(obs1)


def test_observation_modes_are_recognised_by_length():
    for mode, n in (("paper", 3), ("extended", 13), ("modal", 31)):
        assert infer_observation(n, 3) == mode
    assert observation_layout("modal", 3) == (3, 10, 1) and observation_layout("extended", 3) is None
    with pytest.raises(ValueError, match="validation split"):
        bench_env({**TINY, "dataset_kwargs": {"n_train": 96, "n_val": 0, "n_test": 64}}, observation="modal",
                  reward="dus")


# ---------------------------------------------------------------------- REINFORCE
@pytest.mark.parametrize("contrast", [False, True])
def test_reinforce_equivariant_permutes_exactly_and_runs_on_any_m(contrast):
    policy = ReinforcePolicy(seed=0, policy="equivariant", deterministic=True, contrast=contrast)
    policy.reset(bench_env(TINY, observation="modal").unwrapped)
    policy.act(random_modal(2, 0), {})
    perturbed(policy)
    for m, orders in ((2, [[1, 0]]), (3, [[2, 0, 1], [1, 2, 0], [0, 2, 1]])):
        obs = random_modal(m, m)
        p = policy.act(obs, {})
        assert p.shape == (m,) and p.sum() == pytest.approx(1.0) and np.ptp(p) > 0.01
        for order in orders:
            np.testing.assert_array_equal(policy.act(permute(obs, order), {}), p[order])
    # A concatenated-observation policy is tied to its m; the equivariant one reads 'extended' not at all.
    with pytest.raises(PolicyError, match="laid out per modality"):
        ReinforcePolicy(seed=0, policy="equivariant").build(2, 9)


def test_contrast_features_against_a_hand_computation():
    from mmenv.agents.equivariant import CONTRAST_EPS, contrast

    x = torch.tensor([[0.30, 1.0], [0.10, 1.0], [0.20, 4.0]])          # 3 modalities x 2 features
    c = contrast(x)
    col0 = np.array([0.1, -0.1, 0.0]) / (np.sqrt(0.02 / 3) + CONTRAST_EPS)
    col1 = np.array([-1.0, -1.0, 2.0]) / (np.sqrt(6.0 / 3) + CONTRAST_EPS)
    np.testing.assert_allclose(c.numpy(), np.stack([col0, col1], 1), rtol=1e-5)
    # Two modalities whose changes differ by a few hundredths read as nearly +-1; equal ones as 0.
    d = contrast(torch.tensor([[0.06], [0.0]]))
    assert d[0, 0] > 0.55 and torch.allclose(d[0], -d[1])
    assert torch.equal(contrast(torch.ones(2, 3)), torch.zeros(2, 3))


def test_equivariant_reinforce_trains_across_runs_and_round_trips(tmp_path):
    agent = train_across_runs("reinforce", [TINY], runs=4, seed=0, observation="modal", policy="equivariant")
    path = agent.save(tmp_path / "eq.pt")
    card = read_card(path)
    assert (card.network, card.observation) == ("equivariant", "modal")
    loaded = make_policy(str(path), deterministic=True)
    for m, seed in ((2, 1), (3, 2)):
        obs = random_modal(m, seed)
        np.testing.assert_array_equal(loaded.act(obs, {}), agent.policy.act(obs, {}))
    # Trained on two modalities, played on three: the same weights.
    rec = run_policy(bench_env(TINY3, observation="modal"), loaded, seeds=[0], learn=False)[0]
    assert np.asarray(rec.proportions).shape == (2, 3)


# ---------------------------------------------------------------------- SB3
@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_sb3_equivariant_policy_permutes_exactly_and_round_trips(algo, tmp_path):
    env = gym.make("mmenv/DUSBench-v0", observation="modal", **TINY)
    small = {"learning_starts": 2, "batch_size": 4} if algo == "sac" else {"n_steps": 4, "batch_size": 4}
    model = make_sb3_agent(algo, env, seed=0, setting="across-runs", policy="equivariant", **small)
    assert isinstance(model.policy, EquivariantActorCriticPolicy if algo == "ppo" else EquivariantSACPolicy)
    model.learn(8)
    gen = torch.Generator().manual_seed(1)
    for p in model.policy.parameters():          # off the start, so that the test can fail
        p.data.add_(torch.randn(p.shape, generator=gen) * 0.05)
    obs = random_modal(2, 5).clip(env.observation_space.low, env.observation_space.high)
    a = model.predict(obs, deterministic=True)[0]
    assert abs(a[0] - a[1]) > 1e-3
    np.testing.assert_array_equal(model.predict(permute(obs, [1, 0]), deterministic=True)[0], a[[1, 0]])
    model.save(tmp_path / "eq.zip")                # plain SB3 save
    policy = make_policy(str(tmp_path / "eq.zip"))
    assert (policy.card.network, policy.card.observation) == ("equivariant", "modal")
    p = policy.act(obs, {})
    np.testing.assert_array_equal(policy.act(permute(obs, [1, 0]), {}), p[[1, 0]])
    np.testing.assert_array_equal(policy.model.predict(obs, deterministic=True)[0], a)
    # The loaded policy plays three modalities with the same weights, equivariantly.
    obs3 = random_modal(3, 6)
    p3 = policy.act(obs3, {})
    assert p3.shape == (3,) and p3.sum() == pytest.approx(1.0)
    # (the actions permute exactly; the softmax space's sum over three shares rounds by order)
    np.testing.assert_allclose(policy.act(permute(obs3, [2, 0, 1]), {}), p3[[2, 0, 1]], rtol=1e-12)
    if algo == "ppo":   # the same weights score three modalities, equivariantly
        obs3 = torch.as_tensor(random_modal(3, 6))[None]
        s3 = model.policy.proportions_scores(obs3)[0]
        assert s3.shape == (3,)
        perm3 = torch.as_tensor(permute(obs3[0].numpy(), [2, 0, 1]))[None]
        assert torch.equal(model.policy.proportions_scores(perm3)[0], s3[[2, 0, 1]])


def test_sb3_equivariant_across_runs():
    agent = train_across_runs("ppo", [TINY], runs=3, seed=0, observation="modal", policy="equivariant",
                              n_steps=4, batch_size=4)
    assert isinstance(agent.policy.model.policy, EquivariantActorCriticPolicy)
    with pytest.raises(PolicyError, match="observation='modal'"):
        make_sb3_agent("ppo", gym.make("mmenv/DUSBench-v0", observation="extended", **TINY), policy="equivariant")


def test_mmenv_evaluate_plays_a_benchmark_agent_in_its_environment(tmp_path):
    """The CLI reads the card: a 'modal' equivariant agent trained on 2 modalities, evaluated on 3."""
    import json

    from mmenv.cli import main

    agent = train_across_runs("reinforce", [TINY], runs=2, seed=0, observation="modal", policy="equivariant")
    path = agent.save(tmp_path / "eq.pt")
    out = tmp_path / "eval"
    args = ["evaluate", "--policy", str(path), "--frozen", "--out", str(out), "--epochs", "2", "--batch-budget", "16",
            "--dataset-kwargs", json.dumps(TINY3["dataset_kwargs"]), "--no-progress"]
    assert main(args) == 0
    payload = json.loads((out / "results.json").read_text())
    card = payload["agent_card"]
    assert (card["env_id"], card["observation"], card["network"]) == ("mmenv/DUSBench-v0", "modal", "equivariant")
    episode = payload["episodes"][0]
    assert len(episode["proportions"][0]) == 3 and len(episode["initial_discrepancy"]) == 31
