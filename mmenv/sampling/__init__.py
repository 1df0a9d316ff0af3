"""Batch allocation (Eq. 4), per-modality index sampling and sample-order strategies."""

from .allocation import (
    ACTION_SPACES,
    SOFTMAX_SCALE,
    ActionError,
    action_to_proportions,
    allocate,
    proportions_to_action,
)
from .bss import BSSCurriculum, BSSLearned
from .order import SAMPLE_ORDERS, SampleOrder, Shuffle, make_sample_order, register_sample_order
from .remix import DataRemix
from .sampler import ModalitySampler
from .scoring import ScoringContext, predict_split, scoring_context

__all__ = [
    "ActionError",
    "action_to_proportions",
    "proportions_to_action",
    "ACTION_SPACES",
    "SOFTMAX_SCALE",
    "allocate",
    "SAMPLE_ORDERS",
    "SampleOrder",
    "Shuffle",
    "BSSCurriculum",
    "BSSLearned",
    "DataRemix",
    "make_sample_order",
    "register_sample_order",
    "ModalitySampler",
    "ScoringContext",
    "predict_split",
    "scoring_context",
]
