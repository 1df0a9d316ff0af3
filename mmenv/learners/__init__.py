"""Learners (MML methods) and their name registry.

``make_learner("baseline", **kwargs)`` builds a learner by name; ``register_learner``
adds a user's class under a new name. See :mod:`mmenv.learners.base` for the protocol.
"""

from __future__ import annotations

from typing import Callable

from .base import Batch, Learner, LearnerContext, LearnerError, Prediction, StepOutput
from .agm import AGMLearner
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

LEARNERS: dict[str, Callable[..., Learner]] = {
    "baseline": BaselineLearner,
    "ogm-ge": OGMGELearner,
    "mla": MLALearner,
    "pmr": PMRLearner,
    "agm": AGMLearner,
    "di-mml": DIMMLLearner,
}


def register_learner(name: str, cls: Callable[..., Learner]) -> None:
    """Register a learner class (or factory) under ``name``."""
    LEARNERS[name] = cls


def make_learner(name: str, **kwargs) -> Learner:
    if name not in LEARNERS:
        raise ValueError(f"unknown learner {name!r}; valid names: {sorted(LEARNERS)} (or pass a Learner object)")
    return LEARNERS[name](**kwargs)
