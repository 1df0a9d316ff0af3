"""Rollout workers of across-run REINFORCE: play whole training runs with given weights.

A leaf module (it imports the environment and the policy, nothing of the trainers), so that
worker processes (:class:`concurrent.futures.ProcessPoolExecutor`) and Ray actors
(:mod:`mmenv.agents.ray_rollouts`) start from it without importing the trainer that drives
them.

* :func:`play_run`: one training run with a policy sampling from a generator seeded by the
  run's sampling seed; returns the transitions and a summary.
* :class:`RolloutWorker`: the state of one worker (the benchmark environments of the train
  instances it has played, built on first use) and :meth:`RolloutWorker.play`, which plays a
  planned run ``(instance index, environment seed, sampling seed)`` with the driver's weights.
* :func:`init_worker` / :func:`worker_play`: the same for a process pool (one worker per
  process, kept in a module global).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from mmenv.instances import Instance

from .policy import Policy
from .reinforce import ReinforcePolicy

__all__ = ["play_run", "RolloutWorker", "init_worker", "worker_play", "worker_play_batch", "worker_play_sampled",
           "Task", "Transition"]

#: a planned run: (instance index, environment seed, sampling seed)
Task = tuple[int, int, int]
#: (observation, proportions, reward)
Transition = tuple[np.ndarray, np.ndarray, float]


def play_run(env: gym.Env, policy: ReinforcePolicy, env_seed: int, sample_seed: int
             ) -> tuple[list[Transition], dict[str, Any]]:
    """One training run with ``policy`` sampling from a generator seeded by ``sample_seed``."""
    policy.generator.manual_seed(sample_seed)
    obs, info = env.reset(seed=env_seed)
    base: Any = env.unwrapped
    policy.reset(base)
    transitions: list[Transition] = []
    props: list[list[float]] = []
    ret, dus = 0.0, 0.0
    done = False
    while not done:
        p = np.asarray(policy.act(obs, info), dtype=np.float64)
        next_obs, reward, terminated, truncated, info = env.step(base.proportions_to_action(p))
        transitions.append((np.asarray(obs, dtype=np.float32), p, float(reward)))
        props.append([float(x) for x in info["proportions"]])
        ret += float(reward)
        dus += float(info["reward_dus"])
        obs = next_obs
        done = terminated or truncated
    test = info.get("test")
    summary = {"seed": env_seed, "return": ret, "reward_dus": dus, "proportions": props,
               "test_accuracy": None if test is None else float(test["fused"]["accuracy"])}
    return transitions, summary


class RolloutWorker:
    """Plays planned runs of ``instances`` in the benchmark environment (observation, reward)."""

    def __init__(self, instances: Sequence[Instance], observation: str, reward: str,
                 one_thread: bool = True) -> None:
        if one_thread:  # a worker among others: one torch thread each
            import torch

            torch.set_num_threads(1)
        self.instances = list(instances)
        self.observation = observation
        self.reward = reward
        self.envs: dict[int, gym.Env] = {}
        self.batchable: dict[int, bool] = {}   # instance index -> the batched engine can train it

    def env(self, index: int) -> gym.Env:
        """The benchmark environment of instance ``index`` (built on first use, then kept)."""
        if index not in self.envs:
            from mmenv.wrappers import make_bench_env

            self.envs[index] = make_bench_env(observation=self.observation, reward=self.reward,
                                              **self.instances[index].env_kwargs())
        return self.envs[index]

    def play(self, config: dict[str, Any], weights: dict[str, Any], task: Task, deterministic: bool = False
             ) -> tuple[list[Transition], dict[str, Any]]:
        """Play ``task`` with a policy of configuration ``config`` acting with ``weights`` (its
        Dirichlet mean with ``deterministic``: parameter-space search, :mod:`mmenv.agents.es`)."""
        index, env_seed, sample_seed = task
        policy = ReinforcePolicy.from_weights(config, weights)
        policy.deterministic = deterministic
        transitions, summary = play_run(self.env(index), policy, env_seed, sample_seed)
        return transitions, {"instance": index, **summary}

    def play_batch(self, config: dict[str, Any], weights: Sequence[dict[str, Any]], index: int,
                   env_seeds: Sequence[int]) -> list[dict[str, Any]]:
        """Play one run per ``(weights[i], env_seeds[i])`` on instance ``index``, all in one batch of the
        batched engine (:func:`mmenv.engine.play_batch`), each policy acting with its Dirichlet mean on
        the benchmark observation (:class:`~mmenv.agents.observed.ObservedPolicy`); returns a summary
        per run (``seed``, ``return`` under the benchmark reward, ``proportions``, ``test_accuracy``)."""
        from .observed import ObservedPolicy

        policies = []
        for w in weights:
            policy = ReinforcePolicy.from_weights(config, w)
            policy.deterministic = True
            policies.append(ObservedPolicy(policy, self.observation))
        return [_summary(index, r) for r in self._play_on_engine(index, policies, env_seeds)]

    def _play_on_engine(self, index: int, policies: Sequence[Any], env_seeds: Sequence[int]) -> list[Any]:
        """One episode record per policy: instance ``index`` under the benchmark reward, one batch of
        the batched engine (:func:`mmenv.engine.play_batch`)."""
        from mmenv.engine import play_batch

        env_kwargs = dict(self.instances[index].env_kwargs(), reward=self.reward)
        return play_batch(env_kwargs, policies, [int(s) for s in env_seeds], learn=False)

    def play_sampled(self, config: dict[str, Any], weights: dict[str, Any], tasks: Sequence[Task]
                     ) -> list[tuple[list[Transition], dict[str, Any]]]:
        """:meth:`play` for runs of one instance, all in one batch of the batched engine: each run
        samples from its own generator seeded by its sampling seed and reads the benchmark
        observation rebuilt from the plain environment (:class:`~mmenv.agents.observed.ObservedPolicy`),
        so run i gives the transitions and summary :meth:`play` gives for ``tasks[i]`` (to float
        rounding: tests/test_across_runs.py)."""
        from mmenv.engine import engine_support
        from mmenv.rewards import RewardContext, dus_reward

        index = tasks[0][0]
        if any(task[0] != index for task in tasks):
            raise ValueError("play_sampled plays runs of one instance")  # internal invariant (the trainer groups)
        if index not in self.batchable:
            base: Any = self.env(index).unwrapped
            self.batchable[index] = engine_support(base) is None
        if not self.batchable[index]:  # media, batch norm, Adam, autocast: this worker's env, one at a time
            return [self.play(config, weights, task) for task in tasks]
        recorders = []
        for _, _, sample_seed in tasks:
            policy = ReinforcePolicy.from_weights(config, weights)
            policy.generator.manual_seed(sample_seed)
            recorders.append(_Recording(policy, self.observation))
        out = []
        for rec, recorder in zip(self._play_on_engine(index, recorders, [t[1] for t in tasks]), recorders):
            transitions = [(obs, p, float(r)) for (obs, p), r in zip(recorder.steps, rec.rewards)]
            # The Eq. 5 reward the wrapper reports as info["reward_dus"], from the same step records.
            before = [rec.initial_discrepancy, *rec.discrepancy[:-1]]
            dus = sum(dus_reward(RewardContext(np.asarray(o), np.asarray(a), np.asarray(n), sizes))
                      for o, a, n, sizes in zip(before, rec.proportions, rec.discrepancy, rec.batch_sizes))
            out.append((transitions, _summary(index, rec, reward_dus=float(dus))))
        return out

    def close(self) -> None:
        for env in self.envs.values():
            env.close()
        self.envs.clear()


def _summary(index: int, rec: Any, **extra: Any) -> dict[str, Any]:
    """A run's summary in the trainers' history (``play_run``'s keys) from its engine episode record."""
    return {"instance": index, "seed": rec.seed, "return": float(rec.reward_sum), **extra,
            "proportions": [[float(x) for x in p] for p in rec.proportions],
            "test_accuracy": None if rec.test is None else float(rec.test["fused"]["accuracy"])}


class _Recording(Policy):
    """An :class:`~mmenv.agents.observed.ObservedPolicy` that keeps every ``(observation, proportions)``
    it acts on (a run's transitions, with the rewards of its episode record)."""

    def __init__(self, policy: ReinforcePolicy, observation: str) -> None:
        from .observed import ObservedPolicy

        self.observed = ObservedPolicy(policy, observation)
        self.name = self.observed.name
        self.steps: list[tuple[np.ndarray, np.ndarray]] = []

    def reset(self, env: Any) -> None:
        self.observed.reset(env)
        self.steps = []

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        seen = self.observed.observe(obs, info)
        p = np.asarray(self.observed.policy.act(seen, info), dtype=np.float64)
        self.steps.append((np.asarray(seen, dtype=np.float32), p))
        return p


_WORKER: list[RolloutWorker] = []   # the process's worker (a process pool's initializer sets it)


def init_worker(instances: Sequence[Instance], observation: str, reward: str) -> None:
    """Process-pool initializer: this process's :class:`RolloutWorker`."""
    _WORKER[:] = [RolloutWorker(instances, observation, reward)]


def worker_play_batch(config: dict[str, Any], weights: Sequence[dict[str, Any]], index: int,
                      env_seeds: Sequence[int]) -> list[dict[str, Any]]:
    """Process-pool task: :meth:`RolloutWorker.play_batch` on this process's worker."""
    return _WORKER[0].play_batch(config, weights, index, env_seeds)


def worker_play_sampled(config: dict[str, Any], weights: dict[str, Any], tasks: Sequence[Task]
                        ) -> list[tuple[list[Transition], dict[str, Any]]]:
    """Process-pool task: :meth:`RolloutWorker.play_sampled` on this process's worker."""
    return _WORKER[0].play_sampled(config, weights, tasks)


def worker_play(config: dict[str, Any], weights: dict[str, Any], task: Task, deterministic: bool = False
                ) -> tuple[list[Transition], dict[str, Any]]:
    """Process-pool task: play ``task`` on this process's worker."""
    return _WORKER[0].play(config, weights, task, deterministic)
