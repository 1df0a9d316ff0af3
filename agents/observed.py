"""A policy that reads a benchmark observation, played on a plain :class:`mmenv.DUSEnv`.

The benchmark's observations (``"extended"``, ``"modal"``: :mod:`mmenv.observations`) are
built by the ``mmenv/DUSBench-v0`` wrapper. The batched engine
(:func:`mmenv.engine.play_batch`) plays K unwrapped environments, so an agent trained on a
benchmark observation is wrapped in :class:`ObservedPolicy` there instead: at every step it
builds the same observation from the environment's own observation and ``info`` (and
``evaluate("val")`` for ``"modal"``) with the same :class:`~mmenv.observations.ObservationBuilder`
the wrapper uses, and hands it to the inner policy. Played on a plain DUSEnv, an
``ObservedPolicy`` therefore acts as its inner policy acts in ``mmenv/DUSBench-v0``
(tests/test_engine.py and the ES tests of tests/test_across_runs.py compare the two).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmenv.observations import ObservationBuilder, check_observation

from .policy import Policy, PolicyError

__all__ = ["ObservedPolicy"]


class ObservedPolicy(Policy):
    """``policy`` acting on the benchmark observation ``observation`` of the environment it is reset with."""

    def __init__(self, policy: Any, observation: str) -> None:
        from .runner import as_policy

        self.policy = as_policy(policy)
        self.observation = check_observation(observation)
        self.name = f"{getattr(self.policy, 'name', 'policy')}[{observation}]"
        self._env: Any = None
        self._builder: ObservationBuilder | None = None
        self._first = True

    def reset(self, env: Any) -> None:
        base = getattr(env, "unwrapped", env)
        if not hasattr(base, "validation_metrics") or not hasattr(base, "dataset"):
            raise PolicyError("ObservedPolicy builds the benchmark observation from a mmenv.DUSEnv: reset it with one")
        if self.observation == "modal" and base.dataset.val is None:
            raise PolicyError("observation 'modal' reads per-modality validation accuracy; the data set has no "
                              "validation split")
        self._env = base
        self._builder = ObservationBuilder(self.observation, base.modalities, base.dataset.num_classes)
        self._first = True
        self.policy.reset(base)

    def observe(self, obs: np.ndarray, info: dict | None) -> np.ndarray:
        """The benchmark observation of this step (the wrapper's, for the same run)."""
        if self._builder is None:
            raise PolicyError("call reset(env) before act()")
        env = self._env
        first, self._first = self._first, False
        diverged = bool(info.get("diverged", False)) if (info is not None and not first) else False
        return self._builder.build(obs, None if first else info, int(env.total_iters),
                                   env.validation_metrics, diverged)

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        return self.policy.act(self.observe(obs, info), info)

    def close(self) -> None:
        close = getattr(self.policy, "close", None)
        if callable(close):
            close()
