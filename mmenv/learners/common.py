"""Pieces several learners share: optimizer construction, loss scaling, balance-method helpers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from ..discrepancy import true_class_probability
from ..models.multimodal import SharedHeadModel
from .base import LearnerError

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
    raise LearnerError(f"unknown optimizer {optimizer!r}; valid: 'sgd', 'adam'")


def check_loss_scale(loss_scale: str) -> str:
    if loss_scale not in LOSS_SCALES:
        raise LearnerError(f"unknown loss_scale {loss_scale!r}; valid: {list(LOSS_SCALES)}")
    return loss_scale


@dataclass(frozen=True)
class TrainingSettings:
    """The keyword block every built-in learner takes, with its defaults: the loss scaling,
    the optimizer (:func:`build_optimizer`) and the per-modality encoders.

    A learner keeps these keywords in its own signature (they are its public arguments,
    checked by the registries against the annotations) and hands them here in one line::

        TrainingSettings.pick(locals()).apply(self)
    """

    loss_scale: str = "budget"
    optimizer: str = "sgd"
    lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 1e-4
    encoders: Mapping[str, str] | None = None
    encoder_kwargs: Mapping[str, dict] | None = None

    @classmethod
    def pick(cls, values: Mapping[str, Any]) -> TrainingSettings:
        """The settings among ``values`` (a constructor's ``locals()``); the others are ignored."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    def kwargs(self) -> dict[str, Any]:
        """As keyword arguments (a subclass passing them on to its base's constructor)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def apply(self, learner: Any) -> None:
        """Set ``learner.loss_scale`` (checked), ``opt_kwargs``, ``encoder_names`` and ``encoder_kwargs``."""
        learner.loss_scale = check_loss_scale(self.loss_scale)
        learner.opt_kwargs = dict(optimizer=self.optimizer, lr=self.lr, momentum=self.momentum,
                                  weight_decay=self.weight_decay)
        learner.encoder_names = self.encoders
        learner.encoder_kwargs = self.encoder_kwargs


class TrainingSettingsMixin:
    """What :meth:`TrainingSettings.apply` sets on a learner (declared for the type checker)."""

    loss_scale: str
    opt_kwargs: dict[str, Any]
    encoder_names: Mapping[str, str] | None
    encoder_kwargs: Mapping[str, dict] | None


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
    # log_softmax + gather rather than F.cross_entropy: the same per-row CE, and under
    # torch.func.vmap (the batched engine) it runs native batching rules instead of the
    # Python decomposition cross_entropy gets there.
    ce = -(torch.log_softmax(logits, dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1) * weights).sum()
    if loss_scale == "mean":
        return ce / weights.sum().clamp_min(1.0)
    return ce / budget_share


# ---------------------------------------------------------------- balance-method helpers
def true_class_score(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean softmax probability of the true class over a batch (0 for an empty batch)."""
    if logits.shape[0] == 0:
        return logits.new_zeros(())
    return true_class_probability(logits, labels).mean()


def modality_scores(logits: Mapping[str, Tensor], labels: Mapping[str, Tensor], num_paired: int,
                    modalities: Sequence[str]) -> Tensor:
    """Per-modality confidence ``s_m`` (mean true-class probability), shape ``[m]``.

    Balance methods compare modalities by how well each one answers *the same samples*,
    so with unequal per-modality batches the score is taken on the paired core (the first
    ``num_paired`` rows, identical across modalities). Without a paired core each
    modality's own batch is used. A per-sample mean (not the paper's batch sum) keeps the
    ratio independent of the batch shares the sampler chose.
    """
    if num_paired > 0:
        scores = [true_class_score(logits[m][:num_paired], labels[m][:num_paired]) for m in modalities]
    else:
        scores = [true_class_score(logits[m], labels[m]) for m in modalities]
    return torch.stack(scores).detach()


def concat_head_slices(fusion: torch.nn.Linear, features: Mapping[str, Tensor],
                       feature_dims: Mapping[str, int], modalities: Sequence[str]) -> dict[str, Tensor]:
    """Unimodal logits of a concat-fusion head: ``W_m f_m + b / m`` per modality (OGM-GE's reading).

    The fused logits of a paired sample are exactly the sum of these slices.
    """
    out, start = {}, 0
    bias_share = fusion.bias / len(modalities) if fusion.bias is not None else 0.0
    for m in modalities:
        d = feature_dims[m]
        if m in features:
            out[m] = features[m] @ fusion.weight[:, start:start + d].T + bias_share
        start += d
    return out


def prediction_entropy(logits: Tensor) -> Tensor:
    """Per-sample entropy (nats) of ``softmax(logits)``, shape ``[B]``."""
    logp = torch.log_softmax(logits, dim=1)
    return -(logp.exp() * logp).sum(dim=1)


def entropy_weighted_fusion(logits: Mapping[str, Tensor], modalities: Sequence[str]) -> tuple[Tensor, Tensor]:
    """MLA's test-time fusion: per-sample weights ``softmax_m(-H_m)``; returns (fused, weights ``[B, m]``).

    The fused output is the weighted sum of the unimodal logits; a modality whose
    prediction on a sample is more certain (lower entropy) gets more weight on it.
    """
    stacked = torch.stack([logits[m] for m in modalities], dim=1)  # [B, m, C]
    weights = torch.softmax(-prediction_entropy(stacked.flatten(0, 1)).view(stacked.shape[:2]), dim=1)
    return (weights[..., None] * stacked).sum(dim=1), weights


def build_shared_head_model(ctx: Any, encoder_names: Mapping[str, str] | None,
                            encoder_kwargs: Mapping[str, dict] | None, learner: str) -> tuple[SharedHeadModel, int]:
    """Per-modality encoders feeding one classifier head shared by every modality
    (``model.head``), no unimodal or fusion heads: the model MLA and DI-MML train.
    Returns the model on ``ctx.device`` and the common feature width."""
    model = SharedHeadModel(ctx.modalities, ctx.num_classes, encoder_names, encoder_kwargs, learner)
    return model.to(ctx.device), model.head.in_features


