"""Learners (MML methods) and their name registry.

``make_learner("baseline", **kwargs)`` builds a learner by name; ``register_learner``
adds a user's class under a new name. See :mod:`mmenv.learners.base` for the protocol.
"""

from __future__ import annotations

from collections.abc import Callable

from ..registry import Registry
from .agm import AGMLearner
from .base import Batch, Learner, LearnerContext, LearnerError, Prediction, StepOutput
from .baseline import BaselineLearner
from .di_mml import DIMMLLearner
from .mla import MLALearner
from .ogm_ge import OGMGELearner
from .pmr import PMRLearner

__all__ = [
    "Batch",
    "Learner",
    "LearnerContext",
    "LearnerError",
    "Prediction",
    "StepOutput",
    "BaselineLearner",
    "OGMGELearner",
    "MLALearner",
    "PMRLearner",
    "AGMLearner",
    "DIMMLLearner",
    "LEARNERS",
    "make_learner",
    "register_learner",
]

LEARNERS: Registry = Registry("learner", "mmenv.learners", instance_of=Learner,
                              alternative="or pass a Learner object")
for _name, _cls in {
    "baseline": BaselineLearner,
    "ogm-ge": OGMGELearner,
    "mla": MLALearner,
    "pmr": PMRLearner,
    "agm": AGMLearner,
    "di-mml": DIMMLLearner,
}.items():
    LEARNERS.register(_name, _cls)


def register_learner(name: str, cls: Callable[..., Learner], overwrite: bool = False) -> None:
    """Register a learner class (or factory) under ``name`` (case-insensitive).

    Installed packages can add learners without code through the entry-point group
    ``mmenv.learners`` (see :mod:`mmenv.registry`); ``mmenv compare`` and its worker
    processes then find them by name.
    """
    LEARNERS.register(name, cls, overwrite=overwrite)


def make_learner(name: str, **kwargs) -> Learner:
    """Build the learner registered as ``name`` with ``kwargs`` (checked against its arguments)."""
    return LEARNERS.make(name, **kwargs)
