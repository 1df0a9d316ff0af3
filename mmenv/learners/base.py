"""The learner protocol: how a multimodal learning (MML) method plugs into the environment.

The environment owns the data, the sampling and the discrepancy; a learner owns the
model and the optimisation. Each training iteration the environment hands the learner
one :class:`Batch` with a *different number of samples per modality*; the first
``batch.num_paired`` rows of every modality are the same samples in the same order
(the *paired core*), the remaining rows are that modality's own (unpaired) samples.
The learner updates its model and returns a :class:`StepOutput` with each modality's
unimodal logits on its whole batch (the environment turns them into the discrepancy
score s_t^j) and its losses. For evaluation it returns a :class:`Prediction`.

A user's method is one small class::

    class MyLearner(Learner):
        name = "mine"
        def setup(self, ctx): ...            # build model + optimizer
        def train_step(self, batch): ...     # one iteration -> StepOutput
        def predict(self, inputs): ...       # -> Prediction(fused, per_modality)

Keep ``train_step`` free of host synchronisation (no ``.item()``, ``.cpu()``, Python
branches on tensor values): the environment synchronises once per environment step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..datasets.base import ModalitySpec
from ..errors import LearnerError

__all__ = ["Batch", "StepOutput", "Prediction", "LearnerContext", "Learner", "LearnerError"]



@dataclass
class LearnerContext:
    """What a learner knows when it builds its model (``Learner.setup``)."""

    modalities: Sequence[ModalitySpec]
    num_classes: int
    device: torch.device
    batch_budget: int
    epochs: int
    iters_per_epoch: int
    seed: int
    generator: torch.Generator | None = None

    @property
    def modality_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.modalities)


@dataclass
class Batch:
    """One iteration's per-modality batches.

    Attributes:
        inputs: modality -> tensor ``[a_j, ...]`` (sizes differ across modalities).
        labels: modality -> ``LongTensor [a_j]``.
        indices: modality -> dataset indices of the rows (for sample-level methods).
        num_paired: the first ``num_paired`` rows of every modality are the same samples.
        epoch, iteration: 0-based epoch and global iteration counter.
        masks: optional modality -> ``BoolTensor [a_j]`` marking rows whose *other*
            modalities must be treated as missing (used by Data Remixing); ``None``
            means no masking.
        weights: ``None`` (every row is real, the single environment) or, in a batch the
            batched engine padded to the widest run, modality -> float ``[a_j]`` (1 real
            row, 0 padding). See :mod:`mmenv.learners.functional`.
        paired_weight: ``None`` or, padded, float ``[num_paired]``: 1 on the rows of this
            run's own paired core (which may be shorter than ``num_paired``).
    """

    inputs: dict[str, Tensor]
    labels: dict[str, Tensor]
    indices: dict[str, Tensor]
    num_paired: int
    epoch: int = 0
    iteration: int = 0
    masks: dict[str, Tensor] | None = None
    weights: dict[str, Tensor] | None = None
    paired_weight: Tensor | None = None

    @property
    def sizes(self) -> dict[str, int]:
        return {m: int(y.shape[0]) for m, y in self.labels.items()}

    def paired_labels(self) -> Tensor:
        first = next(iter(self.labels.values()))
        return first[: self.num_paired]


@dataclass
class StepOutput:
    """What a learner returns from one training iteration (all detached tensors).

    Attributes:
        logits: modality -> unimodal logits ``[a_j, C]`` on that modality's whole batch
            (the discrepancy is the summed softmax probability of the true class).
        losses: name -> scalar loss tensor; ``"total"`` is required, per-modality entries
            are keyed by modality name, others (``"fused"``...) are logged as they are.
        extras: name -> scalar tensor for logging (e.g. OGM-GE's coefficients).
    """

    logits: dict[str, Tensor]
    losses: dict[str, Tensor]
    extras: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class Prediction:
    """Evaluation output: class scores (logits or log-probabilities) per sample."""

    fused: Tensor
    per_modality: dict[str, Tensor]


class Learner(ABC):
    """Base class of every learner. Subclasses set the class attributes and implement
    :meth:`setup`, :meth:`train_step` and :meth:`predict`.

    Class attributes:
        name: registry name (lower-case, hyphens).
        requires_paired: ``True`` if the method cannot learn anything from unpaired rows
            (e.g. it only has a fusion loss). The environment then refuses a
            configuration in which the paired core could be empty.
        min_modalities, max_modalities: supported number of modalities (``None`` = any).
        supports_masks: ``True`` if :meth:`train_step` honours ``Batch.masks`` (rows whose
            other modalities are missing enter the fusion with those zero-filled). Sample
            orders that produce masked single-modality batches (Data Remixing) need it.
    """

    name: str = "learner"
    requires_paired: bool = False
    supports_masks: bool = False
    min_modalities: int = 2
    max_modalities: int | None = None

    def check_modalities(self, modalities: Sequence[str]) -> None:
        m = len(modalities)
        if m < self.min_modalities or (self.max_modalities is not None and m > self.max_modalities):
            hi = "any number" if self.max_modalities is None else str(self.max_modalities)
            raise LearnerError(
                f"learner {self.name!r} supports {self.min_modalities} to {hi} modalities, "
                f"the dataset has {m} ({list(modalities)}); choose other views/modalities or another learner"
            )

    @abstractmethod
    def setup(self, ctx: LearnerContext) -> None:
        """Build (or rebuild from scratch) the model and optimizer. Called at every reset."""

    @abstractmethod
    def train_step(self, batch: Batch) -> StepOutput:
        """Run one training iteration on ``batch``."""

    @abstractmethod
    def predict(self, inputs: Mapping[str, Tensor]) -> Prediction:
        """Scores for paired evaluation inputs (no gradient)."""

    def on_epoch_end(self, epoch: int) -> None:  # noqa: B027 - an optional hook, not abstract
        """Hook after each epoch (learning-rate schedules, epoch-level statistics)."""

    def train(self) -> None:
        for module in self.modules():
            module.train()

    def eval(self) -> None:
        for module in self.modules():
            module.eval()

    def modules(self) -> list[torch.nn.Module]:
        """The ``nn.Module``s to switch between train and eval mode."""
        model = getattr(self, "model", None)
        return [model] if isinstance(model, torch.nn.Module) else []

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume training (model and optimizer by default)."""
        state: dict[str, Any] = {}
        for key in ("model", "optimizer", "scheduler"):
            obj = getattr(self, key, None)
            if obj is not None and hasattr(obj, "state_dict"):
                state[key] = obj.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key, value in state.items():
            getattr(self, key).load_state_dict(value)
