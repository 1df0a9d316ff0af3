"""AGM: adaptive gradient modulation (Li et al., ICCV 2023).

The model is the concat-fusion classifier (encoders + one linear head on the
concatenated features) trained with the fused CE. AGM measures how much each modality
contributes to the fused prediction and rescales each encoder's gradient so that the
modalities' contributions stay close:

1. **Mono-modal responses** (Shapley): a modality's response is its Shapley value in the
   fusion head, the average over coalitions ``S`` of the other modalities of
   ``f(S + {m}) - f(S)``, where an absent modality's features are zero-masked; the
   empty coalition's output ``f({})`` is shared equally. ``r_m`` is the mean softmax
   probability of the true class under that response, on the paired core.
2. **Modality gap**: running averages ``rbar_m <- b rbar_m + (1 - b) r_m`` (EMA with
   ``response_momentum``), and ``gap_m = rbar_m - mean_{n != m} rbar_n``.
3. **Modulation**: ``kappa_m = exp(-alpha * gap_m)`` multiplies modality m's encoder
   gradients: a leading modality (positive gap) is slowed, a lagging one sped up; with
   equal responses every ``kappa`` is 1.

Readings taken:

* The paper applies its coefficients to the Shapley components of the fused output, so
  the gradient reaching encoder m is scaled; here the encoder gradients are scaled
  directly (the head's own gradient is left as the plain fused CE's), which is the same
  on the encoders and keeps the forward pass the plain model's.
* The gap uses running averages of the responses (smoother than one batch) and the
  exponential form ``exp(-alpha * gap)``; the exponent is clipped to ``[-10, 10]``.
* Any number of modalities: the Shapley value is computed exactly (``2^(m-1)`` coalitions
  per modality), and the gap compares a modality with the mean of the others.
* Unequal batches: responses on the paired core (the same samples for every modality);
  each modality's logits on its whole batch (for the environment's discrepancy and the
  per-modality evaluation) are its zero-masked response ``f({m}) - f({}) + f({}) / m``,
  which equals the Shapley response for the linear concat head. The fused CE uses the
  paired core plus zero-filled unpaired rows (``fusion_input="zero-fill"``, default).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from ..models.multimodal import MultimodalModel
from .base import Batch, LearnerContext, Prediction, StepOutput
from .baseline import BaselineLearner
from .common import modality_scores


def shapley_responses(model: MultimodalModel, feats: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Exact Shapley values of each modality in ``model.fuse`` (zero-masking), plus ``f({}) / m``.

    ``feats`` must be paired (same samples for every modality). Returns modality ->
    logits ``[B, C]``; the responses sum to the fused logits.
    """
    mods: Sequence[str] = model.modalities
    m, batch = len(mods), next(iter(feats.values())).shape[0]
    cache: dict[frozenset, Tensor] = {}

    def value(coalition: frozenset) -> Tensor:
        if coalition not in cache:
            if coalition:
                cache[coalition] = model.fuse({n: feats[n] for n in mods if n in coalition}, batch=batch)
            else:
                cache[coalition] = _empty_output(model, feats, batch)
        return cache[coalition]

    out = {}
    for mod in mods:
        others = [n for n in mods if n != mod]
        phi = 0.0
        for size in range(m):
            weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
            for subset in itertools.combinations(others, size):
                s = frozenset(subset)
                phi = phi + weight * (value(s | {mod}) - value(s))
        out[mod] = phi + value(frozenset()) / m
    return out


def _empty_output(model: MultimodalModel, feats: Mapping[str, Tensor], batch: int) -> Tensor:
    """The fusion head's output with every modality masked (its bias, broadcast)."""
    ref = next(iter(feats.values()))
    zeros = {n: ref.new_zeros(batch, model.feature_dims[n]) for n in model.modalities}
    return model.fuse(zeros)


