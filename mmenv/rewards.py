"""Rewards: the paper's Eq. 5 (default) and alternatives, all pluggable.

A reward is a callable ``reward(ctx: RewardContext) -> float``. A callable with the
attribute ``needs_validation = True`` makes the environment evaluate validation
accuracy before and after every step (that costs a pass over the validation split).

* ``"dus"`` (Eq. 5, our reading): ``r = (1/m) sum_j 1[s^_j != max_k s^_k] log(a^_j)``
  computed from the state the agent acted on (``ctx.observation``) and its
  proportions; ``a^_j`` is clamped to at least ``eps = 1e-6`` before the log. It is
  <= 0 and rewards a larger share for the modalities that are not dominant. Ties for
  the maximum count as dominant (every tied modality gets indicator 0).
* ``"discrepancy-gap"``: ``r = -(max_j s^'_j - min_j s^'_j)`` on the observation
  *after* the step: keep the modalities' cumulative discrepancies close.
* ``"val-acc-gain"``: fused validation accuracy after the step minus before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

EPS = 1e-6


@dataclass
class RewardContext:
    observation: np.ndarray          # cumulative discrepancy the agent acted on
    proportions: np.ndarray          # normalised proportions a^ (sum 1)
    next_observation: np.ndarray     # cumulative discrepancy after the step
    batch_sizes: list[int]
    val_accuracy_before: float | None = None
    val_accuracy_after: float | None = None
    info: dict = field(default_factory=dict)


def dus_reward(ctx: RewardContext) -> float:
    s = np.asarray(ctx.observation, dtype=np.float64)
    a = np.clip(np.asarray(ctx.proportions, dtype=np.float64), EPS, None)
    not_dominant = (s != s.max()).astype(np.float64)
    return float((not_dominant * np.log(a)).sum() / s.shape[0])


def discrepancy_gap_reward(ctx: RewardContext) -> float:
    s = np.asarray(ctx.next_observation, dtype=np.float64)
    return float(-(s.max() - s.min()))


def val_acc_gain_reward(ctx: RewardContext) -> float:
    return float(ctx.val_accuracy_after - ctx.val_accuracy_before)


val_acc_gain_reward.needs_validation = True  # type: ignore[attr-defined]

REWARDS: dict[str, Callable[[RewardContext], float]] = {
    "dus": dus_reward,
    "discrepancy-gap": discrepancy_gap_reward,
    "val-acc-gain": val_acc_gain_reward,
}


def make_reward(reward) -> Callable[[RewardContext], float]:
    if callable(reward):
        return reward
    if reward not in REWARDS:
        raise ValueError(f"unknown reward {reward!r}; valid names: {sorted(REWARDS)} (or a callable)")
    return REWARDS[reward]
