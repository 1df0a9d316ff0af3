"""render_mode: None, "ansi" (text) and "rgb_array" (a picture), declared in metadata."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

import mmenv  # noqa: F401
from mmenv import DUSEnv

KW = dict(epochs=2, dataset_kwargs={"n_train": 64, "n_val": 16, "n_test": 32})


def test_metadata_declares_the_render_modes():
    assert set(DUSEnv.metadata["render_modes"]) == {"ansi", "rgb_array"}


def test_gym_make_accepts_render_mode_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make("mmenv/DUS-v0", render_mode="ansi", **KW)     # TypeError before
    assert env.render_mode == "ansi"
    env.reset(seed=0)
    assert "discrepancy (probe)" in env.render()
    env.step(np.array([-1.0, 1.0], np.float32))
    text = env.render()
    assert "step 1" in text and "batch sizes: strong=" in text and "reward:" in text


def test_rgb_array_is_a_picture_of_the_episode_so_far():
    env = gym.make("mmenv/DUS-v0", render_mode="rgb_array", **KW)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    img = env.render()
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and img.shape[0] > 100
    assert img.std() > 0       # something is drawn


def test_no_render_mode_renders_nothing_and_bad_modes_are_refused():
    env = gym.make("mmenv/DUS-v0", **KW)
    env.reset(seed=0)
    assert env.unwrapped.render() is None
    with pytest.raises(ValueError, match="render_mode must be None or one of"):
        DUSEnv(render_mode="human", **KW)


def test_sb3_make_vec_env_passes_render_mode_quietly():
    from stable_baselines3.common.env_util import make_vec_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        venv = make_vec_env("mmenv/DUS-v0", n_envs=2, env_kwargs=dict(render_mode="rgb_array", **KW))
    venv.reset()
    assert venv.render_mode == "rgb_array"
