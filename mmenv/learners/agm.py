"""AGM: adaptive gradient modulation (Li et al., ICCV 2023).

The model is the concat-fusion classifier (encoders + one linear head on the
concatenated features) trained with the fused CE. AGM measures how much each modality
contributes to the fused prediction and rescales each encoder's gradient by a
coefficient ``kappa_m``:

1. **Mono-modal responses** (Shapley): a modality's response is its Shapley value in the
   fusion head, the average over coalitions ``S`` of the other modalities of
   ``f(S + {m}) - f(S)``, where an absent modality's features are zero-masked; the
   empty coalition's output ``f({})`` is shared equally (for two modalities this is the
   authors' ``0.5 * (f(av) - f(v) + f(a))``). Scored on the paired core.
2. **Coefficient**, ``coefficient="code"`` (default, the authors' public code): with
   ``s_m`` the mean CE ``-log p_m(y)`` of modality m's response (p clamped at 1e-8) and
   ``S_m`` the running mean of ``s_m`` over all iterations so far (0 before the first),
   the current ratio is ``r_m = exp(mean_{n != m} s_n - s_m)``, its target
   ``eta_m = exp(mean_{n != m} S_n - S_m)``, and ``kappa_m = exp(alpha * min(eta_m - r_m, 10))``;
   ``S`` is updated after ``kappa``. A modality whose lead is larger than its historical
   lead is slowed, one that falls behind its history is sped up.
   ``coefficient="gap"`` (an alternative reading): ``r_m`` = mean true-class probability
   of the response, running averages ``rbar_m <- b rbar_m + (1 - b) r_m`` (EMA
   ``response_momentum``), ``gap_m = rbar_m - mean_{n != m} rbar_n`` and
   ``kappa_m = exp(-alpha * gap_m)`` (exponent clipped to ``[-10, 10]``): it drives the
   responses towards each other and stays bounded; with equal responses every kappa is 1.
3. **Modulation**: ``kappa_m`` multiplies modality m's encoder gradients.

Readings taken:

* The paper applies its coefficients to the Shapley components of the fused output, so
  the gradient reaching encoder m is scaled; here the encoder gradients are scaled
  directly (the head's own gradient is left as the plain fused CE's), which is the same
  on the encoders and keeps the forward pass the plain model's.
* **Coefficient.** The default is the authors' code rule; for two modalities
  ``r_a = exp(s_v - s_a)``, exactly their form, and for more the ratio compares a
  modality with the mean of the others (the scaling of the authors' three-modality
  variant). It stabilises the competition at its historical level rather than closing
  the gap, and ``kappa`` can reach ``e^(10 alpha)``; ``"gap"`` is the bounded,
  gap-closing alternative. The authors modulate every iteration of an epoch window
  except each epoch's first; here every iteration is modulated.
* Any number of modalities: the Shapley value is computed exactly (``2^(m-1)`` coalitions
  per modality), and both rules compare a modality with the mean of the others.
* Unequal batches: responses on the paired core (the same samples for every modality);
  each modality's logits on its whole batch (for the environment's discrepancy and the
  per-modality evaluation) are its zero-masked response ``f({m}) - f({}) + f({}) / m``,
  which equals the Shapley response for the linear concat head. The fused CE uses the
  paired core plus zero-filled unpaired rows (``fusion_input="zero-fill"``, default).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..discrepancy import true_class_probability
from ..models.multimodal import MultimodalModel
from .base import Batch, LearnerContext, LearnerError, Prediction
from .baseline import BaselineLearner
from .common import TrainingSettings
from .functional import StepInfo, paired_mean


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
        phi: Tensor | float = 0.0
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


COEFFICIENTS = ("gap", "code")


def ce_scores(logits: Mapping[str, Tensor], labels: Mapping[str, Tensor], num_paired: int,
              modalities: Sequence[str]) -> Tensor:
    """Mean CE ``-log max(p_m(y), 1e-8)`` per modality (``[m]``), on the paired core when there is one.

    An empty batch (``min_batch=0``) scores 0; its encoder gets no gradient to scale anyway.
    """
    out = []
    for m in modalities:
        z, y = (logits[m][:num_paired], labels[m][:num_paired]) if num_paired > 0 else (logits[m], labels[m])
        if z.shape[0] == 0:
            out.append(z.new_zeros(()))
            continue
        p = true_class_probability(z, y).clamp_min(1e-8)
        out.append(-torch.log(p).mean())
    return torch.stack(out).detach()


def ce_rows(logits: Tensor, labels: Tensor) -> Tensor:
    """Per-row CE ``-log max(p(y), 1e-8)`` (``[B]``), the rows :func:`ce_scores` averages."""
    return -torch.log(true_class_probability(logits, labels).clamp_min(1e-8))


def agm_code_coefficients(scores: Tensor, score_means: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """The authors' code rule: ``(kappa, eta - r)`` from CE scores ``s`` and their running means ``S`` (``[m]``)."""
    m = scores.shape[0]
    ratio = torch.exp((scores.sum() - scores) / (m - 1) - scores)
    target = torch.exp((score_means.sum() - score_means) / (m - 1) - score_means)
    diff = target - ratio
    return torch.exp(alpha * diff.clamp_max(10.0)), diff


