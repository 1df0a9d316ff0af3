import glob
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

import mmenv
from mmenv import DUSEnv
from mmenv.datasets import make_synthetic
from mmenv.learners import LearnerError
from mmenv.sampling import ActionError


@pytest.fixture(scope="module")
def tiny():
    return make_synthetic(n_train=256, n_val=64, n_test=256, seed=1)


def make(tiny, **kw):
    kw.setdefault("epochs", 2)
    kw.setdefault("batch_budget", 32)
    return DUSEnv(dataset=tiny, **kw)


def rollout(env, actions, seed):
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    rewards, sizes, infos = [], [], []
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        trace.append(obs)
        rewards.append(r)
        sizes.append(info["batch_sizes"])
        infos.append(info)
        if term or trunc:
            break
    return np.array(trace), rewards, sizes, infos


def test_registered_and_runs_with_defaults():
    env = gym.make("mmenv/DUS-v0", epochs=1)
    obs, info = env.reset(seed=0)
    assert obs.shape == (2,) and obs.dtype == np.float32
    assert env.unwrapped.modalities == ("strong", "weak")
    _, _, term, _, info = env.step(env.unwrapped.uniform_action())
    assert term and info["test"]["fused"]["accuracy"] > 0.25


def test_gymnasium_env_checker(tiny):
    from gymnasium.utils.env_checker import check_env

    check_env(make(tiny, epochs=1), skip_render_check=True)


def test_sb3_env_checker_without_warnings(tiny):
    from stable_baselines3.common.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(make(tiny, epochs=1, action_space="symmetric"), warn=True)


def test_same_seed_same_actions_identical(tiny):
    rng = np.random.default_rng(0)
    actions = [rng.dirichlet([1, 1]).astype(np.float32) for _ in range(2)]
    a = rollout(make(tiny), actions, seed=7)
    b = rollout(make(tiny), actions, seed=7)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1] == b[1] and a[2] == b[2]
    assert a[3][-1]["test"] == b[3][-1]["test"]
    c = rollout(make(tiny), actions, seed=8)
    assert not np.array_equal(a[0], c[0])


def test_global_rng_untouched(tiny):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    env = make(tiny)
    env.reset(seed=0)
    env.step(env.uniform_action())
    torch.testing.assert_close(torch.rand(3), expected)


def test_every_step_conserves_budget(tiny):
    env = make(tiny, epochs=3, step_every=5, batch_budget=30)
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    done, steps = False, 0
    while not done:
        p = rng.dirichlet([0.5, 0.5])
        _, _, term, trunc, info = env.step(p.astype(np.float32))
        done = term or trunc
        steps += 1
        assert sum(info["batch_sizes"]) == 30
        assert all(s >= 1 for s in info["batch_sizes"])
        exact = 30 * np.asarray(info["proportions"])
        assert np.all(np.abs(np.array(info["batch_sizes"]) - exact) < 1.0) or min(info["batch_sizes"]) == 1
    # step_every=5 iterations: ceil(total_iters / 5) steps, episode ends exactly at the budget
    assert steps == -(-env.total_iters // 5)
    assert info["iteration"] == env.total_iters and info["epoch"] == 3


def test_step_granularity_epoch(tiny):
    env = make(tiny, epochs=3)
    env.reset(seed=0)
    for k in range(1, 4):
        _, _, term, _, info = env.step(env.uniform_action())
        assert info["epoch"] == k and info["iteration"] == k * env.iters_per_epoch
    assert term
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.uniform_action())


def test_info_contents(tiny):
    env = make(tiny, epochs=1)
    env.reset(seed=0)
    _, r, term, trunc, info = env.step(np.array([0.25, 0.75], dtype=np.float32))
    assert info["batch_sizes"] == [8, 24]
    assert set(info["train_loss"]) >= {"total", "fused", "strong", "weak"}
    assert set(info["train_accuracy"]) == {"strong", "weak"}
    assert term and not trunc and info["diverged"] is False
    test = info["test"]
    assert set(test) == {"fused", "strong", "weak"}
    for metrics in test.values():
        assert set(metrics) == {"accuracy", "map", "macro_f1"}
        assert all(0.0 <= v <= 1.0 for v in metrics.values())


def test_reward_is_eq5_on_the_state_acted_on(tiny):
    env = make(tiny, epochs=2)
    obs, _ = env.reset(seed=0)
    prop = np.array([0.3, 0.7])
    _, r, *_ = env.step(prop.astype(np.float32))
    dominant = np.argmax(obs)
    expected = sum(np.log(prop[j]) for j in range(2) if obs[j] != obs[dominant]) / 2
    assert r == pytest.approx(expected, rel=1e-5)


