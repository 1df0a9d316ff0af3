"""REINFORCE: learns in the right direction, stays finite, runs online and episodically, saves."""

import numpy as np
import pytest
import torch
from mmenv.agents import PolicyError, ReinforcePolicy, make_policy, run_policy

from mmenv import DUSEnv
from mmenv.datasets import make_synthetic
from mmenv.rewards import RewardContext, dus_reward


def tiny_env(**kw):
    return DUSEnv(dataset=make_synthetic(n_train=200, n_val=50, n_test=100), epochs=3, batch_budget=16, **kw)


def train_on_fixed_obs(policy, obs, n):
    for _ in range(n):
        p = policy.act(obs, {})
        r = dus_reward(RewardContext(obs, p, obs, []))
        policy.update(obs, p, r, obs, False, False, {})


def mean_share(policy, obs):
    conc = policy.distribution(obs).concentration.detach()
    return (conc / conc.sum()).numpy()


@pytest.mark.parametrize("obs,weak", [(np.array([0.6, 0.2], np.float32), 1), (np.array([0.1, 0.5], np.float32), 0)])
def test_updates_raise_the_share_of_the_non_dominant_modality(obs, weak):
    policy = ReinforcePolicy(seed=0, lr=1e-2, num_modalities=2)
    before = mean_share(policy, obs)[weak]
    assert before == pytest.approx(0.5)
    train_on_fixed_obs(policy, obs, 300)
    after = mean_share(policy, obs)[weak]
    assert after > 0.9, (before, after)
    assert policy.num_updates == 300 and policy.skipped_updates == 0


def test_paper_learning_rate_also_moves_the_right_way():
    obs = np.array([0.6, 0.2], np.float32)
    policy = ReinforcePolicy(seed=0, num_modalities=2)   # lr 1e-4
    assert policy.config.lr == 1e-4
    train_on_fixed_obs(policy, obs, 300)
    assert mean_share(policy, obs)[1] > 0.55


def test_three_modalities_dominant_loses_share():
    obs = np.array([0.2, 0.7, 0.3], np.float32)
    policy = ReinforcePolicy(seed=1, lr=1e-2, num_modalities=3)
    train_on_fixed_obs(policy, obs, 300)
    share = mean_share(policy, obs)
    assert share[1] < 1 / 3 - 0.05


@pytest.mark.parametrize("obs", [[0.0, 0.0], [1.0, 1.0], [1e-9, 0.0], [1.0, 0.0], [0.0, 1e-9], [np.nan, np.inf]])
def test_extreme_observations_give_valid_proportions(obs):
    policy = ReinforcePolicy(seed=0, num_modalities=2)
    obs = np.array(obs, np.float32)
    for deterministic in (False, True):
        policy.deterministic = deterministic
        p = policy.act(obs, {})
        assert np.all(np.isfinite(p)) and np.all(p >= 0) and p.sum() == pytest.approx(1.0)
    policy.deterministic = False
    train_on_fixed_obs(policy, obs, 20)
    assert all(torch.isfinite(q).all() for q in policy.net.parameters())


def test_long_training_at_high_lr_stays_finite():
    policy = ReinforcePolicy(seed=3, lr=0.1, ent_coef=0.0, num_modalities=2)
    rng = np.random.default_rng(0)
    extremes = [np.array(o, np.float32) for o in ([0.0, 0.0], [1.0, 0.0], [1e-9, 1.0], [0.6, 0.2])]
    for i in range(2000):
        obs = extremes[i % 4] if i % 2 else rng.random(2).astype(np.float32)
        p = policy.act(obs, {})
        assert np.all(np.isfinite(p)), i
        r = dus_reward(RewardContext(obs, p, obs, []))
        policy.update(obs, p, r, obs, False, False, {})
    assert all(torch.isfinite(q).all() for q in policy.net.parameters())
    conc = policy.distribution(np.array([0.6, 0.2], np.float32)).concentration
    assert torch.all(conc >= 1e-3) and torch.all(conc <= 1e3)
    # Exact zeros in the action must not break the log-probability.
    assert torch.isfinite(policy.distribution(np.array([0.6, 0.2])).log_prob(policy._clamp(np.array([1.0, 0.0]))))


def test_online_reinforce_runs_a_training_episode():
    env = tiny_env()
    policy = make_policy("reinforce", seed=0)
    assert policy.mode == "online"
    rec = run_policy(env, policy, seeds=[0])[0]
    assert rec.steps == 3 and policy.num_updates == 3
    assert rec.test is not None and 0.0 <= rec.test["fused"]["accuracy"] <= 1.0
    assert all(sum(b) == 16 for b in rec.batch_sizes)
    assert np.isfinite(rec.reward_sum)


def test_episodic_training_updates_once_per_episode_with_discounted_returns():
    env = tiny_env()
    policy = ReinforcePolicy(seed=0, gamma=0.5)
    records = policy.train_episodic(env, episodes=2, seeds=[0, 1])
    assert len(records) == 2 and policy.num_updates == 2 and policy.mode == "online"
    # baselines hold the (first-episode) discounted returns per step index, moving-averaged
    r = records[0].rewards
    g0 = r[0] + 0.5 * r[1] + 0.25 * r[2]
    r2 = records[1].rewards
    g0_2 = r2[0] + 0.5 * r2[1] + 0.25 * r2[2]
    assert policy.return_baselines[0] == pytest.approx(0.9 * g0 + 0.1 * g0_2)


def test_seeded_and_global_rng_untouched():
    obs = np.array([0.4, 0.3], np.float32)
    state = torch.get_rng_state()
    a = [ReinforcePolicy(seed=7).act(obs, {}) for _ in range(2)]
    np.testing.assert_array_equal(a[0], a[1])
    assert not np.allclose(a[0], ReinforcePolicy(seed=8).act(obs, {}))
    assert torch.equal(state, torch.get_rng_state())


def test_save_and_load_roundtrip(tmp_path):
    obs = np.array([0.6, 0.2], np.float32)
    policy = ReinforcePolicy(seed=0, lr=1e-2, num_modalities=2)
    train_on_fixed_obs(policy, obs, 50)
    path = tmp_path / "agent.pt"
    policy.save(path)
    loaded = make_policy(str(path), deterministic=True)
    assert isinstance(loaded, ReinforcePolicy) and loaded.config.lr == 1e-2 and loaded.num_updates == 50
    np.testing.assert_allclose(loaded.act(obs, {}), mean_share(policy, obs), rtol=1e-6)
    with pytest.raises(PolicyError, match="not a saved REINFORCE"):
        torch.save({"x": 1}, tmp_path / "bad.pt")
        ReinforcePolicy.load(tmp_path / "bad.pt")


def test_bad_options_are_rejected():
    with pytest.raises(PolicyError, match="unknown REINFORCE option"):
        ReinforcePolicy(learning_rate=1e-3)
    with pytest.raises(PolicyError, match="mode"):
        ReinforcePolicy(mode="offline")
    policy = ReinforcePolicy(num_modalities=2)
    with pytest.raises(PolicyError, match="2 modalities"):
        policy.act(np.zeros(3, np.float32), {})
