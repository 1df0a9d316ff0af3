"""Parallel environments: Gymnasium ``AsyncVectorEnv`` and SB3 ``SubprocVecEnv``.

Each worker process builds its own environment with ``gymnasium.make("mmenv/DUS-v0")``
inside a module-level env function (it imports :mod:`mmenv` first, which registers the
id in that process). Workers start with "spawn" / "forkserver" (no fork of a process
that has already started torch threads). The results must equal the same environments
stepped one after the other in this process: the episode depends on its seed alone.
"""

from __future__ import annotations

import functools
import pickle

import gymnasium as gym
import numpy as np
import pytest

TINY = dict(epochs=2, batch_budget=16, step_every=4, dataset_kwargs=dict(n_train=64, n_val=16, n_test=32, seed=4))
N_ENVS = 2


def make_tiny_env(**overrides) -> gym.Env:
    """Env function for worker processes (picklable by reference: a module-level function)."""
    import torch

    import mmenv  # noqa: F401  (registers mmenv/DUS-v0 in this process)

    torch.set_num_threads(1)
    return gym.make("mmenv/DUS-v0", **{**TINY, **overrides})


def serial_rollout(actions: np.ndarray, seeds: list[int]):
    envs = [make_tiny_env() for _ in seeds]
    obs = np.stack([env.reset(seed=s)[0] for env, s in zip(envs, seeds)])
    trace, rewards = [obs], []
    for step_actions in actions:
        out = [env.step(a) for env, a in zip(envs, step_actions)]
        trace.append(np.stack([o[0] for o in out]))
        rewards.append([o[1] for o in out])
    return np.stack(trace), np.array(rewards)


def test_env_and_dataset_pickle_mid_episode():
    env = make_tiny_env().unwrapped
    env.reset(seed=0)
    env.step(env.uniform_action())
    clone = pickle.loads(pickle.dumps(env))
    a, b = env.step(env.uniform_action()), clone.step(clone.uniform_action())
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1]


def test_gymnasium_async_vector_env_matches_serial():
    actions = np.array([[[0.3, 0.7], [0.8, 0.2]], [[0.5, 0.5], [0.1, 0.9]]], dtype=np.float32)
    vec = gym.vector.AsyncVectorEnv([functools.partial(make_tiny_env) for _ in range(N_ENVS)], context="spawn")
    try:
        obs, _ = vec.reset(seed=[10, 11])
        trace, rewards = [obs], []
        for step_actions in actions:
            obs, reward, terminated, truncated, info = vec.step(step_actions)
            trace.append(obs)
            rewards.append(reward)
            assert [sum(sizes) for sizes in info["batch_sizes"]] == [TINY["batch_budget"]] * N_ENVS
            assert not truncated.any()
    finally:
        vec.close()
    expected_obs, expected_rewards = serial_rollout(actions, [10, 11])
    np.testing.assert_array_equal(np.stack(trace), expected_obs)
    np.testing.assert_array_equal(np.array(rewards), expected_rewards)


def test_sb3_subproc_vec_env_runs_the_environment():
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.vec_env import SubprocVecEnv

    actions = np.array([[[0.3, 0.7], [0.8, 0.2]], [[0.5, 0.5], [0.1, 0.9]]], dtype=np.float32)
    vec = SubprocVecEnv([functools.partial(make_tiny_env) for _ in range(N_ENVS)], start_method="forkserver")
    try:
        vec.seed(20)  # SB3 seeds env i with 20 + i at the next reset
        obs = vec.reset()
        trace, rewards = [obs], []
        for step_actions in actions:
            obs, reward, done, infos = vec.step(step_actions)
            trace.append(obs)
            rewards.append(reward)
            assert [sum(i["batch_sizes"]) for i in infos] == [TINY["batch_budget"]] * N_ENVS
    finally:
        vec.close()
    expected_obs, expected_rewards = serial_rollout(actions, [20, 21])
    np.testing.assert_array_equal(np.stack(trace), expected_obs)
    np.testing.assert_allclose(np.array(rewards), expected_rewards, rtol=1e-6)  # SB3 stores rewards as float32
