"""PMR: prototypical modal rebalance (Fan et al., CVPR 2023).

The model is the concat-fusion classifier (encoders + linear head on the concatenated
features). Each modality also keeps one *prototype* per class, the class mean of its
features, and a prototype classifier: ``p_m(k | x) = softmax_k(-||f_m(x) - c^m_k||_2)``.
The loss of one iteration is

    L = CE(fused) + sum_m beta_m * PCE_m  -  mu * [epoch < entropy_epochs] * sum_m dom_m * H(p_m)

* ``PCE_m`` is the prototypical cross-entropy ``-log p_m(y | x)`` over modality m's whole
  batch (paired and unpaired rows): it pulls each feature towards its class prototype
  and so trains a slow encoder without going through the fused head the fast modality
  dominates.
* ``beta_m = alpha * relu(s_max / s_m - 1)`` with ``s_m`` the mean prototype probability
  of the true class (the paper's imbalance ratio ``rho``): only modalities that lag
  behind the leader are accelerated, the more the larger the imbalance.
* The prototype entropy regularisation ``-mu H(p_dom)`` is applied to the dominant
  modality (``dom_m = 1`` for the highest ``s_m``) in the first ``entropy_epochs`` epochs:
  maximising the entropy of its prototype distribution slows its early domination.

Readings taken:

* **Prototypes.** The paper recomputes the class centroids on the training set at the
  start of every epoch. A learner here sees only its batches, so it accumulates the
  (detached) features of every modality's training rows during an epoch and at its end
  sets ``c = class mean`` (or an EMA with ``prototype_momentum`` of the old prototypes
  and the new class means). Before the first epoch ends, the running class means of the
  features seen so far (including the current batch) are used. A class that has not
  been seen keeps its previous prototype (zeros at the start).
* **Distance.** Euclidean (not squared), as in the paper's equations.
* **Coefficients, more than two modalities.** ``beta_m`` is defined against the leader
  (``s_max``), which reduces to ``alpha (rho - 1)`` for the weaker of two modalities;
  any number of modalities works. The authors' public code instead gives the lagging
  modality the constant weight ``alpha`` (and the leader 0): ``coefficient="constant"``.
  The ratio-dependent form (default, ``"ratio"``) grows with the imbalance and vanishes
  when the modalities are level.
* **Scores** are per-sample means on the paired core (see :func:`~mmenv.learners.common.modality_scores`).
* The fused CE uses the paired core plus zero-filled unpaired rows (``fusion_input``, as
  in the baseline); evaluation reports the fused head and, per modality, the prototype
  classifier's logits ``-distance``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..discrepancy import true_class_probability
from ..models.multimodal import MultimodalModel
from .base import Batch, LearnerContext, LearnerError, Prediction
from .baseline import BaselineLearner
from .common import TrainingSettings, prediction_entropy
from .functional import StepInfo, paired_mean, row_weights, weighted_ce, weighted_mean

COEFFICIENTS = ("ratio", "constant")


def pce_weights(scores: Tensor, alpha: float, form: str = "ratio") -> Tensor:
    """Weights ``beta_m`` of the prototypical CE from the scores ``s_m`` (``[m]``); the leader gets 0."""
    lagging = scores < scores.max()
    if form == "constant":
        return torch.where(lagging, torch.full_like(scores, alpha), torch.zeros_like(scores))
    return alpha * torch.relu(scores.max() / scores.clamp_min(1e-12) - 1.0)


def prototype_logits(features: Tensor, prototypes: Tensor) -> Tensor:
    """``-||f - c_k||_2`` for every class k: ``[B, d] x [C, d] -> [B, C]``.

    A small epsilon under the square root keeps the gradient finite when a feature sits
    exactly on its prototype (a class seen once so far).
    """
    diff = features[:, None, :] - prototypes[None, :, :]
    return -(diff.pow(2).sum(dim=-1) + 1e-8).sqrt()


class PMRLearner(BaselineLearner):
    """Prototypical modal rebalance on the concat-fusion model.

    Args:
        alpha: strength of the prototypical CE for lagging modalities (``beta_m``).
        mu: weight of the prototype entropy regularisation.
        entropy_epochs: the regularisation applies in epochs ``< entropy_epochs``.
        coefficient: ``"ratio"`` (default) or ``"constant"``, see the module docstring.
        prototype_momentum: 0 (default) replaces the prototypes by the epoch's class
            means; ``b > 0`` keeps ``b * old + (1 - b) * new``.
        loss_scale, fusion_input, optimizer, lr, momentum, weight_decay, encoders,
        encoder_kwargs: as :class:`~mmenv.learners.baseline.BaselineLearner`
        (``fusion_input`` defaults to ``"zero-fill"`` here). ``loss_scale`` also
        scales the prototypical CE.
    """

    name = "pmr"
    requires_paired = False
    unimodal_heads = False

    def __init__(
        self,
        alpha: float = 1.0,
        mu: float = 0.01,
        entropy_epochs: int = 1,
        coefficient: str = "ratio",
        prototype_momentum: float = 0.0,
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
        if not 0.0 <= prototype_momentum < 1.0:
            raise LearnerError(f"prototype_momentum must be in [0, 1), got {prototype_momentum}")
        if coefficient not in COEFFICIENTS:
            raise LearnerError(f"unknown coefficient {coefficient!r}; valid: {list(COEFFICIENTS)}")
        self.coefficient = coefficient
        self.alpha = alpha
        self.mu = mu
        self.entropy_epochs = entropy_epochs
        self.prototype_momentum = prototype_momentum

    def initial_state(self, ctx: LearnerContext) -> dict[str, Any]:
        c, dev = ctx.num_classes, ctx.device
        dims = self.build_dims(ctx)
        return {"prototypes": {m: torch.zeros(c, d, device=dev) for m, d in dims.items()},
                "feature_sums": {m: torch.zeros(c, d, device=dev) for m, d in dims.items()},
                "class_counts": {m: torch.zeros(c, device=dev) for m in dims},
                "epochs_done": torch.zeros((), device=dev)}

    def build_dims(self, ctx: LearnerContext) -> dict[str, int]:
        return dict(self.model.feature_dims)

    # Attribute views of the method state (checkpoints and tests read them by name).
    @property
    def prototypes(self) -> dict[str, Tensor]:
        return self.fstate["prototypes"]

    @prototypes.setter
    def prototypes(self, value: dict[str, Tensor]) -> None:
        self.fstate = {**self.fstate, "prototypes": value}

    @property
    def feature_sums(self) -> dict[str, Tensor]:
        return self.fstate["feature_sums"]

    @feature_sums.setter
    def feature_sums(self, value: dict[str, Tensor]) -> None:
        self.fstate = {**self.fstate, "feature_sums": value}

    @property
    def class_counts(self) -> dict[str, Tensor]:
        return self.fstate["class_counts"]

    @class_counts.setter
    def class_counts(self, value: dict[str, Tensor]) -> None:
        self.fstate = {**self.fstate, "class_counts": value}

    @property
    def epochs_done(self) -> int:
        return int(self.fstate["epochs_done"].item())

    @epochs_done.setter
    def epochs_done(self, value: int) -> None:
        ref = self.fstate["epochs_done"]
        self.fstate = {**self.fstate, "epochs_done": torch.full_like(ref, float(value))}

    # ---------------------------------------------------------------- prototypes
    @staticmethod
    def accumulated(state: Mapping[str, Any], feats: Mapping[str, Tensor], labels: Mapping[str, Tensor],
                    weights: Mapping[str, Tensor | None]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """The per-class sums and counts of the running epoch with a batch's detached features added."""
        sums, counts = dict(state["feature_sums"]), dict(state["class_counts"])
        for m, f in feats.items():
            f = f.detach()
            w = weights[m]
            ones = torch.ones_like(labels[m], dtype=f.dtype) if w is None else w.to(f.dtype)
            sums[m] = sums[m].index_add(0, labels[m], f if w is None else f * ones[:, None])
            counts[m] = counts[m].index_add(0, labels[m], ones)
        return sums, counts

    @staticmethod
    def epoch_means(sums: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
        """Class means of the features accumulated this epoch, and which classes were seen."""
        seen = counts > 0
        return sums / counts.clamp_min(1.0)[:, None], seen

    def prototypes_of(self, state: Mapping[str, Any], m: str) -> Tensor:
        """The prototypes the loss uses now (running class means during the first epoch)."""
        means, seen = self.epoch_means(state["feature_sums"][m], state["class_counts"][m])
        first = torch.where(seen[:, None], means, state["prototypes"][m])
        return torch.where(state["epochs_done"] > 0, state["prototypes"][m], first)

    def current_prototypes(self, m: str) -> Tensor:
        return self.prototypes_of(self.fstate, m)

    def epoch_end(self, state: Mapping[str, Any], epoch: int) -> Mapping[str, Any]:
        b = self.prototype_momentum
        protos, sums, counts = {}, {}, {}
        for m, old in state["prototypes"].items():
            means, seen = self.epoch_means(state["feature_sums"][m], state["class_counts"][m])
            new = means if b == 0.0 else torch.where(state["epochs_done"] > 0, b * old + (1 - b) * means, means)
            protos[m] = torch.where(seen[:, None], new, old)
            sums[m] = torch.zeros_like(state["feature_sums"][m])
            counts[m] = torch.zeros_like(state["class_counts"][m])
        return {"prototypes": protos, "feature_sums": sums, "class_counts": counts,
                "epochs_done": state["epochs_done"] + 1}

    # ---------------------------------------------------------------- training
    def loss(self, model: MultimodalModel, batch: Batch, state: Mapping[str, Any],
             info: StepInfo) -> tuple[Tensor, dict[str, Any]]:
        mods = model.modalities
        feats = model.encode(batch.inputs)
        weights = {m: row_weights(batch, m) for m in mods}
        sums, counts = self.accumulated(state, feats, batch.labels, weights)
        state = {**state, "feature_sums": sums, "class_counts": counts}
        proto_logits = {m: prototype_logits(feats[m], self.prototypes_of(state, m)) for m in mods}
        p = batch.num_paired
        with torch.no_grad():
            probs = {m: true_class_probability(proto_logits[m].detach(), batch.labels[m]) for m in mods}
            scores = paired_mean({m: probs[m][:p] for m in mods}, probs, batch, mods)
        beta = pce_weights(scores, self.alpha, self.coefficient)
        dominant = (scores == scores.max()).float()

        fused = self.fused_loss(feats, batch, model)

        pce = {m: weighted_ce(proto_logits[m], batch.labels[m], weights[m], self.loss_scale, self.share)
               for m in mods}
        total = fused + sum(beta[j] * pce[m] for j, m in enumerate(mods))
        if info.epoch < self.entropy_epochs and self.mu > 0:
            ent = torch.stack([weighted_mean(prediction_entropy(proto_logits[m]), weights[m]) for m in mods])
            total = total - self.mu * (dominant * ent).sum()
        extras = {**{f"score_{m}": scores[j] for j, m in enumerate(mods)},
                  **{f"beta_{m}": beta[j] for j, m in enumerate(mods)}}
        return total, {"logits": {m: z.detach() for m, z in proto_logits.items()},
                       "losses": {"total": total, "fused": fused, **pce}, "extras": extras, "state": state}

    @torch.no_grad()
    def predict(self, inputs: Mapping[str, Tensor]) -> Prediction:
        feats = self.model.encode(inputs)
        per = {m: prototype_logits(f, self.current_prototypes(m)) for m, f in feats.items()}
        return Prediction(self.model.fuse(feats), per)

    def state_dict(self) -> dict[str, Any]:
        # The running epoch sums are part of the state: a resume mid-epoch must not lose them.
        return {**super().state_dict(), "prototypes": {m: p.clone() for m, p in self.prototypes.items()},
                "feature_sums": {m: p.clone() for m, p in self.feature_sums.items()},
                "class_counts": {m: p.clone() for m, p in self.class_counts.items()},
                "epochs_done": self.epochs_done}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = dict(state)
        if "prototypes" in state:
            self.prototypes = {m: p.clone() for m, p in state.pop("prototypes").items()}
            self.epochs_done = max(self.epochs_done, 1)
        for key in ("feature_sums", "class_counts"):
            if key in state:
                setattr(self, key, {m: p.clone() for m, p in state.pop(key).items()})
        if "epochs_done" in state:
            self.epochs_done = int(state.pop("epochs_done"))
        super().load_state_dict(state)
