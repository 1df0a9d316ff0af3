"""The action spaces: the paper's unit proportions, the symmetric map, and the softmax logits
that the registered id gives Gaussian agents by default."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import mmenv  # noqa: F401  (registers the id)
from mmenv import DUSEnv
from mmenv.datasets import make_synthetic
from mmenv.sampling import SOFTMAX_SCALE, ActionError, action_to_proportions, allocate, proportions_to_action

DATA = dict(n_train=64, n_val=16, n_test=32)


def test_softmax_space_maps_logits_to_bounded_shares():
    np.testing.assert_allclose(action_to_proportions([0.0, 0.0], 2, space="softmax"), [0.5, 0.5])
    np.testing.assert_allclose(action_to_proportions([0.3, 0.3, 0.3], 3, space="softmax"), [1 / 3] * 3)
    p = action_to_proportions([-1.0, 1.0], 2, space="softmax")
    assert p[1] / p[0] == pytest.approx(20.0)                      # exp(2 * ln(20) / 2)
    assert allocate(p, 64) == [3, 61]                                # the most extreme split of 64
    with pytest.raises(ActionError, match=r"\[-1.0, 1\]"):
        action_to_proportions([-1.5, 1.0], 2, space="softmax")
    with pytest.raises(ValueError, match="unknown action space"):
        action_to_proportions([0.5, 0.5], 2, space="logits")


@pytest.mark.parametrize("space", ["unit", "symmetric", "softmax"])
def test_proportions_round_trip_through_every_space(space):
    for p in ([0.5, 0.5], [0.25, 0.75], [0.2, 0.3, 0.5], [0.1, 0.9]):
        a = proportions_to_action(p, space)
        assert a.dtype == np.float32 and np.all(a >= (0 if space == "unit" else -1)) and np.all(a <= 1)
        np.testing.assert_allclose(action_to_proportions(a, len(p), space=space), p, atol=1e-6)
    # Beyond the softmax space's ratio of 20 the shares are clipped towards each other.
    clipped = action_to_proportions(proportions_to_action([0.01, 0.99], "softmax"), 2, space="softmax")
    np.testing.assert_allclose(clipped, [1 / 21, 20 / 21], atol=1e-6)


def test_registered_id_defaults_to_softmax_and_the_paper_space_stays_available():
    env = gym.make("mmenv/DUS-v0", dataset=make_synthetic(**DATA), epochs=1, batch_budget=16)
    base = env.unwrapped
    assert base.action_space_name == "softmax" and env.action_space == gym.spaces.Box(-1, 1, (2,), np.float32)
    np.testing.assert_array_equal(base.uniform_action(), [0.0, 0.0])
    paper = gym.make("mmenv/DUS-v0", dataset=make_synthetic(**DATA), epochs=1, batch_budget=16,
                     action_space="unit")
    assert paper.unwrapped.action_space_name == "unit" and paper.action_space.low.tolist() == [0.0, 0.0]
    assert DUSEnv(dataset=make_synthetic(**DATA), epochs=1).action_space_name == "unit"   # the class: the paper's
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([-1.0, 1.0], dtype=np.float32))
    assert info["batch_sizes"] == [1, 15]                            # 16 / 21 rounds to 1 row
    np.testing.assert_allclose(info["proportions"], [1 / 21, 20 / 21], atol=1e-6)
    with pytest.raises(ValueError, match="softmax_scale"):
        DUSEnv(dataset=make_synthetic(**DATA), action_space="softmax", softmax_scale=0.0)
    assert DUSEnv(dataset=make_synthetic(**DATA), action_space="softmax").softmax_scale == pytest.approx(SOFTMAX_SCALE)


def _starved_share(model, env, draws: int = 400, threshold: int = 2) -> float:
    """Share of the fresh policy's sampled actions that leave a modality <= threshold rows of N_B."""
    base = env.unwrapped
    rng = np.random.default_rng(0)
    obs = rng.uniform(0.0, 0.3, size=(draws, len(base.modalities))).astype(np.float32)
    actions, _ = model.predict(obs, deterministic=False)
    starved = 0
    for a in actions:
        a = np.clip(a, env.action_space.low, env.action_space.high)   # what SB3 sends to the env
        sizes = allocate(base.action_to_proportions(a), base.batch_budget, base.min_batch)
        starved += min(sizes) <= threshold
    return starved / draws


def test_fresh_plain_a2c_on_the_registered_id_does_not_starve_a_modality():
    """Regression: on [0, 1] a fresh A2C left a modality <= 2 of 64 rows on about half its steps."""
    from stable_baselines3 import A2C

    env = gym.make("mmenv/DUS-v0", dataset=make_synthetic(**DATA), epochs=1)
    model = A2C("MlpPolicy", env, seed=0, device="cpu")
    assert env.unwrapped.batch_budget == 64
    assert _starved_share(model, env) < 0.10
    # Its deterministic action (the Gaussian mean, near 0) is close to an even split.
    det, _ = model.predict(np.array([0.1, 0.2], dtype=np.float32), deterministic=True)
    sizes = allocate(env.unwrapped.action_to_proportions(det), 64, 1)
    assert abs(sizes[0] - 32) <= 2
    paper = gym.make("mmenv/DUS-v0", dataset=make_synthetic(**DATA), epochs=1, action_space="unit")
    assert _starved_share(A2C("MlpPolicy", paper, seed=0, device="cpu"), paper) > 0.3   # the trap, still there


def test_checkpoint_refuses_another_action_space(tmp_path):
    from mmenv.checkpoint import CheckpointError

    env = DUSEnv(dataset=make_synthetic(**DATA), epochs=2, batch_budget=16, action_space="softmax")
    env.reset(seed=0)
    state = env.state_dict()
    other = DUSEnv(dataset=make_synthetic(**DATA), epochs=2, batch_budget=16, action_space="symmetric")
    with pytest.raises(CheckpointError, match="action_space"):
        other.load_state_dict(state)
