"""Rewards: the one registry of both environment ids (``mmenv/DUS-v0``, ``mmenv/DUSBench-v0``).

A reward is a callable ``reward(ctx: RewardContext) -> float``; ``reward=name`` means the
same function on both ids (:func:`register_reward` adds one to both). What it reads of
validation accuracy is told by attributes of the callable (:func:`validation_need`):

* ``needs_validation = True``: accuracy before and after every step
  (``ctx.val_accuracy_before`` / ``ctx.val_accuracy_after``);
* ``needs_final_validation = True``: accuracy after the episode's last step only
  (``ctx.val_accuracy_after`` when ``ctx.done``; one pass per run).

``DUSEnv`` evaluates what a reward needs (on a diverged step the accuracy after it is 0);
``DUSBench`` does the same with one validation pass per step (the accuracy after a step is
the accuracy before the next).

Built in:

* ``"dus"`` (Eq. 5, our reading): ``r = (1/m) sum_j 1[s^_j != max_k s^_k] log(a^_j)``
  computed from the state the agent acted on (``ctx.observation``) and its
  proportions; ``a^_j`` is clamped to at least ``eps = 1e-6`` before the log. It is
  <= 0 and rewards a larger share for the modalities that are not dominant. Ties for
  the maximum count as dominant (every tied modality gets indicator 0).
* ``"discrepancy-gap"``: ``r = -(max_j s^'_j - min_j s^'_j)`` on the observation
  *after* the step: keep the modalities' cumulative discrepancies close.
* ``"val-acc-gain"``: fused validation accuracy after the step minus before it. Over an
  episode the sum is the final validation accuracy minus that of the initial model.
* ``"final-val-acc"``: 0 at every step and the fused validation accuracy at the last step
  (0 if the run diverged): the same objective as ``val-acc-gain``, one pass per run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import MMEnvError
from .registry import Registry
from .validation import is_real

__all__ = ["RewardContext", "RewardError", "REWARDS", "register_reward", "make_reward", "validation_need",
           "reward_name", "reward_value", "dus_reward", "discrepancy_gap_reward", "val_acc_gain_reward",
           "final_val_acc_reward", "EPS"]

EPS = 1e-6


class RewardError(MMEnvError, ValueError):
    """A reward cannot be computed from what the environment gave it."""


@dataclass
class RewardContext:
    """What a reward sees of one step (``done``: the step ended the episode)."""

    observation: np.ndarray          # cumulative discrepancy the agent acted on
    proportions: np.ndarray          # normalised proportions a^ (sum 1)
    next_observation: np.ndarray     # cumulative discrepancy after the step
    batch_sizes: list[int]
    val_accuracy_before: float | None = None
    val_accuracy_after: float | None = None
    info: dict = field(default_factory=dict)
    done: bool = False


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


def final_val_acc_reward(ctx: RewardContext) -> float:
    if not ctx.done:
        return 0.0
    if ctx.val_accuracy_after is None:
        raise RewardError("the 'final-val-acc' reward needs validation accuracy after the last step; "
                          "the environment computes it for rewards with needs_final_validation = True")
    return float(ctx.val_accuracy_after)


final_val_acc_reward.needs_final_validation = True  # type: ignore[attr-defined]

#: A reward is registered as the callable itself (``make_reward(name)`` returns it, not a call).
REWARDS: Registry = Registry("reward", "mmenv.rewards", construct=False,
                             alternative="or pass a callable reward(ctx) -> float")
REWARDS.register("dus", dus_reward)
REWARDS.register("discrepancy-gap", discrepancy_gap_reward)
REWARDS.register("val-acc-gain", val_acc_gain_reward)
REWARDS.register("final-val-acc", final_val_acc_reward)


def register_reward(name: str, reward: Callable[[RewardContext], float] | str, overwrite: bool = False) -> None:
    """Register ``reward(ctx: RewardContext) -> float`` under ``name`` (``DUSEnv(reward=name)``).

    Give the callable ``needs_validation = True`` when it reads validation accuracy before
    and after every step, ``needs_final_validation = True`` when only after the last one.
    Installed packages can add rewards through the entry-point group ``mmenv.rewards``.
    """
    REWARDS.register(name, reward, overwrite=overwrite)


def make_reward(reward: str | Callable[[RewardContext], float]) -> Callable[[RewardContext], float]:
    """The reward registered as ``reward``, or ``reward`` itself when it is a callable."""
    if callable(reward) and not isinstance(reward, str):
        return reward
    return REWARDS.make(reward)


def validation_need(reward: Callable[[RewardContext], float]) -> str | None:
    """``"step"`` (accuracy before and after every step), ``"final"`` (after the last step)
    or ``None`` (no validation pass), from the reward's attributes."""
    if getattr(reward, "needs_validation", False):
        return "step"
    if getattr(reward, "needs_final_validation", False):
        return "final"
    return None


def reward_name(reward: str | Callable[[RewardContext], float]) -> str:
    """The name a reward argument is reported under (errors, logs)."""
    return reward if isinstance(reward, str) else getattr(reward, "__name__", repr(reward))


def _is_real_scalar_array(value: Any) -> bool:
    """A one-element real NumPy array or torch tensor (a reward written with array maths)."""
    import torch

    if isinstance(value, np.ndarray):
        return value.size == 1 and value.dtype.kind in "iuf"
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and (value.dtype.is_floating_point or not value.dtype.is_complex) \
            and value.dtype != torch.bool
    return False


def reward_value(name: str, raw: Any, diverged: bool, proportions: Any) -> float:
    """A reward function's return value as the step's reward: one real number; a non-finite
    one is 0 on a diverged step and a :class:`RewardError` on a healthy one."""
    if not (is_real(raw) or _is_real_scalar_array(raw)):
        raise RewardError(f"reward {name!r} returned {raw!r} ({type(raw).__name__}); "
                          "a reward function must return one float")
    reward = float(raw)
    if not math.isfinite(reward):
        reward = 0.0 if diverged else reward
        if not math.isfinite(reward):
            raise RewardError(f"reward {name!r} returned {reward} on a healthy step (inputs: "
                              f"proportions {proportions}); a reward must be finite")
    return reward
