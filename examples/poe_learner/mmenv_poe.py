"""A late-fusion product-of-experts (PoE) learner, shipped as its own package.

Reading (Hinton, "Training products of experts by minimizing contrastive divergence",
Neural Computation 2002, applied to late fusion of classifiers): every modality m has an
expert, an encoder plus a linear classifier giving ``p_m(y | x_m)``. The fused
prediction is the normalised product of the experts,

    p(y | x) = prod_m p_m(y | x_m) / sum_c prod_m p_m(c | x_m),

so its log-probabilities are ``log_softmax(sum_m log_softmax(z_m))``. A confident expert
dominates the product and an undecided (flat) one barely moves it.

Training, per iteration: each expert's cross-entropy on its modality's whole batch (the
unpaired rows too: that is how the environment's per-modality batch sizes reach the
gradients), plus ``joint_weight`` times the cross-entropy of the product on the paired
core (only there is every modality present). The expert terms use the package's
``loss_scale`` convention (``"budget"``: a modality's batch share scales its gradient).
``joint_weight=0`` trains the experts independently and multiplies them only at test time.

Installed (``pip install -e examples/poe_learner``), the entry point in ``pyproject.toml``
registers it as ``poe``::

    mmenv compare --learners baseline,poe --workers 2
    gym.make("mmenv/DUS-v0", learner="poe", learner_kwargs={"joint_weight": 0.5})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from mmenv.learners import Batch, Learner, LearnerContext, LearnerError, Prediction, StepOutput
from mmenv.learners.common import build_optimizer, check_loss_scale, scaled_ce
from mmenv.models.multimodal import MultimodalModel

__all__ = ["ProductOfExpertsLearner", "product_of_experts"]


def product_of_experts(logits: Mapping[str, Tensor]) -> Tensor:
    """Log-probabilities ``[N, C]`` of the normalised product of the experts' softmaxes."""
    terms = [F.log_softmax(z, dim=1) for z in logits.values()]
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return F.log_softmax(total, dim=1)


class ProductOfExpertsLearner(Learner):
    """One expert per modality, fused by the normalised product of their class distributions.

    Args:
        joint_weight: weight of the product's cross-entropy on the paired core (0: experts
            trained independently).
        loss_scale: ``"budget"`` (default) or ``"mean"``, as for the built-in learners.
        optimizer, lr, momentum, weight_decay: see :func:`mmenv.learners.common.build_optimizer`.
        encoders, encoder_kwargs: per-modality encoder names / keyword arguments
            (:mod:`mmenv.models`); by default each modality's kind picks its encoder.
    """

    name = "poe"
    requires_paired = False      # experts learn from their own rows; the joint term is skipped on an empty core
    min_modalities = 2
    max_modalities = None
    model: MultimodalModel

    def __init__(self, joint_weight: float = 1.0, loss_scale: str = "budget", optimizer: str = "sgd",
                 lr: float = 1e-2, momentum: float = 0.9, weight_decay: float = 1e-4,
                 encoders: Mapping[str, str] | None = None, encoder_kwargs: Mapping[str, dict] | None = None) -> None:
        if not joint_weight >= 0:   # also refuses NaN
            raise LearnerError(f"joint_weight must be >= 0, got {joint_weight!r}")
        self.joint_weight = float(joint_weight)
        self.loss_scale = check_loss_scale(loss_scale)
        self.opt_kwargs: dict[str, Any] = dict(optimizer=optimizer, lr=lr, momentum=momentum,
                                               weight_decay=weight_decay)
        self.encoder_names = encoders
        self.encoder_kwargs = encoder_kwargs

    def setup(self, ctx: LearnerContext) -> None:
        self.check_modalities(ctx.modality_names)
        # budget_share N_B / m: with loss_scale="budget" an expert's CE is its batch's sum over N_B / m
        self.share = ctx.batch_budget / len(ctx.modalities)
        self.model = MultimodalModel(ctx.modalities, ctx.num_classes, self.encoder_names, self.encoder_kwargs,
                                     unimodal_heads=True, fusion_head=False).to(ctx.device)
        self.optimizer = build_optimizer(self.model.parameters(), **self.opt_kwargs)

    def _expert_logits(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {m: self.model.heads[m](f) for m, f in self.model.encode(inputs).items()}

    def train_step(self, batch: Batch) -> StepOutput:
        logits = self._expert_logits(batch.inputs)
        experts = {m: scaled_ce(z, batch.labels[m], self.loss_scale, self.share) for m, z in logits.items()}
        terms = list(experts.values())
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        p = batch.num_paired
        if self.joint_weight > 0 and p > 0:
            # the first p rows of every modality are the same samples: the product is defined there
            joint = F.nll_loss(product_of_experts({m: z[:p] for m, z in logits.items()}), batch.paired_labels())
            total = total + self.joint_weight * joint
        else:   # no joint term (or no paired core): logged as 0 so every step has the same loss keys
            joint = total.new_zeros(())
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        losses = {"total": total.detach(), "poe": joint.detach(), **{m: v.detach() for m, v in experts.items()}}
        return StepOutput({m: z.detach() for m, z in logits.items()}, losses)

    @torch.no_grad()
    def predict(self, inputs: Mapping[str, Tensor]) -> Prediction:
        logits = self._expert_logits(inputs)
        return Prediction(fused=product_of_experts(logits), per_modality=logits)
