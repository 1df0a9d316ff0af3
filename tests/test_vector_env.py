"""The batched vector environment: spaces, autoreset, equality with single environments."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

import mmenv  # noqa: F401  (registers mmenv/DUS-v0)
from mmenv import DUSEnv
from mmenv.learners import Learner
from mmenv.vector_env import DUSVectorEnv, VectorEnvError

TINY = dict(dataset_kwargs=dict(n_train=120, n_val=30, n_test=60, dims=8), batch_budget=16)


def random_actions(k: int, steps: int, seed: int = 0, m: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random((k, m)).astype(np.float32) for _ in range(steps)]


def test_make_vec_returns_batched_env_with_batched_spaces():
    envs = gym.make_vec("mmenv/DUS-v0", num_envs=3, vectorization_mode="vector_entry_point", epochs=1, **TINY)
    assert isinstance(envs, DUSVectorEnv)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert envs.single_observation_space.shape == (2,) and envs.single_action_space.shape == (2,)
    assert envs.observation_space.shape == (3, 2) and envs.action_space.shape == (3, 2)
    obs, infos = envs.reset(seed=0)
    assert obs.shape == (3, 2) and obs.dtype == np.float32 and envs.observation_space.contains(obs)
    assert infos["_batch_sizes"].all()
    obs, rewards, terms, truncs, infos = envs.step(envs.action_space.sample())
    assert envs.observation_space.contains(obs)
    assert rewards.shape == (3,) and terms.shape == (3,) and truncs.shape == (3,)
    assert terms.all() and not truncs.any()  # one epoch = one step
    assert infos["test"]["fused"]["accuracy"].shape == (3,)
    assert [sum(s) for s in infos["batch_sizes"]] == [16, 16, 16]
    envs.close()


def test_matches_single_envs_for_same_seeds_and_actions():
    k, kw = 3, dict(epochs=3, **TINY)
    actions = random_actions(k, 3)
    envs = DUSVectorEnv(num_envs=k, **kw)
    obs0, _ = envs.reset(seed=7)
    vec = [envs.step(a) for a in actions]
    for i in range(k):
        env = DUSEnv(**kw)
        obs, _ = env.reset(seed=7 + i)
        np.testing.assert_allclose(obs, obs0[i], atol=1e-6)
        for t, a in enumerate(actions):
            obs, reward, term, trunc, info = env.step(a[i])
            v_obs, v_rew, v_term, v_trunc, v_info = vec[t]
            assert info["batch_sizes"] == v_info["batch_sizes"][i]
            np.testing.assert_allclose(obs, v_obs[i], atol=1e-5)
            assert reward == pytest.approx(v_rew[i], abs=1e-4)
            assert (term, trunc) == (v_term[i], v_trunc[i])
            assert info["train_loss"]["total"] == pytest.approx(v_info["train_loss"]["total"][i], rel=1e-4)
            assert info["train_accuracy"]["weak"] == pytest.approx(v_info["train_accuracy"]["weak"][i], abs=1e-6)
        assert term
        assert info["test"]["fused"]["accuracy"] == pytest.approx(v_info["test"]["fused"]["accuracy"][i], abs=1e-6)
        # The stacked parameters are the single run's parameters.
        for p, q in zip(env.learner.model.parameters(), envs.get_learner(i).model.parameters()):
            torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-4)


def test_autoreset_next_step_matches_sync_vector_env():
    k, kw = 2, dict(epochs=1, **TINY)  # every step ends an episode
    actions = random_actions(k, 4, seed=3)
    # Both through the registered id (its default action space is the softmax one).
    batched = gym.make_vec("mmenv/DUS-v0", num_envs=k, vectorization_mode="vector_entry_point", **kw)
    sync = gym.make_vec("mmenv/DUS-v0", num_envs=k, vectorization_mode="sync", **kw)
    for envs in (batched, sync):
        assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    ob, _ = batched.reset(seed=11)
    os_, _ = sync.reset(seed=11)
    np.testing.assert_allclose(ob, os_, atol=1e-6)
    for t, a in enumerate(actions):
        ob, rb, tb, ub, _ = batched.step(a)
        os_, rs, ts, us, _ = sync.step(a)
        np.testing.assert_allclose(ob, os_, atol=1e-5)
        np.testing.assert_allclose(rb, rs, atol=1e-4)
        np.testing.assert_array_equal(tb, ts)
        if t % 2 == 1:  # the step after an episode end is a reset: reward 0, not done
            assert not tb.any() and (rb == 0).all()
        else:
            assert tb.all()


def test_partial_reset_runs_at_different_iterations():
    kw = dict(epochs=2, step_every=5, **TINY)
    a = random_actions(2, 3, seed=5)
    envs = DUSVectorEnv(num_envs=2, **kw)
    envs.reset(seed=0)
    envs.step(a[0])
    envs.reset(seed=[10, None], options={"reset_mask": np.array([True, False])})
    obs, rew, _, _, info = envs.step(a[1])  # run 0 at iteration 0, run 1 at iteration 5
    assert list(info["iteration"]) == [5, 10]
    single0, single1 = DUSEnv(**kw), DUSEnv(**kw)
    single0.reset(seed=0)
    single0.step(a[0][0])
    single0.reset(seed=10)
    o0, r0, *_ = single0.step(a[1][0])
    single1.reset(seed=1)
    single1.step(a[0][1])
    o1, r1, *_ = single1.step(a[1][1])
    np.testing.assert_allclose(obs, np.stack([o0, o1]), atol=1e-5)
    np.testing.assert_allclose(rew, [r0, r1], atol=1e-4)


def test_unsupported_configurations_point_to_sync_vector_env():
    with pytest.raises(VectorEnvError, match="SyncVectorEnv"):
        DUSVectorEnv(num_envs=2, learner_kwargs=dict(optimizer="adam"), **TINY)


def test_an_imperative_plugin_learner_is_refused():
    """A learner with only the imperative protocol (train_step) cannot be batched."""
    class Custom(Learner):
        name = "custom"

        def setup(self, ctx):
            self.model = torch.nn.Linear(1, 1)

        def train_step(self, batch):
            raise NotImplementedError

        def predict(self, inputs):
            raise NotImplementedError

    with pytest.raises(VectorEnvError, match="SyncVectorEnv"):
        DUSVectorEnv(num_envs=2, learner=Custom(), **TINY)


@pytest.mark.parametrize("learner_kwargs", [dict(fusion_input="zero-fill"), dict(optimizer="sgd", momentum=0.0)])
def test_other_baseline_settings_match_single_env(learner_kwargs):
    kw = dict(epochs=1, learner_kwargs=learner_kwargs, **TINY)
    a = np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    envs = DUSVectorEnv(num_envs=2, **kw)
    envs.reset(seed=3)
    obs, rew, *_ = envs.step(a)
    for i in range(2):
        env = DUSEnv(**kw)
        env.reset(seed=3 + i)
        o, r, *_ = env.step(a[i])
        np.testing.assert_allclose(o, obs[i], atol=1e-5)
        assert r == pytest.approx(rew[i], abs=1e-4)


def test_loss_scale_mean_matches_single_env():
    kw = dict(epochs=1, learner_kwargs=dict(loss_scale="mean"), discrepancy="mean", **TINY)
    a = np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    envs = DUSVectorEnv(num_envs=2, **kw)
    envs.reset(seed=3)
    obs, rew, *_ = envs.step(a)
    for i in range(2):
        env = DUSEnv(**kw)
        env.reset(seed=3 + i)
        o, r, *_ = env.step(a[i])
        np.testing.assert_allclose(o, obs[i], atol=1e-5)
        assert r == pytest.approx(rew[i], abs=1e-4)


@pytest.mark.parametrize("learner", ["ogm-ge", "mla", "pmr", "agm", "di-mml"])
def test_make_vec_default_batches_every_learner(learner):
    """Every built-in learner is served by the batched engine, with the sync mode's numbers."""
    from gymnasium.vector import SyncVectorEnv

    kw = dict(epochs=1, learner=learner, **TINY)
    envs = gym.make_vec("mmenv/DUS-v0", num_envs=2, **kw)
    assert isinstance(envs.unwrapped, DUSVectorEnv)
    sync = gym.make_vec("mmenv/DUS-v0", num_envs=2, vectorization_mode="sync", **kw)
    assert isinstance(sync, SyncVectorEnv)
    a = np.array([[0.5, -0.5], [-0.2, 0.3]], np.float32)
    ob1, _ = envs.reset(seed=5)
    ob2, _ = sync.reset(seed=5)
    np.testing.assert_allclose(ob1, ob2, atol=1e-6)
    r1, r2 = envs.step(a), sync.step(a)
    np.testing.assert_allclose(r1[0], r2[0], atol=1e-5)
    np.testing.assert_allclose(r1[1], r2[1], atol=1e-4)


