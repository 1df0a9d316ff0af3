"""Across-run training with environments hosted in Ray actors (``backend="ray"``).

:func:`mmenv.agents.across_runs.train_across_runs` learns in this (driver) process; with
``backend="ray"`` the training runs it learns from are played in Ray actors, one CPU each,
on a local Ray instance or a cluster (:func:`mmenv.cluster.ray_session`), so that adding
nodes adds runs per hour:

* **REINFORCE** (:class:`RolloutHost`): every actor keeps the benchmark environments of the
  train instances it has played; per update the driver puts the policy's weights in Ray's
  object store once and sends each of the ``episodes_per_update`` planned runs (instance,
  environment seed, sampling seed) to a free actor, which plays the *whole run* and returns
  its transitions. The plan is fixed in advance and each actor plays with the driver's
  weights, so the result is the same as on local worker processes (or in one process).
* **SB3** (:class:`RayVecEnv`): an SB3 ``VecEnv`` whose sub-environments
  (:class:`~mmenv.cycling.InstanceCyclingEnv`) live in actors, one per worker; a
  step is one epoch of a training run. It follows ``SubprocVecEnv``'s protocol exactly
  (auto-reset, ``terminal_observation``, seeds), so for the same ``workers`` the result is
  the same as with local processes.

Ray is not imported here: the caller passes the connected ``ray`` module, and the hosts are
plain classes turned into actors with ``ray.remote`` at run time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from .rollouts import RolloutWorker

__all__ = ["RolloutHost", "EnvHost", "RayVecEnv", "play_on_actors", "join_ray", "check_cpus", "kill_actors"]


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


class RolloutHost(RolloutWorker):
    """Plays whole REINFORCE training runs in an actor (:class:`~mmenv.agents.rollouts.RolloutWorker`)."""


def join_ray(stack: contextlib.ExitStack, ray_address: str | None, workers: int) -> Any:
    """Enter a Ray session on ``stack`` and check it has CPUs for ``workers`` actors; on an
    error the stack is closed (the session ended) before it propagates."""
    from mmenv.cluster import ray_session

    ray = stack.enter_context(ray_session(ray_address, num_cpus=workers))
    try:
        check_cpus(ray, workers)
    except ValueError:
        stack.close()
        raise
    return ray


def check_cpus(ray: Any, workers: int) -> None:
    """Refuse more actors than the cluster has CPUs: the extra ones would wait forever."""
    from mmenv.cluster import cluster_cpus
    from mmenv.errors import InvalidArgumentError

    cpus = cluster_cpus(ray)
    if workers > cpus:
        raise InvalidArgumentError(f"workers={workers} Ray actors need {workers} CPUs, but the Ray cluster has "
                                   f"{cpus}: lower workers or add nodes (ray start --address=HEAD:6379 on another "
                                   "machine)")


def kill_actors(ray: Any, actors: Sequence[Any]) -> None:
    """Free the actors' CPUs (on a joined cluster they would outlive the training otherwise)."""
    with contextlib.suppress(Exception):
        ray.get([a.close.remote() for a in actors])
    for a in actors:
        with contextlib.suppress(Exception):
            ray.kill(a)


def play_on_actors(ray: Any, pool: Any, config: dict, weights: dict, tasks: Sequence[tuple[int, int, int]]
                   ) -> list[tuple[list, dict]]:
    """Play ``tasks`` on the actors of ``pool`` (a ``ray.util.ActorPool``); results in task order."""
    ref = ray.put(weights)  # one copy in the object store, shared by every run of this update
    return list(pool.map(lambda actor, task: actor.play.remote(config, ref, task), list(tasks)))


