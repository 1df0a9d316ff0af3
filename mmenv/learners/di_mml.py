"""DI-MML: detached and interactive multimodal learning (Fan et al., ACM MM 2024).

Modality competition comes from training the encoders through one fused objective.
DI-MML *detaches* them: every encoder is trained by its own unimodal CE, and one
classifier head is shared by all modalities so their features live in one space that
a single head can read. The modalities *interact* only through a loss on the paired
part of the batch. The paper's example of splitting a batch into a paired and an
unpaired part is exactly what the environment hands over, so:

    L = sum_m CE(head(f_m), y) over modality m's whole batch          (unpaired part too)
      + lambda * DUC over the paired core                              (paired part)

**Dimension-decoupled unidirectional contrastive loss (DUC)** — the reading taken.
With the shared head ``W`` (``[C, d]``), the contribution of feature dimension ``i`` of
modality m to the true class is ``e_m[i] = mean_batch(f_m[:, i] * W[y, i])`` on the paired
core. For each ordered pair (m, n), on the dimensions where n is more effective than m
(``e_n[i] > e_m[i]``), modality m's paired features are pulled towards n's *detached*
features of the same sample by an InfoNCE loss over the paired batch (cosine
similarity, temperature ``tau``): knowledge flows one way, from the modality that
uses a dimension well to the one that does not, and never pulls the better modality
back. DUC averages over ordered pairs, so any number of modalities works.

Evaluation (the paper's *certainty-aware logit weighting*, ``fusion="certainty"``,
default): per sample, each modality's weight is ``softmax_m(max_c p_m(c | x) / T)`` with
``p_m`` the softmax of its shared-head logits and ``T = fusion_temperature`` (1, the
authors' default), and the fused output is the weighted sum of the unimodal logits.
``fusion="mean"`` averages the unimodal logits instead. Each modality's own logits are
its per-modality prediction.

Other readings: the dimension mask is recomputed every iteration from the current batch
(no running statistics) and detached; ``loss_scale`` applies to the unimodal CE terms,
the contrastive term is a mean over the paired rows.

Differences from the authors' public code, which runs two stages: (1) every modality has
its own classifier head *and* the shared one (loss ``CE(own) + w CE(shared)`` per
modality), and the DUC term, a supervised-contrastive loss on two fixed sets of
"modality-only" feature dimensions chosen once (at epoch 20, by per-dimension
nearest-class-centroid accuracy over the training set), is switched on from epoch 20;
(2) with the encoders frozen, a concat fusion head is trained and the certainty weights
also cover its output. Here one stage trains through the shared head only, the
dimension mask follows the current batch (a learner sees only its batches, and an
environment episode is a few epochs), and the weighting covers the unimodal outputs
(there is no second-stage fusion head).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from ..models.multimodal import SharedHeadModel
from .base import Batch, LearnerContext, LearnerError, Prediction
from .common import TrainingSettings, TrainingSettingsMixin, build_shared_head_model
from .functional import FunctionalLearner, StepInfo, paired_weights, row_weights, weighted_ce, weighted_mean


def dimension_effectiveness(features: Tensor, labels: Tensor, head_weight: Tensor,
                            weights: Tensor | None = None) -> Tensor:
    """Mean contribution ``f[:, i] * W[y, i]`` of every feature dimension to the true class, ``[d]``
    (over the rows ``weights`` marks real; ``None``: all)."""
    return weighted_mean(features * head_weight[labels], weights)


FUSIONS = ("certainty", "mean")


def certainty_weighted_fusion(logits: Mapping[str, Tensor], modalities: Sequence[str],
                              temperature: float = 1.0) -> tuple[Tensor, Tensor]:
    """Certainty-aware logit weighting: per-sample weights ``softmax_m(max_c p_m / T)``; returns (fused, ``[B, m]``)."""
    stacked = torch.stack([logits[m] for m in modalities], dim=1)  # [B, m, C]
    certainty = torch.softmax(stacked, dim=2).amax(dim=2)  # [B, m]
    weights = torch.softmax(certainty / temperature, dim=1)
    return (weights[..., None] * stacked).sum(dim=1), weights


def unidirectional_contrastive(student: Tensor, teacher: Tensor, mask: Tensor, tau: float,
                               weights: Tensor | None = None) -> Tensor:
    """InfoNCE pulling ``student`` rows to the detached ``teacher`` rows of the same sample,
    on the dimensions in ``mask`` only (``[B, d]``, ``[B, d]``, ``[d]`` bool). With ``weights``
    (``[B]``, 1 real row, 0 padding) padding rows are neither anchors nor negatives."""
    s = F.normalize(student * mask, dim=1, eps=1e-8)
    t = F.normalize(teacher.detach() * mask, dim=1, eps=1e-8)
    sim = s @ t.T / tau
    target = torch.arange(sim.shape[0], device=sim.device)
    if weights is None:
        return F.cross_entropy(sim, target)
    # Padding columns get a logit far below any real one: exp() of it is exactly 0.
    sim = torch.where(weights[None, :] > 0, sim, torch.full_like(sim, -1e9))
    return weighted_mean(F.cross_entropy(sim, target, reduction="none"), weights)


class DIMMLLearner(TrainingSettingsMixin, FunctionalLearner):
    """Detached unimodal training through a shared head, plus a paired-part contrastive term.

    Args:
        contrastive_weight: ``lambda``, weight of the DUC term.
        tau: temperature of the contrastive term.
        loss_scale: ``"budget"`` (default) or ``"mean"``, for the unimodal CE terms.
        fusion: ``"certainty"`` (default, the paper's certainty-aware logit weighting) or
            ``"mean"`` (the mean of the unimodal logits), the test-time fusion.
        fusion_temperature: ``T`` of the certainty weights.
        optimizer, lr, momentum, weight_decay: see :func:`~mmenv.learners.common.build_optimizer`.
        encoders, encoder_kwargs: per-modality encoders; all must output the same width.
    """

    name = "di-mml"
    model: SharedHeadModel  # built by setup()
    requires_paired = False
    # Every row trains only its own modality, so rows whose other modalities are
    # missing (Batch.masks) need no special handling.
    supports_masks = True
    min_modalities = 2
    max_modalities = None

    def __init__(
        self,
        contrastive_weight: float = 0.5,
        tau: float = 0.5,
        loss_scale: str = "budget",
        fusion: str = "certainty",
        fusion_temperature: float = 1.0,
        optimizer: str = "sgd",
        lr: float = 1e-2,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        encoders: Mapping[str, str] | None = None,
        encoder_kwargs: Mapping[str, dict] | None = None,
    ) -> None:
        if tau <= 0:
            raise LearnerError(f"tau must be > 0, got {tau}")
        if fusion not in FUSIONS:
            raise LearnerError(f"unknown fusion {fusion!r}; valid: {list(FUSIONS)}")
        if fusion_temperature <= 0:
            raise LearnerError(f"fusion_temperature must be > 0, got {fusion_temperature}")
        self.fusion = fusion
        self.fusion_temperature = fusion_temperature
        self.contrastive_weight = contrastive_weight
        self.tau = tau
        TrainingSettings.pick(locals()).apply(self)

    def build_model(self, ctx: LearnerContext) -> SharedHeadModel:
        return build_shared_head_model(ctx, self.encoder_names, self.encoder_kwargs, self.name)[0]

    def unimodal_loss(self, logits: Mapping[str, Tensor], labels: Mapping[str, Tensor],
                      batch: Batch | None = None) -> dict[str, Tensor]:
        return {m: weighted_ce(z, labels[m], None if batch is None else row_weights(batch, m), self.loss_scale,
                               self.share) for m, z in logits.items()}

    def paired_loss(self, feats: Mapping[str, Tensor], batch: Batch, model: SharedHeadModel | None = None) -> Tensor:
        """DUC on the paired core (zero, with a graph, when fewer than two paired rows)."""
        model = self.model if model is None else model
        p = batch.num_paired
        mods = model.modalities
        pw = paired_weights(batch)
        if p < 2:
            return torch.stack([f.sum() * 0.0 for f in feats.values()]).sum()
        y = batch.paired_labels()
        w = model.head.weight.detach()
        paired = {m: feats[m][:p] for m in mods}
        eff = {m: dimension_effectiveness(paired[m].detach(), y, w, pw) for m in mods}
        terms = []
        for m in mods:
            for n in mods:
                if n != m:
                    mask = (eff[n] > eff[m]).to(paired[m].dtype)
                    terms.append(unidirectional_contrastive(paired[m], paired[n], mask, self.tau, pw))
        duc = torch.stack(terms).mean()
        if pw is None:
            return duc
        # A padded run with fewer than two paired rows of its own: zero, as unpadded.
        return torch.where(pw.sum() >= 2, duc, duc * 0.0)

    def loss(self, model: SharedHeadModel, batch: Batch, state: Mapping[str, Any],
             info: StepInfo) -> tuple[Tensor, dict[str, Any]]:
        feats = model.encode(batch.inputs)
        logits = {m: model.head(f) for m, f in feats.items()}
        uni = self.unimodal_loss(logits, batch.labels, batch)
        duc = self.paired_loss(feats, batch, model)
        total = sum(uni.values()) + self.contrastive_weight * duc
        return total, {"logits": {m: z.detach() for m, z in logits.items()},
                       "losses": {"total": total, "contrastive": duc, **uni}}

    @torch.no_grad()
    def predict(self, inputs: Mapping[str, Tensor]) -> Prediction:
        per = {m: self.model.head(self.model.encoders[m](x)) for m, x in inputs.items()}
        mods = self.model.modalities
        if self.fusion == "mean":
            fused = torch.stack([per[m] for m in mods]).mean(dim=0)
        else:
            fused, _ = certainty_weighted_fusion(per, mods, self.fusion_temperature)
        return Prediction(fused, per)
