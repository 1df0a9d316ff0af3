"""``DUSVectorEnv``: K independent DUS training runs stepped together in one process.

``gymnasium.vector.SyncVectorEnv`` of K :class:`~mmenv.env.DUSEnv` runs K small models
one after the other, so on a CPU (or a GPU) the cost is K times the per-operation
overhead of one tiny model. This environment trains the K runs' models together on the
batched engine (:class:`mmenv.engine.BatchedRuns`): the learner's own functional step
(:mod:`mmenv.learners.functional`) runs for all K runs at once under ``torch.func.vmap``,
with the parameters stacked along a leading axis. Each run keeps its own seed, model
initialisation, sampler stream, action and episode; only the arithmetic is batched.

Sub-environment k equals ``DUSEnv`` with the same seed and actions, up to float rounding
(see :mod:`mmenv.engine.batched` for how): every sub-environment is a real ``DUSEnv``
reset by its own ``reset``; slot k draws its indices (and a learner's noise) from run k's
own generator; unequal batch sizes are padded with rows of weight 0.

* **Autoreset**: Gymnasium 1.x's default ``AutoresetMode.NEXT_STEP``: the step after an
  episode ends resets that sub-environment (its action is ignored, reward 0).

Supported: every learner written in the functional form (all built-in ones: Baseline,
OGM-GE, MLA, PMR, AGM, DI-MML, and plug-ins that follow it) with SGD, on tensor data sets
(MLP, masked sequence and small-image encoders). Anything else (an imperative-only
plug-in, Adam, media data sets, ResNets' batch norm, autocast) raises
:class:`VectorEnvError`; ``gymnasium.make_vec``'s default then falls back to
``gymnasium.vector.SyncVectorEnv`` with a :class:`VectorFallbackWarning`.

Example::

    import gymnasium as gym
    import mmenv

    envs = gym.make_vec("mmenv/DUS-v0", num_envs=8, vectorization_mode="vector_entry_point", epochs=3)
    obs, infos = envs.reset(seed=0)          # obs: (8, m); slot k is seeded with 0 + k
    obs, rewards, terms, truncs, infos = envs.step(envs.action_space.sample())
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from .datasets import make_dataset
from .engine.batched import BatchedRuns, engine_support
from .env import DUSEnv, grad_mode_independent
from .errors import EnvStateError, MMEnvError
from .learners import Learner, make_learner
from .sampling import ActionError, SampleOrder
from .validation import is_int

__all__ = ["DUSVectorEnv", "VectorEnvError", "VectorFallbackWarning", "make_vector_env"]

_SYNC_HINT = ("use gymnasium.vector.SyncVectorEnv instead: "
              "gymnasium.make_vec('mmenv/DUS-v0', num_envs=K, vectorization_mode='sync', ...)")


class VectorEnvError(MMEnvError, ValueError):
    """A configuration the batched vector environment cannot run."""


# ---------------------------------------------------------------------- the environment
class DUSVectorEnv(VectorEnv):
    """K independent :class:`~mmenv.env.DUSEnv` runs with their models trained in one batch.

    Args:
        num_envs: K.
        **env_kwargs: ``DUSEnv`` arguments, the same for every run (a data set given by
            name is built once and shared). A ``Learner`` object is deep-copied per run.

    Observation/action spaces are the single environment's batched K times
    (``(K, m)``). ``infos`` follow Gymnasium's vector convention (``info[key][k]`` with a
    ``info["_" + key]`` mask). ``get_learner(k)`` returns run k's learner with its
    model holding the current parameters.
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, **env_kwargs: Any) -> None:
        if not is_int(num_envs) or num_envs < 1:
            raise VectorEnvError(f"num_envs must be a positive int, got {num_envs!r}")
        num_envs = int(num_envs)
        kwargs = dict(env_kwargs)
        kwargs.pop("max_episode_steps", None)  # passed by make_vec for specs with a limit
        dataset = kwargs.pop("dataset", "synthetic")
        if isinstance(dataset, str):
            dataset = make_dataset(dataset, **dict(kwargs.pop("dataset_kwargs", None) or {}))
        learner = kwargs.pop("learner", "baseline")
        learner_kwargs = dict(kwargs.pop("learner_kwargs", None) or {})
        sample_order = kwargs.pop("sample_order", "shuffle")
        self.envs: list[DUSEnv] = []
        for _ in range(num_envs):
            run_learner = make_learner(learner, **learner_kwargs) if isinstance(learner, str) else copy.deepcopy(learner)
            order = copy.deepcopy(sample_order) if isinstance(sample_order, SampleOrder) else sample_order
            self.envs.append(DUSEnv(dataset=dataset, learner=run_learner, sample_order=order, **kwargs))
        self._check_supported(self.envs[0])

        first = self.envs[0]
        self.num_envs = num_envs
        self.modalities = first.modalities
        self.device = first.device
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = dict(self.metadata)
        self.autoreset_mode = AutoresetMode.NEXT_STEP
        self.engine = BatchedRuns(self.envs)
        self._loaded = False
        self._autoreset = np.zeros(num_envs, dtype=np.bool_)
        self._obs = np.zeros((num_envs, len(self.modalities)), dtype=np.float32)

    @staticmethod
    def _check_supported(env: DUSEnv) -> None:
        reason = engine_support(env)
        if reason is not None:
            raise VectorEnvError(f"the batched vector environment cannot train this configuration: {reason}; "
                                 + _SYNC_HINT)

    def get_learner(self, k: int) -> Learner:
        """Run k's learner, its model holding slot k's current parameters (synced every step)."""
        return self.envs[k].learner

    # ------------------------------------------------------------------ gym API
    @grad_mode_independent
    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict | None = None):
        """Reset every run (or those in ``options["reset_mask"]``); ``seed`` int -> ``seed + k``."""
        k_all = self.num_envs
        if seed is None:
            seeds: list[int | None] = [None] * k_all
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + k for k in range(k_all)]
        else:
            seeds = list(seed)
            if len(seeds) != k_all:
                raise VectorEnvError(f"got {len(seeds)} seeds for num_envs={k_all}")
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        mask = np.ones(k_all, dtype=np.bool_) if mask is None else np.asarray(mask, dtype=np.bool_)
        if mask.shape != (k_all,):
            raise VectorEnvError(f"options['reset_mask'] must have shape ({k_all},), got {mask.shape}")
        infos: dict[str, Any] = {}
        for k in np.flatnonzero(mask):
            obs, info = self.envs[k].reset(seed=seeds[k], options=options or None)
            self._obs[k] = obs
            infos = self._add_info(infos, info, int(k))
            self._autoreset[k] = False
        if not self._loaded:
            if not mask.all():
                raise EnvStateError("the first reset must reset every sub-environment")
            self.engine.load()
            self._loaded = True
        else:
            self.engine.load([int(k) for k in np.flatnonzero(mask)])
        return self._obs.copy(), infos

    def _check_actions(self, actions: Any) -> np.ndarray:
        """``actions`` as an array with one row per sub-environment, or :class:`ActionError`.

        Refuses ``None``, scalars, strings, 0-d arrays and a leading dimension other than
        ``num_envs`` here; each row is checked by its sub-environment in :meth:`step`,
        whose error names the slot.
        """
        if actions is None or isinstance(actions, (str, bytes)):
            raise ActionError(f"actions must be an array of shape ({self.num_envs}, m), one row per "
                              f"sub-environment, got {actions!r}")
        try:
            arr = np.asarray(actions)
        except (ValueError, TypeError) as exc:  # ragged lists
            raise ActionError(f"actions must be an array of shape ({self.num_envs}, m), one row per "
                              f"sub-environment; cannot read {actions!r} as one ({exc})") from None
        if arr.ndim == 0 or arr.shape[0] != self.num_envs:
            raise ActionError(f"actions must have a leading dimension of num_envs={self.num_envs} (one row per "
                              f"sub-environment), got shape {arr.shape}")
        return arr

    @grad_mode_independent
    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = self._check_actions(actions)
        if not self._loaded:
            raise EnvStateError("call reset() before step()")
        k_all = self.num_envs
        rewards = np.zeros(k_all, dtype=np.float64)
        terms = np.zeros(k_all, dtype=np.bool_)
        truncs = np.zeros(k_all, dtype=np.bool_)
        infos: dict[str, Any] = {}
        per_info: dict[int, dict] = {}

        # NEXT_STEP autoreset: runs that ended last step are reset now and do not train.
        active = [k for k in range(k_all) if not self._autoreset[k]]
        # Every action is checked before any slot resets or trains; a bad one names its slot.
        sized = {}
        for k in active:
            try:
                sized[k] = self.envs[k].batch_sizes_for(actions[k])
            except ActionError as exc:
                raise ActionError(f"action of sub-environment {k} (slot {k} of {k_all}): {exc}") from None
        for k in range(k_all):
            if self._autoreset[k]:
                self._obs[k], per_info[k] = self.envs[k].reset()
                self.engine.load([k])
        plans = {}
        for k in active:
            env = self.envs[k]
            proportions, sizes = sized[k]
            val_before = env.validation_metrics()["fused"]["accuracy"] if env.needs_validation else None
            plans[k] = (proportions, sizes, val_before)
        # Runs at the same iteration train together (after autoresets they may differ).
        groups: dict[int, list[int]] = {}
        for k in active:
            groups.setdefault(self.envs[k].iteration, []).append(k)
        for members in groups.values():
            packed = self.engine.step(members, [plans[k][1] for k in members])
            for row, k in enumerate(members):
                proportions, sizes, val_before = plans[k]
                out = self.envs[k].finish_step(packed[row], self.engine.last_keys, proportions, sizes, val_before)
                self._obs[k], rewards[k], terms[k], truncs[k], per_info[k] = out
        for k in range(k_all):
            infos = self._add_info(infos, per_info[k], k)
        self._autoreset = terms | truncs
        return self._obs.copy(), rewards, terms, truncs, infos

    def close(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()
        super().close(**kwargs)


class VectorFallbackWarning(UserWarning):
    """``make_vec``'s default fell back to ``SyncVectorEnv`` (the configuration is not batched)."""


def make_vector_env(num_envs: int = 1, **env_kwargs: Any) -> VectorEnv:
    """The ``vector_entry_point`` of ``mmenv/DUS-v0`` (``gymnasium.make_vec``'s default).

    The batched :class:`DUSVectorEnv` when the configuration is supported; otherwise
    (another learner such as OGM-GE or MLA, media data, Adam, ...) a
    ``gymnasium.vector.SyncVectorEnv`` of ``num_envs`` :class:`DUSEnv`, with a one-line
    :class:`VectorFallbackWarning` saying why. Both give the same per-run results.
    """
    try:
        return DUSVectorEnv(num_envs=num_envs, **env_kwargs)
    except VectorEnvError as exc:
        import warnings

        from gymnasium.vector import SyncVectorEnv

        reason = str(exc).split("; use gymnasium")[0]
        warnings.warn(f"mmenv: {reason}; using gymnasium.vector.SyncVectorEnv instead", VectorFallbackWarning,
                      stacklevel=3)
        kwargs = dict(env_kwargs)
        kwargs.pop("max_episode_steps", None)

        def make_one() -> DUSEnv:
            # A learner given as an object is copied: every run trains its own model.
            learner = kwargs.get("learner", "baseline")
            one = dict(kwargs, learner=learner if isinstance(learner, str) else copy.deepcopy(learner))
            return DUSEnv(**one)

        return SyncVectorEnv([make_one for _ in range(num_envs)])
