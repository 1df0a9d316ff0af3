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

from .errors import MMEnvError
from .registry import Registry

EPS = 1e-6


class RewardError(MMEnvError, ValueError):
    """A reward cannot be computed from what the environment gave it."""


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
    if ctx.val_accuracy_after is None or ctx.val_accuracy_before is None:
        raise RewardError("the 'val-acc-gain' reward needs validation accuracy before and after the step; "
                          "the environment computes it for rewards with needs_validation = True")
    return float(ctx.val_accuracy_after - ctx.val_accuracy_before)


val_acc_gain_reward.needs_validation = True  # type: ignore[attr-defined]

#: A reward is registered as the callable itself (``make_reward(name)`` returns it, not a call).
REWARDS: Registry = Registry("reward", "mmenv.rewards", construct=False,
                             alternative="or pass a callable reward(ctx) -> float")
REWARDS.register("dus", dus_reward)
REWARDS.register("discrepancy-gap", discrepancy_gap_reward)
REWARDS.register("val-acc-gain", val_acc_gain_reward)


def register_reward(name: str, reward: Callable[[RewardContext], float] | str, overwrite: bool = False) -> None:
    """Register ``reward(ctx: RewardContext) -> float`` under ``name`` (``DUSEnv(reward=name)``).

    Give the callable ``needs_validation = True`` when it reads validation accuracy.
    Installed packages can add rewards through the entry-point group ``mmenv.rewards``.
    """
    REWARDS.register(name, reward, overwrite=overwrite)


def make_reward(reward: str | Callable[[RewardContext], float]) -> Callable[[RewardContext], float]:
    """The reward registered as ``reward``, or ``reward`` itself when it is a callable."""
    if callable(reward) and not isinstance(reward, str):
        return reward
    return REWARDS.make(reward)
