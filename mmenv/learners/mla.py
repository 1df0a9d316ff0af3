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

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..models.multimodal import SharedHeadModel
from .base import Batch, LearnerContext, Prediction
from .common import TrainingSettings, TrainingSettingsMixin, build_shared_head_model, entropy_weighted_fusion
from .functional import FunctionalLearner, StepInfo, row_weights, weighted_ce, weighted_mean


def projector_update(P: Tensor, r: Tensor, alpha: float) -> Tensor:
    """One RLS update of ``P`` (``d x d``) with the mean head input ``r`` (``[1, d]``), Frobenius-normalised."""
    k = P @ r.T  # [d, 1]
    P = P - (k @ k.T) / (alpha + r @ k)
    return P / torch.linalg.matrix_norm(P, ord="fro")


def projector_alpha(batch_idx: int, num_batches: int) -> float:
    return 0.1 ** (batch_idx / num_batches + 1.0)


class GradientProjector:
    """The shared head's gradient projector ``P`` (``d x d``), Frobenius-normalised."""

    def __init__(self, dim: int, device: torch.device) -> None:
        self.P = torch.eye(dim, device=device)

    @torch.no_grad()
    def update(self, head_input: Tensor, batch_idx: int, num_batches: int) -> None:
        """One RLS update with the mean head input of a batch (``[B, d]``)."""
        self.P = projector_update(self.P, head_input.mean(dim=0, keepdim=True), projector_alpha(batch_idx, num_batches))

    @torch.no_grad()
    def project(self, weight: Tensor) -> None:
        """``grad_W <- grad_W P^T`` in place."""
        if weight.grad is not None:
            weight.grad.copy_(weight.grad @ self.P.T)


class MLALearner(TrainingSettingsMixin, FunctionalLearner):
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

    def build_model(self, ctx: LearnerContext) -> SharedHeadModel:
        return build_shared_head_model(ctx, self.encoder_names, self.encoder_kwargs, self.name)[0]

    def setup(self, ctx: LearnerContext) -> None:
        super().setup(ctx)
        self.projector = GradientProjector(self.model.head.in_features, ctx.device)
        self.steps_taken = 0  # optimizer steps since setup (one per modality per iteration)

    # The projector's matrix is the method state the functional form carries.
    @property
    def fstate(self) -> dict[str, Any]:
        projector = self.__dict__.get("projector")
        return {} if projector is None else {"P": projector.P}

    @fstate.setter
    def fstate(self, value: Mapping[str, Any]) -> None:
        if "P" in value and "projector" in self.__dict__:
            self.projector.P = value["P"]

    def num_phases(self) -> int:
        return len(self.ctx.modalities)

    def phase_params(self, phase: int) -> tuple[str, ...] | None:
        return (f"encoders.{self.ctx.modality_names[phase]}.", "head.")

    def loss(self, model: SharedHeadModel, batch: Batch, state: Mapping[str, Any],
             info: StepInfo) -> tuple[Tensor, dict[str, Any]]:
        m = model.modalities[info.phase]
        feats = model.encoders[m](batch.inputs[m])
        out = model.head(feats)
        loss = weighted_ce(out, batch.labels[m], row_weights(batch, m), self.loss_scale, self.share)
        return loss, {"logits": {m: out.detach()}, "losses": {"total": loss, m: loss}, "feats": feats.detach()}

    def modulate(self, model: SharedHeadModel, grads: dict[str, Tensor], batch: Batch, aux: Mapping[str, Any],
                 state: Mapping[str, Any], info: StepInfo,
                 noise: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], Mapping[str, Any]]:
        # The very first optimizer step of training is neither projected nor folded into P.
        first = info.iteration == 0 and info.phase == 0
        if not self.projection or first or "head.weight" not in grads:
            return grads, state
        m = model.modalities[info.phase]
        feats, w = aux["feats"], row_weights(batch, m)
        if feats.shape[0] == 0:
            return grads, state
        alpha = projector_alpha(info.iteration % info.iters_per_epoch, info.iters_per_epoch)
        P_old = state["P"]
        P = projector_update(P_old, weighted_mean(feats, w).unsqueeze(0), alpha)
        g = grads["head.weight"]
        projected = g @ P.T
        if w is not None:  # a padded run without rows of this modality keeps P and its gradient
            has_rows = w.sum() > 0
            P = torch.where(has_rows, P, P_old)
            projected = torch.where(has_rows, projected, g)
        return {**grads, "head.weight": projected}, {**state, "P": P}

    def count_iterations(self, n: int) -> None:
        self.steps_taken += n * self.num_phases()

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
