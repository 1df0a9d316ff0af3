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
