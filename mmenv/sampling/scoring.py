"""Scoring a data split with the current model, and what a sample order sees at an epoch start.

BSS and Data Remixing rank or assign training samples by the model's own predictions.
:func:`predict_split` is the one prediction loop of the package: it runs
``learner.predict`` over a whole split in eval mode, batched, on the split's device,
under ``torch.autocast`` when a reduced precision is set, and puts the learner back in
train mode even if a batch fails. It does not synchronise with the host.
``DUSEnv.evaluate`` (the validation / test metrics) and the strategies' scoring both use it.

A strategy does not receive the environment: at each epoch start it gets a
:class:`ScoringContext` (as a reward gets a :class:`~mmenv.rewards.RewardContext`)
holding the epoch, the episode length, the training labels, the tracker's cumulative
discrepancy and a ``predict`` function. :func:`scoring_context` builds one from a
learner and a data set, for using a strategy without an environment.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from ..datasets.base import Split
from ..errors import InvalidArgumentError
from ..learners.base import Learner

__all__ = ["ScoringContext", "SplitPredictor", "autocast_context", "predict_split", "scoring_context"]


def autocast_context(device_type: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast(device_type, dtype)``, or a no-op context when ``dtype`` is ``None``."""
    if dtype is None:
        return contextlib.nullcontext()  # no per-batch cost when off
    return torch.autocast(device_type, dtype=dtype)


@torch.no_grad()
def predict_split(learner: Learner, split: Split, batch_size: int = 1024,
                  autocast_dtype: torch.dtype | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Return ``(fused [N, C], {modality: [N, C]})`` class scores of ``learner`` on ``split``.

    Scores are what ``learner.predict`` returns (logits or log-probabilities); both give
    the same softmax and the same cross-entropy. ``autocast_dtype`` (e.g.
    ``torch.bfloat16``) runs the predictions under ``torch.autocast`` on the split's device.
    """
    if batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be >= 1, got {batch_size}")
    device_type = split.labels.device.type
    learner.eval()
    try:
        fused: list[Tensor] = []
        per: dict[str, list[Tensor]] = {m: [] for m in split.modalities}
        for inputs, _ in split.iter_batches(batch_size):
            with autocast_context(device_type, autocast_dtype):
                pred = learner.predict(inputs)
            fused.append(pred.fused)
            for m in split.modalities:
                per[m].append(pred.per_modality[m])
    finally:
        learner.train()
    return torch.cat(fused), {m: torch.cat(v) for m, v in per.items()}


class SplitPredictor(Protocol):
    """``predict(split="train", batch_size=None)``: :func:`predict_split` of the current model
    on a split of the episode's data set (``batch_size=None``: the environment's)."""

    def __call__(self, split: str = "train", batch_size: int | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        ...


@dataclass(frozen=True)
class ScoringContext:
    """What a sample order may use when an epoch starts (``SampleOrder.on_epoch_start(ctx)``)."""

    epoch: int                 # the epoch about to start (0-based)
    epochs: int | None         # epochs in the episode (None: unknown, e.g. a strategy used alone)
    labels: Tensor             # true classes of the training split, [N], on the episode's device
    discrepancy: Tensor        # the tracker's cumulative discrepancy (the observation's scale), [m]
    predict: SplitPredictor    # class scores of the current model on a split


def scoring_context(learner: Learner, dataset: Any, epoch: int = 0, epochs: int | None = None,
                    batch_size: int = 1024, discrepancy: Tensor | None = None,
                    autocast_dtype: torch.dtype | None = None) -> ScoringContext:
    """A :class:`ScoringContext` for ``learner`` on ``dataset`` (a ``MultimodalDataset``), outside an env.

    ``discrepancy`` defaults to zeros (no training seen yet).
    """
    train = dataset.train
    default_batch = batch_size

    def predict(split: str = "train", batch_size: int | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        data = getattr(dataset, split, None)
        if data is None:
            raise InvalidArgumentError(f"dataset {getattr(dataset, 'name', '?')!r} has no {split!r} split")
        return predict_split(learner, data, batch_size or default_batch, autocast_dtype)

    if discrepancy is None:
        discrepancy = torch.zeros(len(train.modalities), device=train.labels.device)
    return ScoringContext(epoch, epochs, train.labels, discrepancy, predict)