def test_discrepancy_sum_observation_matches_hand_computation(tiny):
    """With one iteration per step, the observation after step 1 is s_1 / N_B."""
    env = make(tiny, epochs=1, step_every=1)
    env.reset(seed=0)
    obs, *_ , info = env.step(env.uniform_action())
    s1 = env.tracker.last
    np.testing.assert_allclose(obs, (s1 / 32).numpy(), rtol=1e-6)
    obs2, *_ = env.step(env.uniform_action())
    s2 = env.tracker.last
    np.testing.assert_allclose(obs2, ((s1 + s2) / 2 / 32).numpy(), rtol=1e-5)


def test_full_episode_well_above_chance():
    env = gym.make("mmenv/DUS-v0", epochs=5)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, term, trunc, info = env.step(env.unwrapped.uniform_action())
        done = term or trunc
    assert info["test"]["fused"]["accuracy"] > 0.85  # chance is 0.25


def test_divergence_truncates(tiny):
    env = make(tiny, epochs=3, learner_kwargs={"lr": 1e6})
    env.reset(seed=0)
    done, info = False, {}
    while not done:
        obs, r, term, trunc, info = env.step(env.uniform_action())
        done = term or trunc
    assert trunc and not term and info["diverged"] is True
    assert np.all(np.isfinite(obs)) and np.isfinite(r)


def test_tensorboard_logging(tiny, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    env = make(tiny, epochs=2, log_dir=str(tmp_path))
    env.reset(seed=0)
    env.step(env.uniform_action())
    env.step(env.uniform_action())
    env.close()
    files = glob.glob(str(tmp_path / "events.out.tfevents.*"))
    assert files
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"reward", "discrepancy/weak", "batch_size/strong", "train_loss/total",
            "train_accuracy/weak", "test/fused/accuracy"} <= tags
    assert [e.value for e in acc.Scalars("batch_size/strong")] == [16, 16]


def test_other_rewards_and_callable(tiny):
    env = make(tiny, epochs=1, reward="val-acc-gain")
    env.reset(seed=0)
    _, r, *_ = env.step(env.uniform_action())
    assert r > 0  # an untrained model gains validation accuracy after one epoch
    calls = []
    env = make(tiny, epochs=1, reward=lambda ctx: calls.append(ctx) or 42.0)
    env.reset(seed=0)
    _, r, *_ = env.step(env.uniform_action())
    assert r == 42.0 and calls[0].batch_sizes == [16, 16]


def test_bad_inputs_are_named(tiny):
    env = make(tiny)
    env.reset(seed=0)
    for bad, match in [([0.5], "shape"), ([np.nan, 0.5], "NaN"), ([np.inf, 0.1], "NaN or inf"),
                       ([-0.5, 0.5], "outside")]:
        with pytest.raises(ActionError, match=match):
            env.step(np.array(bad, dtype=np.float32))
    with pytest.raises(ValueError, match="valid names.*synthetic"):
        DUSEnv(dataset="nope")
    with pytest.raises(ValueError, match="valid names.*baseline"):
        DUSEnv(dataset=tiny, learner="nope")
    with pytest.raises(ValueError, match="valid names"):
        DUSEnv(dataset=tiny, reward="nope")
    with pytest.raises(ValueError, match="step_every"):
        DUSEnv(dataset=tiny, step_every="iteration")
    with pytest.raises(ValueError, match="batch_budget"):
        DUSEnv(dataset=tiny, batch_budget=1)


def test_learner_modality_mismatch_is_clear():
    three = make_synthetic(num_modalities=3, n_train=64, n_val=16, n_test=32)
    learner = mmenv.learners.BaselineLearner()
    learner.max_modalities = 2
    with pytest.raises(LearnerError, match="supports 2 to 2 modalities, the dataset has 3"):
        DUSEnv(dataset=three, learner=learner)


def test_three_modalities_end_to_end():
    three = make_synthetic(num_modalities=3, n_train=256, n_val=32, n_test=256)
    env = DUSEnv(dataset=three, epochs=3, batch_budget=48)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3,)
    done = False
    while not done:
        _, _, term, trunc, info = env.step(np.array([0.2, 0.4, 0.4], dtype=np.float32))
        done = term or trunc
        assert sum(info["batch_sizes"]) == 48
    assert set(info["test"]) == {"fused", "strong", "weak1", "weak2"}
    assert info["test"]["fused"]["accuracy"] > 0.5


def test_min_batch_zero_lets_a_modality_sit_out(tiny):
    env = make(tiny, epochs=1, min_batch=0)
    env.reset(seed=0)
    obs, r, term, trunc, info = env.step(np.array([1.0, 0.0], dtype=np.float32))
    assert info["batch_sizes"] == [32, 0]
    assert term and not trunc and not info["diverged"]
    assert info["train_accuracy"]["weak"] == 0.0 and np.all(np.isfinite(obs))


def test_min_batch_zero_mean_discrepancy_stays_finite(tiny):
    env = make(tiny, epochs=1, min_batch=0, discrepancy="mean")
    env.reset(seed=0)
    obs, r, term, trunc, info = env.step(np.array([1.0, 0.0], dtype=np.float32))
    assert term and not info["diverged"] and np.all(np.isfinite(obs))
