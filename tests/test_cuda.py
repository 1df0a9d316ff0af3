"""The GPU path: data, sampling, tracking and training stay on the device.

Skipped on machines without CUDA (the development and CI machines have none); run on a
GPU machine with ``python -m pytest tests/test_cuda.py``.
"""

import numpy as np
import pytest
import torch

from mmenv import DUSEnv
from mmenv.datasets import make_synthetic
from mmenv.step_stats import StepStats

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def tiny():
    return make_synthetic(n_train=256, n_val=64, n_test=256, seed=1)


def test_everything_lives_on_the_device(tiny):
    env = DUSEnv(dataset=tiny, epochs=2, batch_budget=32, device="cuda")
    env.reset(seed=0)
    assert env.dataset.train.inputs["weak"].is_cuda and env.dataset.train.labels.is_cuda
    assert env.tracker.value.is_cuda and env.generator.device.type == "cuda"
    assert all(p.is_cuda for p in env.learner.model.parameters())
    done = False
    while not done:
        _, _, term, trunc, info = env.step(np.array([0.3, 0.7], dtype=np.float32))
        done = term or trunc
        assert sum(info["batch_sizes"]) == 32
    assert info["test"]["fused"]["accuracy"] > 0.5


def test_training_iterations_do_not_synchronise(tiny):
    env = DUSEnv(dataset=tiny, epochs=2, batch_budget=32, device="cuda")
    env.reset(seed=0)
    env.step(env.uniform_action())  # warm-up: lazy initialisation may synchronise once
    stats = StepStats(env.modalities, env.tracker, env.device)
    torch.cuda.set_sync_debug_mode("error")
    try:
        env._train_segment([10, 22], 4, env.epoch, stats)
        stats.flush()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_same_seed_close_on_cuda(tiny):
    def run():
        env = DUSEnv(dataset=tiny, epochs=2, batch_budget=32, device="cuda")
        obs, _ = env.reset(seed=3)
        trace = [obs]
        for _ in range(2):
            obs, *_ = env.step(np.array([0.4, 0.6], dtype=np.float32))
            trace.append(obs)
        return np.array(trace)

    np.testing.assert_allclose(run(), run(), atol=1e-4)


def test_bf16_autocast_runs(tiny):
    env = DUSEnv(dataset=tiny, epochs=1, batch_budget=32, device="cuda", autocast_dtype="bfloat16")
    env.reset(seed=0)
    _, _, term, _, info = env.step(env.uniform_action())
    assert term and info["test"]["fused"]["accuracy"] > 0.4


def test_vector_env_matches_single_envs_on_cuda(tiny):
    import gymnasium as gym

    import mmenv  # noqa: F401  (registers the environment)

    kwargs = dict(dataset=tiny, epochs=1, batch_budget=32, device="cuda")
    vec = gym.make_vec("mmenv/DUS-v0", num_envs=2, vectorization_mode="vector_entry_point", **kwargs)
    obs, _ = vec.reset(seed=[5, 6])
    actions = np.array([[0.3, 0.7], [0.6, 0.4]], dtype=np.float32)
    vobs, *_ = vec.step(actions)
    for k, seed in enumerate((5, 6)):
        env = DUSEnv(**kwargs)
        env.reset(seed=seed)
        sobs, *_ = env.step(actions[k])
        np.testing.assert_allclose(vobs[k], sobs, atol=1e-4)
