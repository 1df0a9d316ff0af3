import math

import numpy as np
import pytest

from mmenv.rewards import RewardContext, discrepancy_gap_reward, dus_reward, make_reward, val_acc_gain_reward


def ctx(obs, prop, nxt=None, vb=None, va=None):
    return RewardContext(np.array(obs), np.array(prop), np.array(nxt if nxt is not None else obs), [0], vb, va)


def test_dus_reward_by_hand():
    # Modality 0 dominant: only the non-dominant modality 1 contributes, (1/2) log(0.75).
    assert dus_reward(ctx([0.6, 0.3], [0.25, 0.75])) == pytest.approx(0.5 * math.log(0.75))
    # Three modalities, modality 1 dominant: (1/3)(log 0.5 + log 0.3).
    assert dus_reward(ctx([0.2, 0.5, 0.1], [0.5, 0.2, 0.3])) == pytest.approx((math.log(0.5) + math.log(0.3)) / 3)


def test_dus_reward_prefers_giving_the_weak_modality_more():
    assert dus_reward(ctx([0.6, 0.3], [0.2, 0.8])) > dus_reward(ctx([0.6, 0.3], [0.8, 0.2]))


def test_dus_reward_clamps_zero_and_ties():
    r = dus_reward(ctx([0.6, 0.3], [1.0, 0.0]))
    assert math.isfinite(r) and r == pytest.approx(0.5 * math.log(1e-6))
    assert dus_reward(ctx([0.4, 0.4], [0.5, 0.5])) == 0.0  # tied maxima are all dominant


def test_other_rewards():
    assert discrepancy_gap_reward(ctx([0, 0], [0.5, 0.5], nxt=[0.7, 0.2])) == pytest.approx(-0.5)
    assert val_acc_gain_reward(ctx([0, 0], [0.5, 0.5], vb=0.5, va=0.6)) == pytest.approx(0.1)
    assert make_reward("dus") is dus_reward
    f = lambda c: 1.0  # noqa: E731
    assert make_reward(f) is f
    with pytest.raises(ValueError, match="valid names"):
        make_reward("nope")


# ---------------------------------------------------------------- one registry for both env ids
TINY = {"epochs": 2, "batch_budget": 16, "action_space": "unit", "dataset_kwargs": {"n_train": 64, "n_val": 32, "n_test": 32, "dims": 4}}


def _episode(env, actions):
    env.reset(seed=5)
    rewards, infos = [], []
    for a in actions:
        _, r, term, trunc, info = env.step(a)
        rewards.append(r)
        infos.append(info)
        if term or trunc:
            break
    return rewards, infos


@pytest.mark.parametrize("name", ["dus", "discrepancy-gap", "val-acc-gain", "final-val-acc"])
def test_reward_names_mean_the_same_on_both_env_ids(name):
    import gymnasium as gym

    import mmenv  # noqa: F401 - registers the ids

    actions = [np.array([0.3, 0.7], np.float32), np.array([0.8, 0.2], np.float32)]
    plain, _ = _episode(gym.make("mmenv/DUS-v0", reward=name, **TINY), actions)
    bench, infos = _episode(gym.make("mmenv/DUSBench-v0", reward=name, **TINY), actions)
    assert len(plain) == len(bench) == 2
    assert bench == plain   # bit for bit: the same function on the same steps
    if name == "final-val-acc":
        assert bench[0] == 0.0 and 0.0 < bench[1] <= 1.0 and infos[1]["val_accuracy"] == bench[1]


def test_registered_reward_works_on_the_benchmark_env():
    import gymnasium as gym

    import mmenv
    from mmenv.rewards import REWARDS

    seen = []

    def share_of_first(ctx: RewardContext) -> float:
        seen.append((ctx.val_accuracy_before, ctx.val_accuracy_after, ctx.done))
        return float(ctx.proportions[0])

    share_of_first.needs_validation = True
    mmenv.register_reward("share-of-first", share_of_first)
    try:
        env = gym.make("mmenv/DUSBench-v0", reward="share-of-first", **TINY)
        rewards, infos = _episode(env, [np.array([0.25, 0.75], np.float32)] * 2)
        assert rewards == pytest.approx([0.25, 0.25])
        # validation accuracy before each step is the one after the step before (one pass per step)
        assert seen[1][0] == seen[0][1] == infos[0]["val_accuracy"]
        assert [d for _, _, d in seen] == [False, True]
    finally:
        REWARDS.unregister("share-of-first")


def test_benchmark_env_evaluates_validation_once_per_step():
    import gymnasium as gym

    import mmenv  # noqa: F401

    env = gym.make("mmenv/DUSBench-v0", reward="val-acc-gain", **TINY)
    base = env.unwrapped
    calls = []
    evaluate = base.evaluate
    base.evaluate = lambda split="test": calls.append(split) or evaluate(split)
    _episode(env, [np.array([0.5, 0.5], np.float32)] * 2)
    assert calls.count("val") == 1 + 2   # reset + one per step
    with pytest.raises(mmenv.MMEnvError, match="dsu.*did you mean 'dus'"):
        gym.make("mmenv/DUSBench-v0", reward="dsu", **TINY)
