"""Pieces several learners share: optimizer construction and loss scaling."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor
from torch.nn import functional as F

LOSS_SCALES = ("mean", "budget")


def build_optimizer(
    params: Iterable[torch.nn.Parameter],
    optimizer: str = "sgd",
    lr: float = 1e-2,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
) -> torch.optim.Optimizer:
    """SGD (momentum 0.9, weight decay 1e-4, lr 1e-2: the paper's setting) or Adam."""
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {optimizer!r}; valid: 'sgd', 'adam'")


def check_loss_scale(loss_scale: str) -> str:
    if loss_scale not in LOSS_SCALES:
        raise ValueError(f"unknown loss_scale {loss_scale!r}; valid: {list(LOSS_SCALES)}")
    return loss_scale


def scaled_ce(logits: Tensor, labels: Tensor, loss_scale: str, budget_share: float) -> Tensor:
    """Cross-entropy of one modality's batch under the chosen loss scaling.

    ``"mean"``: the usual per-sample mean, so the batch share changes only the gradient
    noise. ``"budget"``: the sum over the batch divided by the constant ``budget_share``
    (N_B / m), so a modality's share also scales its gradient magnitude. An empty batch
    contributes zero (with a graph, so ``backward`` still works).
    """
    n = logits.shape[0]
    if n == 0:
        return logits.sum() * 0.0
    if loss_scale == "mean":
        return F.cross_entropy(logits, labels)
    return F.cross_entropy(logits, labels, reduction="sum") / budget_share


def weighted_scaled_ce(logits: Tensor, labels: Tensor, weights: Tensor, loss_scale: str, budget_share: float) -> Tensor:
    """:func:`scaled_ce` with per-row weights in [0, 1] (0 drops a row), host-sync free.

    ``"mean"`` divides the weighted sum by the total weight (at least 1), ``"budget"``
    by ``budget_share``; with all weights 1 it equals :func:`scaled_ce`.
    """
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    ce = (F.cross_entropy(logits, labels, reduction="none") * weights).sum()
    if loss_scale == "mean":
        return ce / weights.sum().clamp_min(1.0)
    return ce / budget_share
