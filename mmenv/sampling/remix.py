"""Data Remixing as a sample-order strategy.

Reading of the method taken here (design notes, section 3): after ``warmup_epochs`` of
ordinary joint training, at the start of every epoch each training sample is assigned
to the modality that is *less* confident on it, confidence being
``KL(p_m || uniform) = log C - H(p_m)`` of that modality's softmax prediction (ties go
to the earlier modality). Each modality then trains on single-modality batches drawn
from its own subset, the other modalities missing: their features are zero-filled in
the fusion head (``Batch.masks``), and the learner's loss is CE(fused) + CE(unimodal).
The warm-up loss weights (CE(fused) + 0.5 CE(a) + 0.5 CE(v) in the paper) are the
learner's business (e.g. ``BaselineLearner(unimodal_weight=0.5)``).

Fit into the environment: during remix epochs the sampler draws no paired core
(``single_modality_batches``), modality j draws its ``a_j`` rows (the DUS policy's batch
size) from its assigned subset, and every row is marked in ``Batch.masks``. A modality
whose subset is empty that epoch draws from the whole training split instead, so a
policy's batch sizes are always honoured.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import EnvStateError, InvalidArgumentError
from .order import SampleOrder
from .scoring import ScoringContext

__all__ = ["confidence_kl", "DataRemix"]


def confidence_kl(scores: Tensor) -> Tensor:
    """``KL(softmax(scores) || uniform)`` per row: ``log C - entropy`` (0 = no confidence)."""
    logp = torch.log_softmax(scores.float(), dim=1)
    return math.log(scores.shape[1]) + (logp.exp() * logp).sum(1)


class DataRemix(SampleOrder):
    """Data Remixing: per-epoch assignment of samples to their less confident modality.

    Args:
        warmup_epochs: epochs of ordinary joint (paired) training before remixing (default 1).
        reassign_every: re-assign every k remix epochs (default 1, every epoch).
        score_batch_size: batch size of the scoring pass (default: the env's eval batch size).
    """

    name = "remix"
    restart_each_epoch = True
    uses_masks = True

    def __init__(self, warmup_epochs: int = 1, reassign_every: int = 1, score_batch_size: int | None = None) -> None:
        if not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise InvalidArgumentError(f"warmup_epochs must be an int >= 0, got {warmup_epochs!r}")
        if not isinstance(reassign_every, int) or reassign_every < 1:
            raise InvalidArgumentError(f"reassign_every must be an int >= 1, got {reassign_every!r}")
        self.warmup_epochs, self.reassign_every, self.score_batch_size = warmup_epochs, reassign_every, score_batch_size
        self.assignment: Tensor | None = None
        self.confidence: Tensor | None = None
        self.subsets: dict[str, Tensor] = {}

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(s for s in self.streams if s != "paired")

    def setup(self, n, streams, device, generator) -> None:
        super().setup(n, streams, device, generator)
        self.assignment, self.confidence, self.subsets = None, None, {}

    def single_modality_batches(self, epoch: int) -> bool:
        return epoch >= self.warmup_epochs

    def assign(self, per_modality: dict[str, Tensor]) -> Tensor:
        """Index (into ``self.modalities``) of the least confident modality per sample."""
        self.confidence = torch.stack([confidence_kl(per_modality[m]) for m in self.modalities], dim=1)
        self.assignment = self.confidence.argmin(dim=1)
        # One host sync per (re-)assignment: subset sizes are needed to slice passes.
        self.subsets = {m: torch.nonzero(self.assignment == j).flatten() for j, m in enumerate(self.modalities)}
        return self.assignment

    def on_epoch_start(self, ctx: ScoringContext) -> None:
        epoch = ctx.epoch
        if epoch < self.warmup_epochs:
            return
        if self.assignment is None or (epoch - self.warmup_epochs) % self.reassign_every == 0:
            _, per = ctx.predict("train", self.score_batch_size)
            self.assign(per)

    def next_pass(self, stream: str, epoch: int) -> Tensor:
        if epoch < self.warmup_epochs or stream == "paired":
            return torch.randperm(self.n, generator=self.generator, device=self.device)
        if stream not in self.subsets:
            raise EnvStateError(f"sample order 'remix' has no assignment for stream {stream!r} at epoch {epoch}: the "
                               "environment calls on_epoch_start(ctx) before sampling")
        subset = self.subsets[stream]
        if subset.shape[0] == 0:  # nothing assigned to this modality: keep its batch size, use all samples
            return torch.randperm(self.n, generator=self.generator, device=self.device)
        return subset[torch.randperm(subset.shape[0], generator=self.generator, device=self.device)]

    def state_dict(self) -> dict:
        return {"assignment": self.assignment, "confidence": self.confidence, "subsets": self.subsets}

    def load_state_dict(self, state: dict) -> None:
        self.assignment, self.confidence, self.subsets = state["assignment"], state["confidence"], state["subsets"]
