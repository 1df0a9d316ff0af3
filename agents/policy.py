"""The :class:`Policy` protocol every mmenv policy follows.

A policy maps the DUS observation (the cumulative discrepancy vector, one value per
modality) to *proportions*: a vector in ``[0, 1]^m`` that sums to 1. The runner
(:func:`mmenv.agents.runner.run_policy`) turns proportions into the environment's action with
``env.unwrapped.proportions_to_action``, so a policy never needs to know whether the
environment uses the unit or the symmetric action space.

Lifecycle within one episode (= one training run of the multimodal model)::

    obs, info = env.reset(seed=0)
    policy.reset(env.unwrapped)                  # start of the episode
    while not done:
        p = policy.act(obs, info)                # proportions
        next_obs, r, term, trunc, info = env.step(env.unwrapped.proportions_to_action(p))
        policy.update(obs, p, r, next_obs, term, trunc, info)   # online learning (optional)
        obs = next_obs
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmenv.errors import MMEnvError, UnknownNameError

__all__ = ["Policy", "PolicyError", "UnknownPolicyError", "normalise_proportions"]


class PolicyError(MMEnvError, ValueError):
    """A policy was built or called with arguments it cannot work with."""


class UnknownPolicyError(UnknownNameError, PolicyError):
    """No policy (or SB3 algorithm) is registered under the name asked for."""


def normalise_proportions(p: np.ndarray) -> np.ndarray:
    """Non-negative weights -> proportions summing to 1.

    NaN/inf and negative entries count as 0; the rest are rescaled to sum 1 (so
    ``[1, 3]`` -> ``[0.25, 0.75]``); if nothing positive is left, uniform.
    """
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    p = np.where(np.isfinite(p), p, 0.0)
    p = np.clip(p, 0.0, None)
    total = p.sum()
    if total <= 0.0:
        return np.full(p.shape[0], 1.0 / p.shape[0])
    return p / total


class Policy:
    """Base class of every policy (heuristic, REINFORCE, SB3 wrapper, callable wrapper).

    Subclasses implement :meth:`act`; learning policies also implement :meth:`update`,
    and policies with parameters implement :meth:`save` / :meth:`load`.
    """

    name: str = "policy"
    #: the :class:`mmenv.agents.saved.AgentCard` of a saved agent (environment, observation, reward
    #: it was trained with); ``None`` for policies that were not loaded from a file
    card: Any = None

    def reset(self, env: Any) -> None:
        """Start of an episode. ``env`` is the unwrapped :class:`mmenv.DUSEnv`."""

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        """Proportions in ``[0, 1]^m`` summing to 1 for observation ``obs``."""
        raise NotImplementedError

    def update(self, obs: np.ndarray, proportions: np.ndarray, reward: float, next_obs: np.ndarray,
               terminated: bool, truncated: bool, info: dict) -> None:
        """Learn from one transition. Non-learning policies ignore it."""

    def save(self, path: str | Path) -> None:
        raise NotImplementedError(f"policy {self.name!r} has no parameters to save")

    @classmethod
    def load(cls, path: str | Path, **kwargs) -> Policy:
        raise NotImplementedError(f"{cls.__name__} cannot be loaded from a file")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class CallablePolicy(Policy):
    """Wraps a plain function ``f(obs, info) -> proportions``."""

    def __init__(self, fn, name: str | None = None) -> None:
        if not callable(fn):
            raise PolicyError(f"expected a callable f(obs, info) -> proportions, got {type(fn).__name__}")
        self.fn = fn
        self.name = str(name or getattr(fn, "__name__", "callable"))

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        return normalise_proportions(self.fn(obs, info))