class EnvHost:
    """One environment in an actor, driven with ``SubprocVecEnv``'s worker protocol."""

    def __init__(self, env_fn: Callable[[], gym.Env]) -> None:
        _one_thread()
        self.env = env_fn()

    def spaces(self) -> tuple[gym.Space, gym.Space]:
        return self.env.observation_space, self.env.action_space

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, dict, dict]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        done = terminated or truncated
        info["TimeLimit.truncated"] = truncated and not terminated
        reset_info: dict = {}
        if done:  # SB3's convention: keep the last observation, start the next episode
            info["terminal_observation"] = observation
            observation, reset_info = self.env.reset()
        return observation, float(reward), done, info, reset_info

    def reset(self, seed: int | None, options: dict | None) -> tuple[Any, dict]:
        return self.env.reset(seed=seed, **({"options": options} if options else {}))

    def get_attr(self, name: str) -> Any:
        return self.env.get_wrapper_attr(name)

    def has_attr(self, name: str) -> bool:
        try:
            self.env.get_wrapper_attr(name)
        except AttributeError:
            return False
        return True

    def set_attr(self, name: str, value: Any) -> None:
        setattr(self.env, name, value)

    def env_method(self, name: str, args: tuple, kwargs: dict) -> Any:
        return self.env.get_wrapper_attr(name)(*args, **kwargs)

    def is_wrapped(self, wrapper_class: type) -> bool:
        from stable_baselines3.common.env_util import is_wrapped

        return is_wrapped(self.env, wrapper_class)

    def render(self) -> Any:
        return self.env.render()

    def close(self) -> None:
        self.env.close()


class RayVecEnv(VecEnv):
    """An SB3 ``VecEnv`` whose environments live in Ray actors, one CPU each (module docstring).

    ``ray`` is the connected ``ray`` module (:func:`mmenv.cluster.ray_session`).
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], ray: Any) -> None:
        self.ray = ray
        host = ray.remote(num_cpus=1)(EnvHost)
        self.actors = [host.remote(fn) for fn in env_fns]
        self.refs: list[Any] = []
        self.closed = False
        observation_space, action_space = ray.get(self.actors[0].spaces.remote())
        super().__init__(len(env_fns), observation_space, action_space)

    def _targets(self, indices: Any) -> list[Any]:
        return [self.actors[i] for i in self._get_indices(indices)]

    def step_async(self, actions: np.ndarray) -> None:
        self.refs = [actor.step.remote(action) for actor, action in zip(self.actors, actions)]

    def step_wait(self) -> Any:
        results = self.ray.get(self.refs)
        self.refs = []
        obs, rews, dones, infos, reset_infos = zip(*results)
        self.reset_infos = list(reset_infos)
        return np.stack(obs), np.stack(rews), np.stack(dones), infos

    def reset(self) -> Any:
        refs = [actor.reset.remote(self._seeds[i], self._options[i]) for i, actor in enumerate(self.actors)]
        obs, reset_infos = zip(*self.ray.get(refs))
        self.reset_infos = list(reset_infos)
        # Seeds and options are used once, as in SubprocVecEnv.
        self._reset_seeds()
        self._reset_options()
        return np.stack(obs)

    def close(self) -> None:
        if self.closed:
            return
        if self.refs:
            self.ray.get(self.refs)
        self.ray.get([actor.close.remote() for actor in self.actors])
        for actor in self.actors:
            self.ray.kill(actor)
        self.closed = True

    def get_images(self) -> Sequence[np.ndarray | None]:
        return self.ray.get([actor.render.remote() for actor in self.actors])

    def has_attr(self, attr_name: str) -> bool:
        return all(self.ray.get([actor.has_attr.remote(attr_name) for actor in self.actors]))

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return self.ray.get([actor.get_attr.remote(attr_name) for actor in self._targets(indices)])

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        self.ray.get([actor.set_attr.remote(attr_name, value) for actor in self._targets(indices)])

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any
                   ) -> list[Any]:
        return self.ray.get([actor.env_method.remote(method_name, method_args, method_kwargs)
                             for actor in self._targets(indices)])

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return self.ray.get([actor.is_wrapped.remote(wrapper_class) for actor in self._targets(indices)])
