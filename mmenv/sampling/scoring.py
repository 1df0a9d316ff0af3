"""Scoring the training split with the current model (for sample-order strategies).

BSS and Data Remixing rank or assign training samples by the model's own predictions.
:func:`predict_split` runs ``learner.predict`` over a whole split in eval mode, batched
and on the split's device, and puts the learner back in train mode. It does not
synchronise with the host.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..datasets.base import Split
from ..learners.base import Learner


@torch.no_grad()
def predict_split(learner: Learner, split: Split, batch_size: int = 1024) -> tuple[Tensor, dict[str, Tensor]]:
    """Return ``(fused [N, C], {modality: [N, C]})`` class scores of ``learner`` on ``split``.

    Scores are what ``learner.predict`` returns (logits or log-probabilities); both give
    the same softmax and the same cross-entropy.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    learner.eval()
    try:
        fused, per = [], {m: [] for m in split.modalities}
        for inputs, _ in split.iter_batches(batch_size):
            pred = learner.predict(inputs)
            fused.append(pred.fused)
            for m in split.modalities:
                per[m].append(pred.per_modality[m])
    finally:
        learner.train()
    return torch.cat(fused), {m: torch.cat(v) for m, v in per.items()}
