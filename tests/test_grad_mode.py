"""Training inside the environment does not depend on the caller's grad mode (sb3-contrib's ARS
steps environments under torch.no_grad())."""

from __future__ import annotations

import contextlib

import gymnasium as gym
import numpy as np
import pytest
import torch

import mmenv  # noqa: F401
from mmenv import DUSEnv
from mmenv.datasets import make_synthetic
from mmenv.vector_env import DUSVectorEnv

KW = dict(epochs=2, batch_budget=16, iters_per_epoch=3)
MODES = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode, "enable_grad": contextlib.nullcontext}


def _data():
    return make_synthetic(n_train=64, n_val=16, n_test=32)


def _trace(env, mode, vector=False):
    actions = [np.array([0.25, 0.75], np.float32), np.array([0.6, 0.4], np.float32)]
    with MODES[mode]():
        obs, _ = env.reset(seed=3)
        out = [obs]
        for a in actions:
            a = np.stack([a, a[::-1]]) if vector else a
            obs, reward, *_ = env.step(a)
            out.append(np.asarray(obs))
            out.append(np.asarray(reward))
    assert torch.is_grad_enabled()      # the caller's mode is left as it was ...
    return out


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_single_env_steps_the_same_under_any_grad_mode(mode):
    ref = _trace(DUSEnv(dataset=_data(), **KW), "enable_grad")
    got = _trace(DUSEnv(dataset=_data(), **KW), mode)
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_sync_vector_env_under_any_grad_mode(mode):
    make = lambda: gym.make_vec("mmenv/DUS-v0", num_envs=2, vectorization_mode="sync",  # noqa: E731
                                dataset=_data(), action_space="unit", **KW)
    for a, b in zip(_trace(make(), "enable_grad", vector=True), _trace(make(), mode, vector=True)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
def test_batched_vector_env_under_any_grad_mode(mode):
    make = lambda: DUSVectorEnv(num_envs=2, dataset=_data(), **KW)  # noqa: E731
    for a, b in zip(_trace(make(), "enable_grad", vector=True), _trace(make(), mode, vector=True)):
        np.testing.assert_array_equal(a, b)


def test_grad_mode_inside_is_restored():
    env = DUSEnv(dataset=_data(), **KW)
    with torch.no_grad():
        env.reset(seed=0)
        env.step(env.uniform_action())
        assert not torch.is_grad_enabled()
    with torch.inference_mode():
        env.step(env.uniform_action())
        assert torch.is_inference_mode_enabled()
