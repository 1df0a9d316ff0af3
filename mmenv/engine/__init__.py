"""The batched training engine: K runs of one configuration trained in the same kernels.

:class:`BatchedRuns` trains K :class:`~mmenv.env.DUSEnv` runs together through the
learners' functional form (:mod:`mmenv.learners.functional`); :func:`play_batch` plays K
runs (policies or fixed schedules) and returns the same result dicts as one run at a time.
"""

from .batched import BatchedRuns, EngineError, engine_support
from .executor import BatchedExecutor, execute_batch, play_batch, schedule_policy

__all__ = ["BatchedExecutor", "BatchedRuns", "EngineError", "engine_support", "execute_batch", "play_batch",
           "schedule_policy"]
