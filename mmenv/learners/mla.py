"""MLA: multimodal learning with alternating unimodal adaptation (Zhang et al., CVPR 2024).

One classifier head is shared by all modalities. Every iteration trains the modalities
one after another: for modality m, the shared head's CE on m's features over m's whole
batch is back-propagated and the optimizer steps, before the next modality is encoded.
So a modality never competes with another inside one loss, and MLA learns from unpaired
batches as well as from paired ones (``requires_paired = False``).

To keep the shared head from forgetting what earlier modalities taught it, its weight
gradient is projected before every step (the authors' gradient-projection plugin,
OWM / recursive-least-squares style). With ``P`` (``d x d``) starting at the identity:

    alpha = 0.1 ** (batch_idx / iters_per_epoch + 1)
    r = mean over the batch of the head input        # [1, d]
    k = P r^T
    P <- P - k k^T / (alpha + r k)
    P <- P / ||P||_F
    grad_W <- grad_W P^T

At test time the unimodal outputs are fused per sample with weights
``softmax_m(-H(softmax(out_m)))`` (lower prediction entropy, more weight).

Readings taken:

* ``P`` is updated with the current modality's batch and then applied to that same
  modality's gradient, in this order, as in the authors' plugin, and carried across
  iterations, epochs and modalities (one projector for the shared head, reset only by
  ``setup``). As there, the very first optimizer step of training (nothing learnt yet to
  protect) is neither projected nor folded into ``P``.
* The denominator is the RLS scalar ``alpha + r k``; the authors' public plugin writes
  ``alpha + k r`` (an outer product, so an element-wise division), which we read as a slip.
* Only the head's weight is projected; its bias and the encoders get plain gradients.
* The fused output is the weighted sum of the unimodal *logits* (the authors' code), and
  the weights are per sample: the authors' evaluation computes one entropy per modality
  over a whole evaluation batch (a softmax over all its entries), which makes a sample's
  prediction depend on the batch it is evaluated in; the per-sample form does not.
* The modality order within an iteration is the dataset's modality order.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from ..models.multimodal import SharedHeadModel
from .base import Batch, Learner, LearnerContext, Prediction, StepOutput
from .common import (TrainingSettings, TrainingSettingsMixin, build_optimizer, build_shared_head_model,
                     entropy_weighted_fusion, scaled_ce)


class GradientProjector:
    """The shared head's gradient projector ``P`` (``d x d``), Frobenius-normalised."""

    def __init__(self, dim: int, device: torch.device) -> None:
        self.P = torch.eye(dim, device=device)

    @torch.no_grad()
    def update(self, head_input: Tensor, batch_idx: int, num_batches: int) -> None:
        """One RLS update with the mean head input of a batch (``[B, d]``)."""
        alpha = 0.1 ** (batch_idx / num_batches + 1.0)
        r = head_input.mean(dim=0, keepdim=True)  # [1, d]
        k = self.P @ r.T  # [d, 1]
        self.P = self.P - (k @ k.T) / (alpha + r @ k)
        self.P = self.P / torch.linalg.matrix_norm(self.P, ord="fro")

    @torch.no_grad()
    def project(self, weight: Tensor) -> None:
        """``grad_W <- grad_W P^T`` in place."""
        if weight.grad is not None:
            weight.grad.copy_(weight.grad @ self.P.T)


class MLALearner(TrainingSettingsMixin, Learner):
    """Alternating unimodal training through one shared head, with gradient projection.

    Args:
        loss_scale: ``"budget"`` (default) or ``"mean"`` (see :func:`~mmenv.learners.common.scaled_ce`).
        projection: apply the gradient projector (``False`` gives plain alternating training).
        optimizer, lr, momentum, weight_decay: see :func:`~mmenv.learners.common.build_optimizer`.
        encoders, encoder_kwargs: per-modality encoders; all must output the same width.
    """

    name = "mla"
    model: SharedHeadModel  # built by setup()
    requires_paired = False
    # Every row trains only its own modality, so rows whose other modalities are
    # missing (Batch.masks) need no special handling.
    supports_masks = True
    min_modalities = 2
    max_modalities = None

    def __init__(
        self,
        loss_scale: str = "budget",
        projection: bool = True,
        optimizer: str = "sgd",
        lr: float = 1e-2,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        encoders: Mapping[str, str] | None = None,
        encoder_kwargs: Mapping[str, dict] | None = None,
    ) -> None:
        TrainingSettings.pick(locals()).apply(self)
        self.projection = projection

    def setup(self, ctx: LearnerContext) -> None:
        self.check_modalities(ctx.modality_names)
        self.ctx = ctx
        self.share = ctx.batch_budget / len(ctx.modalities)
        self.model, dim = build_shared_head_model(ctx, self.encoder_names, self.encoder_kwargs, self.name)
        self.optimizer = build_optimizer(self.model.parameters(), **self.opt_kwargs)
        self.projector = GradientProjector(dim, ctx.device)
        self.steps_taken = 0  # optimizer steps since setup (one per modality per iteration)

    def train_step(self, batch: Batch) -> StepOutput:
        model = self.model
        batch_idx = batch.iteration % self.ctx.iters_per_epoch
        logits, losses = {}, {}
        for m in model.modalities:
            feats = model.encoders[m](batch.inputs[m])
            out = model.head(feats)
            loss = scaled_ce(out, batch.labels[m], self.loss_scale, self.share)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.projection and self.steps_taken > 0 and feats.shape[0] > 0:
                self.projector.update(feats.detach(), batch_idx, self.ctx.iters_per_epoch)
                self.projector.project(model.head.weight)
            self.optimizer.step()
            self.steps_taken += 1
            logits[m], losses[m] = out.detach(), loss.detach()
        total = torch.stack(list(losses.values())).sum()
        return StepOutput(logits, {"total": total, **losses})

    def unimodal_logits(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {m: self.model.head(self.model.encoders[m](x)) for m, x in inputs.items()}

    @torch.no_grad()
    def predict(self, inputs: Mapping[str, Tensor]) -> Prediction:
        per = self.unimodal_logits(inputs)
        fused, _ = entropy_weighted_fusion(per, self.model.modalities)
        return Prediction(fused, per)

    def state_dict(self) -> dict[str, Any]:
        # steps_taken decides whether the next step is projected: part of the resume state.
        return {**super().state_dict(), "projector": self.projector.P.clone(), "steps_taken": self.steps_taken}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = dict(state)
        if "projector" in state:
            self.projector.P = state.pop("projector").clone()
        if "steps_taken" in state:
            self.steps_taken = int(state.pop("steps_taken"))
        super().load_state_dict(state)
