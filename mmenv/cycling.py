"""An environment that cycles through an instance set: every episode is a training run of the next instance.

DACBench's core idea: a benchmark is a set of *instances* (tasks), and one environment plays
them in turn, so that any reinforcement-learning loop trains a policy *across* tasks with no
benchmark-specific code. :class:`InstanceCyclingEnv` does this for mmenv's benchmark
environment (:class:`mmenv.wrappers.DUSBench`); ``gym.make("mmenv/DUSBench-v0",
instances=...)`` builds it::

    import gymnasium as gym
    import mmenv
    from stable_baselines3 import PPO

    env = gym.make("mmenv/DUSBench-v0", instances="synthetic-imbalance", split="train",
                   observation="modal")
    model = PPO("MlpPolicy", env, n_steps=20, batch_size=20, seed=0).learn(400)
    model.save("ppo-across.zip")     # mmenv.agents.make_policy("ppo-across.zip") plays it

Which instance an episode plays (``order=``):

* ``"cycle"`` (default, as DACBench's benchmarks do): instance 0, 1, ..., n-1, 0, ... in the
  order given; ``reset(seed=s)`` restarts the cycle at instance 0.
* ``"random"``: an instance drawn uniformly from the environment's generator.

Each episode's environment seed is drawn from the same generator in
``[TRAIN_SEED_MIN, 2**31)``; the generator is seeded by ``seed`` and re-seeded by
``reset(seed=s)``, so the sequence of (instance, environment seed) is a function of the seed
alone, and no training run reuses an evaluation seed below ``TRAIN_SEED_MIN`` (0, 1, 2, ...).

``info`` at reset holds ``instance`` (its index) and ``instance_name``; at the end of each
episode ``info["run"]`` summarises the run (instance index, environment seed, return, Eq. 5
return, proportions per step, test accuracy). All instances must have the same number of
modalities (the spaces must agree).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from .errors import InvalidArgumentError
from .instances import Instance, as_instance

__all__ = ["InstanceCyclingEnv", "TRAIN_SEED_MIN", "ORDERS", "resolve_instances"]

TRAIN_SEED_MIN = 2**24
ORDERS = ("cycle", "random")


def resolve_instances(instances: Any, split: str = "train") -> list[Instance]:
    """The instances ``instances`` names: a list of :class:`~mmenv.instances.Instance` (or mappings),
    an ``InstanceSet``, or the name / YAML path of an instance set (``split``: ``"train"`` or ``"test"``)."""
    if split not in ("train", "test"):
        raise InvalidArgumentError(f"split must be 'train' or 'test', got {split!r}")
    if isinstance(instances, (str, Path)):
        from mmenv.experiments.instances import load_instance_set  # the YAML loader of instance sets

        instances = load_instance_set(instances)
    if hasattr(instances, "train") and hasattr(instances, "test"):  # an InstanceSet
        instances = getattr(instances, split)
    if isinstance(instances, (Instance, Mapping)) or not isinstance(instances, Sequence):
        raise InvalidArgumentError("instances must be a list of instances (mmenv.instances.Instance or mappings), "
                                   f"an instance set, or an instance set's name or path; got {type(instances).__name__}")
    out = [as_instance(inst, name=f"instance-{i}") for i, inst in enumerate(instances)]
    if not out:
        raise InvalidArgumentError("no instances given: pass at least one")
    return out


class InstanceCyclingEnv(gym.Env):
    """Plays one instance per episode (module docstring).

    Args:
        instances: see :func:`resolve_instances`.
        split: which split of a named instance set.
        observation, reward: the benchmark's (:class:`mmenv.wrappers.DUSBench`).
        seed: seeds the instance / environment-seed generator (``None``: fresh entropy).
        order: ``"cycle"`` or ``"random"``.
        **env_options: other :class:`mmenv.DUSEnv` arguments for every instance
            (``action_space``, ``device``, ...).
    """

    metadata = {"render_modes": []}

    def __init__(self, instances: Any, *, split: str = "train", observation: str = "paper",
                 reward: str = "val-acc-gain", seed: int | None = None, order: str = "cycle",
                 **env_options: Any) -> None:
        from .wrappers import make_bench_env

        super().__init__()
        if order not in ORDERS:
            raise InvalidArgumentError(f"order must be one of {list(ORDERS)}, got {order!r}")
        self.instances = resolve_instances(instances, split)
        self.order = order
        self.envs: list[Any] = [make_bench_env(observation=observation, reward=reward, **inst.env_kwargs(), **env_options)
                     for inst in self.instances]
        first = self.envs[0]
        for i, env in enumerate(self.envs[1:], start=1):
            if env.observation_space != first.observation_space or env.action_space != first.action_space:
                raise InvalidArgumentError(
                    f"instance {i} ({self.instances[i].name!r}) has other spaces ({env.observation_space}, "
                    f"{env.action_space}) than instance 0 ({first.observation_space}, {first.action_space}): "
                    "train instances must have the same number of modalities")
        self.observation_space = first.observation_space
        self.action_space = first.action_space
        self.modalities = first.modalities
        self.observation_mode = first.observation_mode
        self.reward_mode = first.reward_mode
        self.observation_names = first.observation_names
        self.observation_layout = first.observation_layout
        # How a policy trained here maps its actions to proportions (SB3Policy reads them).
        self.action_space_name = first.unwrapped.action_space_name
        self.softmax_scale = first.unwrapped.softmax_scale
        self.rng = np.random.default_rng(seed)
        self.current = 0
        self._episodes = 0
        self._run: dict[str, Any] = {}

    @property
    def env(self) -> Any:
        """The benchmark environment of the current episode's instance."""
        return self.envs[self.current]

    @property
    def instance(self) -> Instance:
        """The current episode's instance."""
        return self.instances[self.current]

    def proportions_to_action(self, proportions: Any) -> np.ndarray:
        """The action that applies ``proportions`` (the instances share one action space)."""
        return self.env.unwrapped.proportions_to_action(proportions)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
            self._episodes = 0
        if self.order == "random":
            self.current = int(self.rng.integers(len(self.envs)))
        else:
            self.current = self._episodes % len(self.envs)
        self._episodes += 1
        env_seed = int(self.rng.integers(TRAIN_SEED_MIN, 2**31 - 1))
        obs, info = self.env.reset(seed=env_seed, options=options)
        self._run = {"instance": self.current, "seed": env_seed, "return": 0.0, "reward_dus": 0.0,
                     "proportions": []}
        info["instance"] = self.current
        info["instance_name"] = self.instance.name
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._run["return"] += float(reward)
        self._run["reward_dus"] += float(info["reward_dus"])
        self._run["proportions"].append([float(p) for p in info["proportions"]])
        if terminated or truncated:
            test = info.get("test")
            self._run["test_accuracy"] = None if test is None else float(test["fused"]["accuracy"])
            info["run"] = dict(self._run)
            info["instance"] = self.current
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        for env in self.envs:
            env.close()