def test_make_vec_default_falls_back_to_sync_with_a_notice():
    from gymnasium.vector import SyncVectorEnv

    from mmenv.vector_env import VectorFallbackWarning

    kw = dict(epochs=1, learner_kwargs=dict(optimizer="adam"), **TINY)
    with pytest.warns(VectorFallbackWarning, match=r"^mmenv: .*using gymnasium.vector.SyncVectorEnv instead$"):
        envs = gym.make_vec("mmenv/DUS-v0", num_envs=2, **kw)
    assert isinstance(envs, SyncVectorEnv)


def test_make_vec_wrappers_need_the_sync_mode_as_documented():
    """``wrappers=`` is refused by Gymnasium under the default vector_entry_point mode; the
    sync mode documented in docs/performance.md applies them to every run."""
    import re
    from pathlib import Path

    from gymnasium.error import Error as GymError
    from gymnasium.wrappers import TransformReward
    from gymnasium.wrappers.vector import RecordEpisodeStatistics

    kw = dict(dataset_kwargs={"n_train": 64, "n_val": 16, "n_test": 32}, epochs=2)
    wrappers = [lambda env: TransformReward(env, lambda r: 10 * r)]
    with pytest.raises(GymError, match="vector_entry_point.*wrappers"):
        gym.make_vec("mmenv/DUS-v0", num_envs=2, wrappers=wrappers, **kw)
    wrapped = gym.make_vec("mmenv/DUS-v0", num_envs=2, vectorization_mode="sync", wrappers=wrappers, **kw)
    plain = gym.make_vec("mmenv/DUS-v0", num_envs=2, vectorization_mode="sync", **kw)
    assert all(isinstance(e, TransformReward) for e in wrapped.envs)
    for envs in (wrapped, plain):
        envs.reset(seed=3)
    actions = np.array([[0.5, -0.5], [-1.0, 1.0]], dtype=np.float32)
    r_wrapped, r_plain = wrapped.step(actions)[1], plain.step(actions)[1]
    np.testing.assert_allclose(r_wrapped, 10 * r_plain, rtol=1e-6)     # same seeds, reward x 10
    wrapped.close(), plain.close()
    # a vector wrapper wraps the default (batched) env
    stats = RecordEpisodeStatistics(gym.make_vec("mmenv/DUS-v0", num_envs=2, **kw))
    stats.reset(seed=0)
    for _ in range(2):
        _, rewards, terminations, _, infos = stats.step(actions)
    assert terminations.all() and "episode" in infos
    stats.close()
    # the documented block runs as written
    text = (Path(__file__).resolve().parents[1] / "docs" / "performance.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, flags=re.S) if "wrappers=" in b)
    namespace: dict = {}
    exec(compile(block, "docs/performance.md", "exec"), namespace)
    assert namespace["rewards"].shape == (2,)
