"""Per-step training statistics, folded in blocks so the iteration loop stays lean.

Every training iteration the environment needs each modality's batch discrepancy
``s_t^j`` (for the Eq. 3 running mean), its count of correct predictions (the step's
training accuracy) and the learner's losses (the step's mean losses). Computing them
right after each iteration costs some thirty tiny tensor operations per iteration,
which on a CPU is as much as a small model's forward pass. :class:`StepStats` instead
keeps the iteration's (already detached) logits, labels and losses and folds a whole
block of iterations at once with a handful of batched operations: one ``stack`` per
modality, one true-class probability pass, one argmax. Within an environment step the batch
sizes are fixed, so the blocks stack without padding.

The block is folded (:meth:`StepStats.flush`) when it reaches ``block`` iterations
(bounding the memory held to ``block x N_B x C`` logits), before every epoch start
(sample-order strategies may read the tracker then) and at the end of the step. The
result equals the per-iteration recurrence of Eq. 3 up to float rounding, and nothing
synchronises with the host. It relies on the learner protocol's promise that the tensors
of a ``StepOutput`` (and the batch labels) are not modified after they are returned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from .discrepancy import DiscrepancyTracker, true_class_probability

__all__ = ["StepStats", "fold_discrepancy"]


def fold_discrepancy(tracker: DiscrepancyTracker, s: Tensor) -> None:
    """Fold ``T`` iterations' batch discrepancies ``s`` (``[T, m]``) into ``tracker``
    (:meth:`DiscrepancyTracker.fold`: the tracker updates its own running mean)."""
    tracker.fold(s)


class StepStats:
    """Accumulates one environment step's discrepancy, correct counts and loss sums."""

    def __init__(self, modalities: Sequence[str], tracker: DiscrepancyTracker, device: torch.device,
                 block: int = 64) -> None:
        self.modalities = tuple(modalities)
        self.tracker = tracker
        self.block = block
        self.correct = torch.zeros(len(self.modalities), device=device)
        self.loss_sums: dict[str, Tensor] = {}
        self._logits: list[Mapping[str, Tensor]] = []
        self._labels: list[Mapping[str, Tensor]] = []
        self._losses: list[Mapping[str, Tensor]] = []

    def add(self, logits: Mapping[str, Tensor], labels: Mapping[str, Tensor], losses: Mapping[str, Tensor]) -> None:
        """Record one iteration (no tensor work here); folds when the block is full."""
        self._logits.append(logits)
        self._labels.append(labels)
        self._losses.append(losses)
        if len(self._logits) >= self.block:
            self.flush()

    def flush(self) -> None:
        """Fold the pending iterations into the tracker, the correct counts and the loss sums."""
        if not self._logits:
            return
        s_cols, hits = [], []
        for m in self.modalities:
            zs = [it[m] for it in self._logits]
            ys = [it[m] for it in self._labels]
            if len({z.shape for z in zs}) == 1:
                z = torch.stack(zs).float()  # [T, a_j, C]
                y = torch.stack(ys).unsqueeze(-1)  # [T, a_j, 1]
                p = true_class_probability(z, y.squeeze(-1))  # [T, a_j]
                s_cols.append(p.sum(1) if self.tracker.mode == "sum" else p.mean(1))
                hits.append((z.argmax(-1, keepdim=True) == y).sum())
            else:  # a learner whose row count varies between iterations: one at a time
                ps = [true_class_probability(z, y) for z, y in zip(zs, ys)]
                s_cols.append(torch.stack([p.sum() if self.tracker.mode == "sum" else p.mean() for p in ps]))
                hits.append(torch.stack([(z.argmax(1) == y).sum() for z, y in zip(zs, ys)]).sum())
        self.tracker.fold(torch.stack(s_cols, dim=1))
        self.correct = self.correct + torch.stack(hits)
        for key in self._losses[0]:
            # One stack per key: StepOutput losses are detached scalars already (no per-item ops).
            block_sum = torch.stack([it[key] for it in self._losses]).detach().float().sum()
            self.loss_sums[key] = self.loss_sums[key] + block_sum if key in self.loss_sums else block_sum
        self._logits, self._labels, self._losses = [], [], []