def masked_responses(model: MultimodalModel, feats: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Each modality alone (others zero-masked), on its own batch: ``f({m}) - f({}) + f({}) / m``."""
    m = len(model.modalities)
    out = {}
    for mod, f in feats.items():
        alone = model.fuse({mod: f}, batch=f.shape[0])
        empty = _empty_output(model, {mod: f}, f.shape[0])
        out[mod] = alone - empty * (1.0 - 1.0 / m)
    return out


def agm_coefficients(running: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """``(kappa, gap)`` from the running-average responses ``[m]``."""
    m = running.shape[0]
    gap = running - (running.sum() - running) / (m - 1)
    return torch.exp((-alpha * gap).clamp(-10.0, 10.0)), gap


class AGMLearner(BaselineLearner):
    """Adaptive gradient modulation on the concat-fusion model.

    Args:
        alpha: modulation strength in ``exp(-alpha * gap)``.
        response_momentum: EMA factor ``b`` of the running-average responses.
        loss_scale, fusion_input, optimizer, lr, momentum, weight_decay, encoders,
        encoder_kwargs: as :class:`~mmenv.learners.baseline.BaselineLearner`
        (``fusion_input`` defaults to ``"zero-fill"`` here).
    """

    name = "agm"
    requires_paired = False

    def __init__(
        self,
        alpha: float = 1.0,
        response_momentum: float = 0.9,
        loss_scale: str = "budget",
        fusion_input: str = "zero-fill",
        optimizer: str = "sgd",
        lr: float = 1e-2,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        encoders: Mapping[str, str] | None = None,
        encoder_kwargs: Mapping[str, dict] | None = None,
    ) -> None:
        super().__init__(loss_scale=loss_scale, fusion_input=fusion_input, unimodal_weight=0.0,
                         optimizer=optimizer, lr=lr, momentum=momentum, weight_decay=weight_decay,
                         encoders=encoders, encoder_kwargs=encoder_kwargs)
        if not 0.0 <= response_momentum < 1.0:
            raise ValueError(f"response_momentum must be in [0, 1), got {response_momentum}")
        self.alpha = alpha
        self.response_momentum = response_momentum

    def build_model(self, ctx: LearnerContext) -> MultimodalModel:
        return MultimodalModel(ctx.modalities, ctx.num_classes, self.encoder_names, self.encoder_kwargs,
                               unimodal_heads=False)

    def setup(self, ctx: LearnerContext) -> None:
        super().setup(ctx)
        self.running = None  # running-average responses [m], set by the first batch

    @torch.no_grad()
    def update_gap(self, responses: Tensor) -> tuple[Tensor, Tensor]:
        """Fold a batch's responses ``[m]`` into the running averages; return ``(kappa, gap)``."""
        b = self.response_momentum
        self.running = responses.clone() if self.running is None else b * self.running + (1 - b) * responses
        return agm_coefficients(self.running, self.alpha)

    def train_step(self, batch: Batch) -> StepOutput:
        model = self.model
        mods = model.modalities
        feats = model.encode(batch.inputs)
        fused = self.fused_loss(feats, batch)
        self.optimizer.zero_grad(set_to_none=True)
        fused.backward()
        with torch.no_grad():
            detached = {m: f.detach() for m, f in feats.items()}
            logits = masked_responses(model, detached)
            p = batch.num_paired
            if p > 0:
                shap = shapley_responses(model, {m: f[:p] for m, f in detached.items()})
                responses = modality_scores(shap, batch.labels, p, mods)
            else:
                responses = modality_scores(logits, batch.labels, 0, mods)
            kappa, gap = self.update_gap(responses)
            for j, m in enumerate(mods):
                for prm in model.encoders[m].parameters():
                    if prm.grad is not None:
                        prm.grad.mul_(kappa[j])
        self.optimizer.step()
        losses = {"total": fused.detach(), "fused": fused.detach()}
        extras = {**{f"response_{m}": responses[j] for j, m in enumerate(mods)},
                  **{f"gap_{m}": gap[j] for j, m in enumerate(mods)},
                  **{f"coeff_{m}": kappa[j] for j, m in enumerate(mods)}}
        return StepOutput(logits, losses, extras)

    @torch.no_grad()
    def predict(self, inputs: Mapping[str, Tensor]) -> Prediction:
        feats = self.model.encode(inputs)
        return Prediction(self.model.fuse(feats), masked_responses(self.model, feats))

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.running is not None:
            state["running"] = self.running.clone()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = dict(state)
        if "running" in state:
            self.running = state.pop("running").clone()
        super().load_state_dict(state)
