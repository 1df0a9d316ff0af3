"""Baseline (joint training): per-modality encoders, concat fusion head, unimodal heads.

Loss per iteration = CE(fused) + sum_m CE(unimodal head m). The fused CE uses the
paired core of the batch (``fusion_input="paired"``), or also every modality's unpaired
rows with the missing modalities' features zero-filled (``"zero-fill"``, as Data
Remixing masks modalities). Rows marked in ``Batch.masks`` (their other modalities are
missing, e.g. Data Remixing's single-modality batches) always enter the fused CE with the
other modalities zero-filled. Each unimodal CE uses its modality's whole batch. The
``loss_scale`` (``"mean"`` or ``"budget"``, see :func:`mmenv.learners.common.scaled_ce`)
decides whether a modality's batch share scales its gradient magnitude.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..models.multimodal import MultimodalModel
from .base import Batch, LearnerContext, LearnerError, Prediction
from .common import TrainingSettings, TrainingSettingsMixin, scaled_ce, weighted_scaled_ce
from .functional import FunctionalLearner, StepInfo, paired_weights, row_weights, unpaired_rows, weighted_ce

FUSION_INPUTS = ("paired", "zero-fill")


class BaselineLearner(TrainingSettingsMixin, FunctionalLearner):
    """Joint training with a concat fusion head plus unimodal losses.

    Args:
        loss_scale: ``"budget"`` (default, chosen by measurement: docs/synthetic.md) or ``"mean"``.
        fusion_input: ``"paired"`` (default) or ``"zero-fill"``.
        unimodal_weight: weight of each unimodal CE term.
        optimizer, lr, momentum, weight_decay: see :func:`build_optimizer`.
        encoders, encoder_kwargs: per-modality encoder names/kwargs (see :mod:`mmenv.models`).
    """

    name = "baseline"
    model: MultimodalModel  # built by setup()
    #: Subclasses whose unimodal outputs come from elsewhere (fusion-weight slices, prototypes)
    #: set this to False and get the same model without per-modality heads.
    unimodal_heads: bool = True
    supports_masks = True

    def __init__(
        self,
        loss_scale: str = "budget",
        fusion_input: str = "paired",
        unimodal_weight: float = 1.0,
        optimizer: str = "sgd",
        lr: float = 1e-2,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        encoders: Mapping[str, str] | None = None,
        encoder_kwargs: Mapping[str, dict] | None = None,
    ) -> None:
        TrainingSettings.pick(locals()).apply(self)
        if fusion_input not in FUSION_INPUTS:
            raise LearnerError(f"unknown fusion_input {fusion_input!r}; valid: {list(FUSION_INPUTS)}")
        self.fusion_input = fusion_input
        self.unimodal_weight = unimodal_weight

    def build_model(self, ctx: LearnerContext) -> MultimodalModel:
        return MultimodalModel(ctx.modalities, ctx.num_classes, self.encoder_names, self.encoder_kwargs,
                               unimodal_heads=self.unimodal_heads)

    def fused_loss(self, feats: dict[str, Tensor], batch: Batch, model: MultimodalModel | None = None) -> Tensor:
        """Fused CE on the paired core plus zero-filled unpaired rows.

        Unpaired rows enter with ``fusion_input="zero-fill"`` (all of them) or when
        ``batch.masks`` marks them (only those: a row-weighted CE keeps this free of host
        syncs). Masks on paired-core rows are ignored: those rows have every modality.
        A padded batch (:mod:`mmenv.learners.functional`) weights out its padding rows.
        """
        model = self.model if model is None else model
        p = batch.num_paired
        pw = paired_weights(batch)
        padded = pw is not None
        rows_feats = [torch.cat([feats[m][:p] for m in model.modalities], dim=1)]
        rows_labels = [batch.paired_labels()]
        masks = batch.masks
        weighted = padded or (masks is not None and self.fusion_input != "zero-fill")
        assert model.fusion is not None  # the Baseline always builds its fusion head
        rows_weights = [(pw if padded else rows_feats[0].new_ones(p))] if weighted else []
        if self.fusion_input == "zero-fill" or masks is not None:
            for m in model.modalities:
                rows, w = unpaired_rows(batch, m)
                extra = feats[m][rows]
                if extra.shape[0] == 0:
                    continue
                parts = [extra if k == m else extra.new_zeros(extra.shape[0], model.feature_dims[k])
                         for k in model.modalities]
                rows_feats.append(torch.cat(parts, dim=1))
                rows_labels.append(batch.labels[m][rows])
                if weighted:
                    mask = None if masks is None or self.fusion_input == "zero-fill" else masks.get(m)
                    if w is None:
                        w = extra.new_zeros(extra.shape[0]) if mask is None else mask[rows].to(extra.dtype)
                    elif masks is not None and self.fusion_input != "zero-fill":
                        w = w * (extra.new_zeros(extra.shape[0]) if mask is None else mask[rows].to(extra.dtype))
                    rows_weights.append(w)
        # One part (the paired default): no concatenation, which would copy and add a graph node.
        feats_all = rows_feats[0] if len(rows_feats) == 1 else torch.cat(rows_feats)
        labels_all = rows_labels[0] if len(rows_labels) == 1 else torch.cat(rows_labels)
        fused_logits = model.fusion(feats_all)
        if weighted:
            return weighted_scaled_ce(fused_logits, labels_all, torch.cat([w for w in rows_weights if w is not None]), self.loss_scale, self.share)
        return scaled_ce(fused_logits, labels_all, self.loss_scale, self.share)

    def loss(self, model: MultimodalModel, batch: Batch, state: Mapping[str, Any],
             info: StepInfo) -> tuple[Tensor, dict[str, Any]]:
        feats = model.encode(batch.inputs)
        logits = {m: model.heads[m](f) for m, f in feats.items()}
        uni = {m: weighted_ce(logits[m], batch.labels[m], row_weights(batch, m), self.loss_scale, self.share)
               for m in logits}
        fused = self.fused_loss(feats, batch, model)
        # Sum from the first term (not 0) and skip a weight of 1: the same value with two
        # fewer autograd nodes per iteration (docs/performance.md).
        terms = list(uni.values())
        uni_sum = terms[0]
        for term in terms[1:]:
            uni_sum = uni_sum + term
        total = fused + (uni_sum if self.unimodal_weight == 1.0 else self.unimodal_weight * uni_sum)
        return total, {"logits": {m: z.detach() for m, z in logits.items()},
                       "losses": {"total": total, "fused": fused, **uni}}

    @torch.no_grad()
    def predict(self, inputs: Mapping[str, Tensor]) -> Prediction:
        feats = self.model.encode(inputs)
        return Prediction(self.model.fuse(feats), {m: self.model.heads[m](f) for m, f in feats.items()})
