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

Observation (``observation=``; built by :mod:`mmenv.observations`)
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

    ``"modal"``: ``Box((10m + 1,))`` laid out per modality (for permutation-equivariant
    policies): per modality [discrepancy, proportion, train loss, train accuracy, validation
    accuracy of its own output] and the change of each since the last step, then [progress].
    :attr:`DUSBench.observation_layout` is ``(m, 10, 1)``. It needs a validation split.

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

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from .env import DUSEnv
from .errors import InvalidArgumentError
from .observations import LOSS_CLIP, OBSERVATIONS, ObservationBuilder, check_observation
from .observations import observation_layout as _layout
from .observations import observation_names as _names
from .observations import observation_space as _space
from .rewards import RewardContext, make_reward, reward_name, reward_value, validation_need

__all__ = ["DUSBench", "make_bench_env", "BENCH_OBSERVATIONS", "BENCH_REWARDS", "LOSS_CLIP"]

BENCH_OBSERVATIONS = OBSERVATIONS
#: The rewards the benchmark's presets and across-run trainers offer. The wrapper itself takes
#: any name of the one registry of both env ids, :data:`mmenv.rewards.REWARDS`.
BENCH_REWARDS: tuple[str, ...] = ("val-acc-gain", "final-val-acc", "dus")


class DUSBench(gym.Wrapper):
    """Benchmark observation and reward on top of a :class:`mmenv.DUSEnv` built with ``reward="dus"``.

    Args:
        env: the DUS environment (possibly wrapped); its reward must be the paper's
            (``"dus"``), which this wrapper reports as ``info["reward_dus"]``.
        observation: ``"paper"``, ``"extended"`` or ``"modal"`` (module docstring).
        reward: a registered reward name (:data:`mmenv.rewards.REWARDS`: ``"val-acc-gain"``,
            ``"final-val-acc"``, ``"dus"``, ...) or a callable ``f(RewardContext) -> float``.
        seed: if given, the first ``reset()`` without a seed uses it (later ones continue
            the environment's RNG, as Gymnasium's convention is).
    """

    def __init__(self, env: gym.Env, observation: str = "paper", reward: str | Callable[..., float] = "val-acc-gain",
                 seed: int | None = None) -> None:
        super().__init__(env)
        check_observation(observation)
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
        if observation == "modal" and base.dataset.val is None:
            raise InvalidArgumentError(f"observation 'modal' reads per-modality validation accuracy; dataset "
                                       f"{base.dataset.name!r} has no validation split (give it one, e.g. "
                                       "dataset_kwargs={'n_val': 500}, or use observation='extended')")
        self.observation_mode = observation
        self.reward_mode = reward_name(reward)
        self.reward_fn = reward_fn
        self._validation = validation
        self._pending_seed = seed
        self.modalities: tuple[str, ...] = tuple(base.modalities)
        self.num_classes = int(base.dataset.num_classes)
        paper_space: Any = base.observation_space
        self.observation_space = _space(observation, len(self.modalities), paper_space)
        self._builder = ObservationBuilder(observation, self.modalities, self.num_classes)
        self._val: float | None = None

    # ------------------------------------------------------------------ observation
    @property
    def observation_names(self) -> list[str]:
        """One name per observation entry (plots, logs)."""
        return _names(self.observation_mode, self.modalities)

    @property
    def observation_layout(self) -> tuple[int, int, int] | None:
        """``(m, per-modality width, global width)`` of a per-modality observation, else ``None``."""
        return _layout(self.observation_mode, len(self.modalities))

    def _observe(self, obs: np.ndarray, info: dict | None) -> np.ndarray:
        base: Any = self.env.unwrapped
        diverged = bool(info.get("diverged", False)) if info is not None else False
        return self._builder.build(obs, info, int(base.total_iters), self._val_metrics, diverged)

    def _val_metrics(self) -> dict[str, dict[str, float]]:
        """``evaluate("val")`` of the current model, computed once per training state by the environment
        (:meth:`mmenv.DUSEnv.validation_metrics`), so the reward and the observation share it."""
        base: Any = self.env.unwrapped
        return base.validation_metrics()

    # ------------------------------------------------------------------ checkpoints (mmenv.checkpoint)
    def checkpoint_state(self) -> dict[str, Any]:
        """This wrapper's episode state: the validation accuracy the next reward compares with,
        and the per-modality observation's previous values (its change features)."""
        return {"val": self._val, "previous": self._builder.state()}

    def load_checkpoint_state(self, state: dict[str, Any] | None) -> None:
        """Restore :meth:`checkpoint_state` after the environment was restored. ``None`` (a
        checkpoint written without it) recomputes the validation accuracy from the restored model
        (the same value) and restarts the change features at 0."""
        if state is None:
            self._val = self._val_accuracy() if self._validation == "step" else None
            self._builder.reset()
            return
        self._val = None if state["val"] is None else float(state["val"])
        self._builder.load_state(state["previous"])

    # ------------------------------------------------------------------ gym API
    def _val_accuracy(self) -> float:
        return float(self._val_metrics()["fused"]["accuracy"])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None and self._pending_seed is not None:
            seed = self._pending_seed
        self._pending_seed = None
        obs, info = self.env.reset(seed=seed, options=options)
        self._builder.reset()
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


def make_bench_env(observation: str = "paper", reward: str = "val-acc-gain", seed: int | None = None,
                   instances: Any = None, split: str = "train", order: str = "cycle",
                   **env_kwargs: Any) -> gym.Env:
    """Entry point of ``mmenv/DUSBench-v0``: ``DUSBench(DUSEnv(**env_kwargs), observation, reward)``.

    ``env_kwargs`` are :class:`mmenv.DUSEnv` arguments (data set, learner, epochs, ...);
    the wrapper computes the reward (any name of :data:`mmenv.rewards.REWARDS`, as on
    ``mmenv/DUS-v0``) with one validation pass per step at most.

    With ``instances`` (a list of :class:`mmenv.instances.Instance` or mappings, an instance
    set, or an instance set's name or path, with ``split``) the result is an
    :class:`mmenv.cycling.InstanceCyclingEnv`: every ``reset()`` plays the next instance
    (``order="cycle"``) or a random one (``order="random"``); ``env_kwargs`` then hold only
    settings that are not part of a task (``action_space``, ``device``, ...).
    """
    if instances is not None:
        from .cycling import InstanceCyclingEnv

        return InstanceCyclingEnv(instances, split=split, observation=observation, reward=reward, seed=seed,
                                  order=order, **env_kwargs)
    return DUSBench(DUSEnv(reward="dus", **env_kwargs), observation=observation, reward=reward, seed=seed)
