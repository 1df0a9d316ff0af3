"""The benchmark's settings of the DUS environment, as a Gymnasium wrapper.

``mmenv/DUS-v0`` is the paper's environment: observation = cumulative discrepancy,
reward = Eq. 5. Agents that learn *across* training runs need two things it does not give:

* a **reward tied to the objective**. Optimised hard, Eq. 5 rewards giving the
  non-dominant modality more whatever it does to the model (it drives allocations to
  extremes and costs accuracy), so the benchmark's default is the validation-accuracy gain;
* optionally an **extended observation** from which a policy can tell instances and
  training phases apart.

:class:`DUSBench` adds both on top of an unchanged :class:`mmenv.DUSEnv`, reading only the
environment's ``info`` and public attributes. ``mmenv/DUSBench-v0`` registers it
(:func:`make_bench_env`)::

    import gymnasium as gym
    import mmenv

    env = gym.make("mmenv/DUSBench-v0", learner="ogm-ge", epochs=5, observation="extended")
    obs, info = env.reset(seed=0)      # obs: 4m + 1 values, names in env.unwrapped... see below

Observation (``observation=``)
    ``"paper"``: the cumulative discrepancy ``s^`` (Eq. 3), ``Box(0, 1, (m,))``, exactly DUS-v0's.
    ``"extended"``: ``Box((4m + 1,))``, in this order (names in :attr:`DUSBench.observation_names`):

    * ``discrepancy/<mod>`` (m): the paper's observation, unchanged;
    * ``progress`` (1): training progress ``t / E`` = iterations done / iterations per run,
      in ``[0, 1]`` (0 before the first action);
    * ``proportion/<mod>`` (m): the proportions the environment applied at the last step
      (``1/m`` each before the first action: Algorithm 1's INIT);
    * ``train_loss/<mod>`` (m): the learner's training loss of that modality over the last
      step, divided by ``ln C`` (the loss of a uniform prediction over C classes) and clipped
      to ``[0, 4]``. A learner that reports no loss of its own per modality (OGM-GE, whose
      unimodal outputs are slices of the fusion head) gets its fused loss (else its total
      loss) in every modality's entry. Before the first action: 1 (chance);
    * ``train_accuracy/<mod>`` (m): training accuracy of that modality's own output over the
      last step's batches (``info["train_accuracy"]``); ``1/C`` (chance) before the first action.

Reward (``reward=``)
    Any reward of :data:`mmenv.rewards.REWARDS` (or a callable), the same function as
    ``mmenv/DUS-v0``'s ``reward=`` (a reward added with :func:`mmenv.register_reward` works
    here too); the benchmark's default is ``"val-acc-gain"``: fused validation accuracy
    after the step minus before it, whose sum over an episode is the final validation
    accuracy minus that of the freshly initialised model, so an undiscounted return is the
    objective up to a constant. ``"final-val-acc"``: 0 at every step and the fused
    validation accuracy at the last step (0 if the run diverged): the same objective, one
    validation pass per run. ``"dus"``: the paper's Eq. 5 (what DUS-v0 returns).
    Whatever the training reward, ``info["reward_dus"]`` holds Eq. 5 for the step, so an
    episode's Eq. 5 return can be compared with its accuracy (reward alignment).

The wrapped environment is built with ``reward="dus"`` (cheap: no validation pass); the
wrapper computes the reward itself from the step's observations, ``info`` and validation
accuracy, evaluated at most once per step (the value after a step is the value before the
next one), where ``DUSEnv(reward="val-acc-gain")`` evaluates twice.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .env import DUSEnv
from .errors import InvalidArgumentError
from .rewards import REWARDS, RewardContext, make_reward, reward_name, reward_value, validation_need

__all__ = ["DUSBench", "make_bench_env", "BENCH_OBSERVATIONS", "BENCH_REWARDS", "LOSS_CLIP"]

BENCH_OBSERVATIONS = ("paper", "extended")
#: The rewards ``reward=`` takes here: the one registry of both env ids (``name in BENCH_REWARDS``,
#: ``list(BENCH_REWARDS)``).
BENCH_REWARDS = REWARDS
LOSS_CLIP = 4.0


class DUSBench(gym.Wrapper):
    """Benchmark observation and reward on top of a :class:`mmenv.DUSEnv` built with ``reward="dus"``.

    Args:
        env: the DUS environment (possibly wrapped); its reward must be the paper's
            (``"dus"``), which this wrapper reports as ``info["reward_dus"]``.
        observation: ``"paper"`` or ``"extended"`` (module docstring).
        reward: a registered reward name (:data:`mmenv.rewards.REWARDS`: ``"val-acc-gain"``,
            ``"final-val-acc"``, ``"dus"``, ...) or a callable ``f(RewardContext) -> float``.
        seed: if given, the first ``reset()`` without a seed uses it (later ones continue
            the environment's RNG, as Gymnasium's convention is).
    """

    def __init__(self, env: gym.Env, observation: str = "paper", reward: str | Callable[..., float] = "val-acc-gain",
                 seed: int | None = None) -> None:
        super().__init__(env)
        if observation not in BENCH_OBSERVATIONS:
            raise ValueError(f"unknown observation {observation!r}; valid: {list(BENCH_OBSERVATIONS)}")
        reward_fn = make_reward(reward)   # UnknownNameError (with did-you-mean) for an unknown name
        base = env.unwrapped
        if not isinstance(base, DUSEnv):
            raise InvalidArgumentError(f"DUSBench wraps a mmenv.DUSEnv, got {type(base).__name__}")
        if getattr(base.reward_fn, "__name__", "") != "dus_reward":
            raise InvalidArgumentError("build the wrapped DUSEnv with reward='dus' (the default): DUSBench computes "
                                       "the benchmark reward itself and reports Eq. 5 as info['reward_dus']")
        validation = validation_need(reward_fn)
        if validation is not None and base.dataset.val is None:
            raise InvalidArgumentError(f"reward {reward_name(reward)!r} needs a validation split; dataset "
                                       f"{base.dataset.name!r} has none (give it one, e.g. "
                                       "dataset_kwargs={'n_val': 500}, or use reward='dus')")
        self.observation_mode = observation
        self.reward_mode = reward_name(reward)
        self.reward_fn = reward_fn
        self._validation = validation
        self._pending_seed = seed
        self.modalities: tuple[str, ...] = tuple(base.modalities)
        self.num_classes = int(base.dataset.num_classes)
        m = len(self.modalities)
        if observation == "extended":
            high = np.concatenate([np.ones(2 * m + 1), np.full(m, LOSS_CLIP), np.ones(m)]).astype(np.float32)
            self.observation_space = spaces.Box(np.zeros_like(high), high, dtype=np.float32)
        else:
            self.observation_space = base.observation_space
        self._val: float | None = None
        self._last_obs: np.ndarray | None = None

    # ------------------------------------------------------------------ observation
    @property
    def observation_names(self) -> list[str]:
        """One name per observation entry (plots, logs)."""
        mods = self.modalities
        names = [f"discrepancy/{mod}" for mod in mods]
        if self.observation_mode == "extended":
            names += ["progress"] + [f"proportion/{mod}" for mod in mods]
            names += [f"train_loss/{mod}" for mod in mods] + [f"train_accuracy/{mod}" for mod in mods]
        return names

    def _extended(self, obs: np.ndarray, info: dict | None) -> np.ndarray:
        base: Any = self.env.unwrapped
        m, c = len(self.modalities), self.num_classes
        if info is None or "proportions" not in info:  # before the first action
            progress = 0.0
            props = np.full(m, 1.0 / m)
            loss = np.ones(m)
            acc = np.full(m, 1.0 / c)
        else:
            progress = float(info["iteration"]) / float(base.total_iters)
            props = np.asarray(info["proportions"], dtype=np.float64)
            losses = info["train_loss"]
            fallback = losses.get("fused", losses.get("total", math.log(c)))
            loss = np.array([losses.get(mod, fallback) for mod in self.modalities], dtype=np.float64) / math.log(c)
            acc = np.array([info["train_accuracy"][mod] for mod in self.modalities], dtype=np.float64)
        out = np.concatenate([np.asarray(obs, dtype=np.float64), [progress], props,
                              np.clip(np.nan_to_num(loss, nan=LOSS_CLIP, posinf=LOSS_CLIP), 0.0, LOSS_CLIP),
                              np.clip(np.nan_to_num(acc, nan=0.0), 0.0, 1.0)])
        return out.astype(np.float32)

    def _observe(self, obs: np.ndarray, info: dict | None) -> np.ndarray:
        return self._extended(obs, info) if self.observation_mode == "extended" else np.asarray(obs, np.float32)

    # ------------------------------------------------------------------ gym API
    def _val_accuracy(self) -> float:
        base: Any = self.env.unwrapped
        return float(base.evaluate("val")["fused"]["accuracy"])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None and self._pending_seed is not None:
            seed = self._pending_seed
        self._pending_seed = None
        obs, info = self.env.reset(seed=seed, options=options)
        self._val = self._val_accuracy() if self._validation == "step" else None
        return self._observe(obs, None), info

    def step(self, action):
        obs_before = self.env.unwrapped.last_observation
        obs, reward_dus, terminated, truncated, info = self.env.step(action)
        info["reward_dus"] = float(reward_dus)
        diverged = bool(info.get("diverged", False))
        done = bool(terminated or truncated)
        val_before, val_after = self._val, None
        if self._validation == "step" or (self._validation == "final" and done):
            val_after = 0.0 if diverged else self._val_accuracy()
            info["val_accuracy"] = val_after
            self._val = val_after if self._validation == "step" else None
        ctx = RewardContext(obs_before, np.asarray(info["proportions"], dtype=np.float64), np.asarray(obs),
                            list(info["batch_sizes"]), val_before, val_after, info, done)
        reward = reward_value(self.reward_mode, self.reward_fn(ctx), diverged, info["proportions"])
        return self._observe(obs, info), reward, terminated, truncated, info


def make_bench_env(observation: str = "paper", reward: str | Callable[..., float] = "val-acc-gain", seed: int | None = None,
                   **env_kwargs: Any) -> DUSBench:
    """Entry point of ``mmenv/DUSBench-v0``: ``DUSBench(DUSEnv(**env_kwargs), observation, reward)``.

    ``env_kwargs`` are :class:`mmenv.DUSEnv` arguments (data set, learner, epochs, ...);
    the wrapper computes the reward (any name of :data:`mmenv.rewards.REWARDS`, as on
    ``mmenv/DUS-v0``) with one validation pass per step at most.
    """
    return DUSBench(DUSEnv(reward="dus", **env_kwargs), observation=observation, reward=reward, seed=seed)