def agm_coefficients(running: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """``(kappa, gap)`` from the running-average responses ``[m]``."""
    m = running.shape[0]
    gap = running - (running.sum() - running) / (m - 1)
    return torch.exp((-alpha * gap).clamp(-10.0, 10.0)), gap


class AGMLearner(BaselineLearner):
    """Adaptive gradient modulation on the concat-fusion model.

    Args:
        alpha: modulation strength in ``exp(-alpha * gap)``.
        response_momentum: EMA factor ``b`` of the running-average responses (``"gap"``).
        coefficient: ``"code"`` (default, the authors' public code's rule) or ``"gap"``,
            see the module docstring.
        loss_scale, fusion_input, optimizer, lr, momentum, weight_decay, encoders,
        encoder_kwargs: as :class:`~mmenv.learners.baseline.BaselineLearner`
        (``fusion_input`` defaults to ``"zero-fill"`` here).
    """

    name = "agm"
    requires_paired = False
    unimodal_heads = False

    def __init__(
        self,
        alpha: float = 1.0,
        response_momentum: float = 0.9,
        coefficient: str = "code",
        loss_scale: str = "budget",
        fusion_input: str = "zero-fill",
        optimizer: str = "sgd",
        lr: float = 1e-2,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        encoders: Mapping[str, str] | None = None,
        encoder_kwargs: Mapping[str, dict] | None = None,
    ) -> None:
        super().__init__(fusion_input=fusion_input, unimodal_weight=0.0, **TrainingSettings.pick(locals()).kwargs())
        if not 0.0 <= response_momentum < 1.0:
            raise LearnerError(f"response_momentum must be in [0, 1), got {response_momentum}")
        if coefficient not in COEFFICIENTS:
            raise LearnerError(f"unknown coefficient {coefficient!r}; valid: {list(COEFFICIENTS)}")
        self.alpha = alpha
        self.response_momentum = response_momentum
        self.coefficient = coefficient

    def initial_state(self, ctx: LearnerContext) -> dict[str, Any]:
        m, dev = len(ctx.modalities), ctx.device
        # "gap": running-average responses (set by the first batch); "code": S_m, the mean CE score so far.
        return {"running": torch.zeros(m, device=dev), "running_set": torch.zeros((), device=dev),
                "score_means": torch.zeros(m, device=dev), "score_count": torch.zeros((), device=dev)}

    # Attribute views of the method state (checkpoints and tests read them by name).
    @property
    def running(self) -> Tensor | None:
        if "running_set" not in self.fstate or not bool(self.fstate["running_set"] > 0):
            return None
        return self.fstate["running"]

    @running.setter
    def running(self, value: Tensor | None) -> None:
        flag = self.fstate["running_set"]
        if value is None:
            self.fstate = {**self.fstate, "running_set": torch.zeros_like(flag)}
        else:
            self.fstate = {**self.fstate, "running": value, "running_set": torch.ones_like(flag)}

    @property
    def score_means(self) -> Tensor:
        return self.fstate["score_means"]

    @score_means.setter
    def score_means(self, value: Tensor) -> None:
        self.fstate = {**self.fstate, "score_means": value}

    @property
    def score_count(self) -> int:
        return int(self.fstate["score_count"].item())

    @score_count.setter
    def score_count(self, value: int) -> None:
        self.fstate = {**self.fstate, "score_count": torch.full_like(self.fstate["score_count"], float(value))}

    def updated_state(self, state: Mapping[str, Any], scores: Tensor) -> tuple[Tensor, Tensor, dict[str, Any]]:
        """``(kappa, gap, new state)`` from this batch's scores (CE scores for "code", responses for "gap")."""
        if self.coefficient == "code":
            count = state["score_count"] + 1
            # The authors' rule: kappa from the CE scores against the old running means, then update them.
            kappa, gap = agm_code_coefficients(scores, state["score_means"], self.alpha)
            means = state["score_means"] + (scores - state["score_means"]) / count
            return kappa, gap, {**state, "score_means": means, "score_count": count}
        b = self.response_momentum
        running = torch.where(state["running_set"] > 0, b * state["running"] + (1 - b) * scores, scores)
        kappa, gap = agm_coefficients(running, self.alpha)
        return kappa, gap, {**state, "running": running, "running_set": torch.ones_like(state["running_set"])}

    def loss(self, model: MultimodalModel, batch: Batch, state: Mapping[str, Any],
             info: StepInfo) -> tuple[Tensor, dict[str, Any]]:
        mods = model.modalities
        feats = model.encode(batch.inputs)
        fused = self.fused_loss(feats, batch, model)
        with torch.no_grad():
            detached = {m: f.detach() for m, f in feats.items()}
            logits = masked_responses(model, detached)
            p = batch.num_paired
            shap = shapley_responses(model, {m: f[:p] for m, f in detached.items()}) if p > 0 else logits
            rows = ce_rows if self.coefficient == "code" else true_class_probability
            responses = paired_mean({m: rows(shap[m][:p], batch.labels[m][:p]) for m in mods},
                                    {m: rows(logits[m], batch.labels[m]) for m in mods}, batch, mods)
            kappa, gap, state = self.updated_state(state, responses)
        extras = {**{f"response_{m}": responses[j] for j, m in enumerate(mods)},
                  **{f"gap_{m}": gap[j] for j, m in enumerate(mods)},
                  **{f"coeff_{m}": kappa[j] for j, m in enumerate(mods)}}
        return fused, {"logits": logits, "losses": {"total": fused, "fused": fused}, "extras": extras,
                       "state": state, "kappa": kappa}

    def modulate(self, model: MultimodalModel, grads: dict[str, Tensor], batch: Batch, aux: Mapping[str, Any],
                 state: Mapping[str, Any], info: StepInfo,
                 noise: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], Mapping[str, Any]]:
        kappa = aux["kappa"]
        grads = dict(grads)
        for j, m in enumerate(model.modalities):
            prefix = f"encoders.{m}."
            for name in grads:
                if name.startswith(prefix):
                    grads[name] = grads[name] * kappa[j]
        return grads, state

    @torch.no_grad()
    def predict(self, inputs: Mapping[str, Tensor]) -> Prediction:
        feats = self.model.encode(inputs)
        return Prediction(self.model.fuse(feats), masked_responses(self.model, feats))

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.running is not None:
            state["running"] = self.running.clone()
        state["score_means"] = self.score_means.clone()
        state["score_count"] = self.score_count
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = dict(state)
        if "running" in state:
            self.running = state.pop("running").clone()
        if "score_means" in state:
            self.score_means = state.pop("score_means").clone()
        if "score_count" in state:
            self.score_count = int(state.pop("score_count"))
        super().load_state_dict(state)
