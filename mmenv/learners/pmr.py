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

from typing import Any, Mapping

import torch
from torch import Tensor

from .base import Batch, LearnerContext, LearnerError, Prediction, StepOutput
from .baseline import BaselineLearner
from .common import TrainingSettings, modality_scores, prediction_entropy, scaled_ce


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

    def setup(self, ctx: LearnerContext) -> None:
        super().setup(ctx)
        c, dev = ctx.num_classes, ctx.device
        dims = self.model.feature_dims
        self.prototypes = {m: torch.zeros(c, d, device=dev) for m, d in dims.items()}
        self.feature_sums = {m: torch.zeros(c, d, device=dev) for m, d in dims.items()}
        self.class_counts = {m: torch.zeros(c, device=dev) for m in dims}
        self.epochs_done = 0

    # ---------------------------------------------------------------- prototypes
    @torch.no_grad()
    def accumulate(self, feats: Mapping[str, Tensor], labels: Mapping[str, Tensor]) -> None:
        """Add a batch's detached features to the per-class sums of the running epoch."""
        for m, f in feats.items():
            self.feature_sums[m].index_add_(0, labels[m], f.detach())
            self.class_counts[m].index_add_(0, labels[m], torch.ones_like(labels[m], dtype=f.dtype))

    def epoch_means(self, m: str) -> tuple[Tensor, Tensor]:
        """Class means of the features accumulated this epoch, and which classes were seen."""
        counts = self.class_counts[m]
        seen = counts > 0
        means = self.feature_sums[m] / counts.clamp_min(1.0)[:, None]
        return means, seen

    def current_prototypes(self, m: str) -> Tensor:
        """The prototypes the loss uses now (running class means during the first epoch)."""
        if self.epochs_done > 0:
            return self.prototypes[m]
        means, seen = self.epoch_means(m)
        return torch.where(seen[:, None], means, self.prototypes[m])

    def on_epoch_end(self, epoch: int) -> None:
        b = self.prototype_momentum
        for m in self.prototypes:
            means, seen = self.epoch_means(m)
            new = means if (b == 0.0 or self.epochs_done == 0) else b * self.prototypes[m] + (1 - b) * means
            self.prototypes[m] = torch.where(seen[:, None], new, self.prototypes[m])
            self.feature_sums[m].zero_()
            self.class_counts[m].zero_()
        self.epochs_done += 1

    # ---------------------------------------------------------------- training
    def train_step(self, batch: Batch) -> StepOutput:
        model = self.model
        mods = model.modalities
        feats = model.encode(batch.inputs)
        self.accumulate(feats, batch.labels)
        proto_logits = {m: prototype_logits(feats[m], self.current_prototypes(m)) for m in mods}
        scores = modality_scores({m: z.detach() for m, z in proto_logits.items()}, batch.labels,
                                 batch.num_paired, mods)
        beta = pce_weights(scores, self.alpha, self.coefficient)
        dominant = (scores == scores.max()).float()

        fused = self.fused_loss(feats, batch)

        pce = {m: scaled_ce(proto_logits[m], batch.labels[m], self.loss_scale, self.share) for m in mods}
        total = fused + sum(beta[j] * pce[m] for j, m in enumerate(mods))
        if batch.epoch < self.entropy_epochs and self.mu > 0:
            ent = torch.stack([prediction_entropy(proto_logits[m]).mean() if proto_logits[m].shape[0] else
                               proto_logits[m].sum() * 0.0 for m in mods])
            total = total - self.mu * (dominant * ent).sum()
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        losses = {"total": total.detach(), "fused": fused.detach(), **{m: pce[m].detach() for m in mods}}
        extras = {**{f"score_{m}": scores[j] for j, m in enumerate(mods)},
                  **{f"beta_{m}": beta[j] for j, m in enumerate(mods)}}
        return StepOutput({m: z.detach() for m, z in proto_logits.items()}, losses, extras)

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
