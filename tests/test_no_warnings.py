"""The documented happy paths emit no warnings: a warning there is noise every user learns to ignore.

make / reset / step / render (gymnasium.make and the env checker), saving an SB3 agent and
loading it back with ``make_policy`` (its Box spaces were rebuilt from float64 bounds and
warned twice per space), and a tiny ``run_comparison`` with its figures.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import pytest

SMALL = {"dataset_kwargs": {"n_train": 64, "n_val": 16, "n_test": 32}, "epochs": 2, "batch_budget": 16}


@contextmanager
def no_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []


def test_make_reset_step_render_and_check_env_warn_nothing():
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    import mmenv  # noqa: F401 - registers the ids

    with no_warnings():
        env = gym.make("mmenv/DUS-v0", render_mode="rgb_array", **SMALL)
        obs, info = env.reset(seed=0)
        first = env.render()                       # before any step: no labelled line yet
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.render().shape == first.shape
        check_env(env.unwrapped)
        env.close()


def test_sb3_agent_saved_and_loaded_by_make_policy_warns_nothing(tmp_path):
    pytest.importorskip("stable_baselines3")
    from mmenv.agents import make_policy, run_policy
    from mmenv.agents.sb3 import learn, make_sb3_agent, make_sb3_env, save_sb3_model

    from mmenv.datasets import make_synthetic

    with no_warnings():
        env = make_sb3_env(dataset=make_synthetic(n_train=64, n_val=16, n_test=32), epochs=2, batch_budget=16)
        model = make_sb3_agent("ppo", env, seed=0)
        learn(model, total_timesteps=4)
        save_sb3_model(model, tmp_path / "ppo.zip")
        policy = make_policy(str(tmp_path / "ppo.zip"))
        rec = run_policy(env, policy, seeds=[0])[0]
    assert [sum(b) for b in rec.batch_sizes] == [16, 16]


def test_tiny_compare_warns_nothing(tmp_path):
    from mmenv.experiments.compare import run_comparison
    from mmenv.experiments.config import load_config

    with no_warnings():
        summary = run_comparison(load_config("tiny", overrides={"out": str(tmp_path / "c"), "env.epochs": 1}),
                                 progress=False)
    assert summary.status_counts == {"ok": 4}
    assert summary.plots and all(p.is_file() for p in summary.plots)
