"""Run a policy on a DUS environment and record what happened.

``run_policy(env, policy, episodes, seeds)`` plays whole episodes (training runs) and
returns one :class:`EpisodeRecord` each: the final test metrics, the reward sum, and
per-step trajectories of batch sizes, proportions and discrepancy.

``policy`` may be

* a :class:`mmenv.agents.Policy` (heuristic, REINFORCE, ...),
* a Stable-Baselines3 model (wrapped in :class:`mmenv.agents.sb3.SB3Policy`: deterministic
  ``predict``, action mapped back to proportions), or
* a plain callable ``f(obs, info) -> proportions``.

Proportions reach the environment through ``env.unwrapped.proportions_to_action``, so
the same policy runs on unit and symmetric action spaces. With ``learn=True`` the
runner calls ``policy.update(...)`` after every step (online REINFORCE learns there;
heuristics ignore it).

Example::

    from mmenv import DUSEnv
    from mmenv.agents import make_policy, run_policy

    env = DUSEnv(epochs=3, batch_budget=16)
    records = run_policy(env, make_policy("dus-h"), episodes=2, seeds=[0, 1])
    print(records[0].test["fused"]["accuracy"], records[0].batch_sizes)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .policy import CallablePolicy, Policy, PolicyError

__all__ = ["EpisodeRecord", "run_policy", "as_policy", "steps_per_episode"]


@dataclass
class EpisodeRecord:
    """One episode. Trajectories have one entry per environment step.

    ``discrepancy[t]`` is the observation *after* step t; the observation the first
    action saw is ``initial_discrepancy``. ``proportions[t]`` are the normalised
    proportions the environment applied (``info["proportions"]``).
    """

    seed: int | None
    test: dict | None
    reward_sum: float
    steps: int
    diverged: bool
    wall_time_s: float
    batch_sizes: list[list[int]] = field(default_factory=list)
    discrepancy: list[list[float]] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    proportions: list[list[float]] = field(default_factory=list)
    modalities: list[str] = field(default_factory=list)
    initial_discrepancy: list[float] = field(default_factory=list)

    def add_step(self, reward: float, info: dict[str, Any]) -> None:
        """Record one environment step (its reward and ``info``)."""
        self.steps += 1
        self.reward_sum += float(reward)
        self.rewards.append(float(reward))
        self.batch_sizes.append([int(b) for b in info["batch_sizes"]])
        self.proportions.append([float(p) for p in info["proportions"]])
        self.discrepancy.append([float(s) for s in info["discrepancy"]])
        self.diverged = self.diverged or bool(info.get("diverged", False))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def as_policy(policy: Policy | Callable | Any) -> Policy:
    """Wrap an SB3 model or a callable as a :class:`Policy` (a Policy passes through)."""
    if isinstance(policy, Policy):
        return policy
    if hasattr(policy, "predict") and hasattr(policy, "action_space") and hasattr(policy, "policy"):
        from .sb3 import SB3Policy

        return SB3Policy(policy)
    if callable(policy):
        return CallablePolicy(policy)
    raise PolicyError(f"cannot run {type(policy).__name__}: pass an mmenv.agents.Policy, an SB3 model "
                      "or a callable f(obs, info) -> proportions")


def steps_per_episode(env) -> int | None:
    """Environment steps in one episode: ``epochs`` (one per epoch) or ``ceil(total_iters / K)``
    with ``step_every=K``; ``None`` for an environment that does not say."""
    base = getattr(env, "unwrapped", env)
    try:
        if base.step_every == "epoch":
            return int(base.epochs)
        return math.ceil(base.total_iters / int(base.step_every))
    except AttributeError:
        return None


def run_policy(env, policy, episodes: int | None = None, seeds: Sequence[int] | None = None,
               progress: bool = False, learn: bool = True) -> list[EpisodeRecord]:
    """Play episodes of ``policy`` on ``env``: one per seed of ``seeds``, or ``episodes`` of them.

    Args:
        env: a :class:`mmenv.DUSEnv` (or a wrapped one, e.g. from ``gymnasium.make``).
        policy: a Policy, an SB3 model or a callable ``f(obs, info) -> proportions``.
        episodes: number of episodes (training runs); default ``len(seeds)``, or 1 without
            seeds. Given together with ``seeds`` it must equal ``len(seeds)``.
        seeds: one reset seed per episode (``run_policy(env, p, seeds=[0, 1, 2])`` plays
            three); ``None`` resets without a seed (the environment's RNG continues).
        progress: show tqdm bars over episodes and steps.
        learn: call ``policy.update`` after each step.
    """
    if seeds is not None:
        seeds = list(seeds)
        if not seeds:
            raise PolicyError("seeds is empty: pass at least one seed, or seeds=None with episodes=N")
        if episodes is None:
            episodes = len(seeds)
    if episodes is None:
        episodes = 1
    if episodes < 1:
        raise PolicyError(f"episodes must be >= 1, got {episodes}")
    if seeds is not None and len(seeds) != episodes:
        raise PolicyError(f"got {len(seeds)} seeds for {episodes} episodes; pass one seed per episode "
                          "(or leave episodes out: it defaults to len(seeds))")
    policy = as_policy(policy)
    base = env.unwrapped
    m = len(base.modalities)
    run_seeds: list[int | None] = list(seeds) if seeds is not None else [None] * episodes
    if progress:
        from tqdm.auto import tqdm

        episode_iter = tqdm(run_seeds, desc=f"{policy.name} episodes", unit="ep")
    else:
        episode_iter = run_seeds

    records = []
    for seed in episode_iter:
        start = time.perf_counter()
        obs, info = env.reset(seed=seed)
        policy.reset(base)
        record = EpisodeRecord(seed=seed, test=None, reward_sum=0.0, steps=0, diverged=False, wall_time_s=0.0,
                               modalities=list(base.modalities), initial_discrepancy=np.asarray(obs).tolist())
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=steps_per_episode(env), desc="steps", unit="step", leave=False)
        done = False
        while not done:
            proportions = np.asarray(policy.act(obs, info), dtype=np.float64).reshape(-1)
            if proportions.shape != (m,):
                raise PolicyError(f"policy {policy.name!r} returned {proportions.shape[0]} proportions "
                                  f"for {m} modalities")
            next_obs, reward, terminated, truncated, info = env.step(base.proportions_to_action(proportions))
            if learn:
                policy.update(obs, proportions, reward, next_obs, terminated, truncated, info)
            record.add_step(reward, info)
            obs = next_obs
            done = terminated or truncated
            if bar is not None:
                bar.update(1)
                bar.set_postfix(reward=f"{reward:.3f}", sizes=info["batch_sizes"])
        if bar is not None:
            bar.close()
        record.test = info.get("test")
        record.wall_time_s = time.perf_counter() - start
        records.append(record)
    return records
