"""Classification metrics on tensors: accuracy, MAP and macro-F1 (the paper's metrics)."""

from __future__ import annotations

import torch
from torch import Tensor


def accuracy(scores: Tensor, labels: Tensor) -> float:
    return float((scores.argmax(1) == labels).float().mean())


def mean_average_precision(scores: Tensor, labels: Tensor) -> float:
    """Mean over classes (with at least one positive) of one-vs-rest average precision.

    AP_c = (1/P_c) * sum over positives of precision at their rank, ranking by score
    (ties broken by sample order; the same convention as a stable sort).
    """
    n, c = scores.shape
    order = torch.argsort(scores.float(), dim=0, descending=True, stable=True)  # [n, c]
    onehot = torch.zeros(n, c, device=scores.device)
    onehot[torch.arange(n, device=scores.device), labels] = 1.0
    hits = onehot.gather(0, order)  # [n, c] positives in rank order
    ranks = torch.arange(1, n + 1, device=scores.device, dtype=torch.float32).unsqueeze(1)
    precision = hits.cumsum(0) / ranks
    positives = hits.sum(0)
    ap = (precision * hits).sum(0) / positives.clamp(min=1)
    valid = positives > 0
    return float(ap[valid].mean()) if bool(valid.any()) else 0.0


def macro_f1(scores: Tensor, labels: Tensor, num_classes: int | None = None) -> float:
    """Unweighted mean of per-class F1 over the classes present in labels or predictions."""
    c = num_classes or scores.shape[1]
    pred = scores.argmax(1)
    tp = torch.bincount(labels[pred == labels], minlength=c).float()
    pred_count = torch.bincount(pred, minlength=c).float()
    true_count = torch.bincount(labels, minlength=c).float()
    denom = pred_count + true_count
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.zeros_like(tp))
    present = denom > 0
    return float(f1[present].mean())


def classification_metrics(scores: Tensor, labels: Tensor, num_classes: int | None = None) -> dict[str, float]:
    """``{"accuracy", "map", "macro_f1"}`` for class scores ``[N, C]`` and labels ``[N]``."""
    return {
        "accuracy": accuracy(scores, labels),
        "map": mean_average_precision(scores, labels),
        "macro_f1": macro_f1(scores, labels, num_classes),
    }
