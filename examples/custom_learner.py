"""A user-written learner plugged into ``mmenv/DUS-v0``.

Run from the repository root: ``PYTHONPATH=. python examples/custom_learner.py``.

``LateFusionLearner`` trains one small encoder + classifier per modality, each on its
own (unequal) batch, and fuses by averaging the modalities' log-probabilities. It is
the whole learner protocol in one class: declare what the method supports, build the
model in ``setup``, train in ``train_step``, predict in ``predict``.
"""

from __future__ import annotations

from collections.abc import Mapping

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

import mmenv  # noqa: F401  (registers mmenv/DUS-v0)
from mmenv.datasets import make_synthetic
from mmenv.learners import Batch, Learner, LearnerContext, Prediction, StepOutput


class LateFusionLearner(Learner):
    name = "late-fusion"
    requires_paired = False  # every modality learns from its own rows, paired or not
    min_modalities = 2
    max_modalities = None  # any number of modalities

    def __init__(self, hidden: int = 64, lr: float = 1e-2) -> None:
        self.hidden = hidden
        self.lr = lr

    def setup(self, ctx: LearnerContext) -> None:
        self.check_modalities(ctx.modality_names)  # clear LearnerError on a mismatch
        self.model = nn.ModuleDict({
            spec.name: nn.Sequential(nn.Flatten(), nn.Linear(spec.dim, self.hidden), nn.ReLU(),
                                     nn.Linear(self.hidden, ctx.num_classes))
            for spec in ctx.modalities
        }).to(ctx.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.lr, momentum=0.9)

    def train_step(self, batch: Batch) -> StepOutput:
        # Batches differ in size per modality; the first batch.num_paired rows are shared.
        logits = {m: self.model[m](x) for m, x in batch.inputs.items()}
        losses = {m: F.cross_entropy(z, batch.labels[m]) for m, z in logits.items()}
        total = torch.stack(list(losses.values())).sum()
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        # Detached tensors only, no .item(): the environment syncs once per step.
        return StepOutput(logits={m: z.detach() for m, z in logits.items()},
                          losses={"total": total.detach(), **{m: v.detach() for m, v in losses.items()}})

    @torch.no_grad()
    def predict(self, inputs: Mapping[str, Tensor]) -> Prediction:
        per = {m: self.model[m](x) for m, x in inputs.items()}
        fused = torch.stack([F.log_softmax(z, dim=1) for z in per.values()]).mean(dim=0)
        return Prediction(fused=fused, per_modality=per)


def main(epochs: int = 3, seed: int = 0) -> dict:
    data = make_synthetic(n_train=300, n_val=50, n_test=200, seed=seed)
    env = gym.make("mmenv/DUS-v0", dataset=data, learner=LateFusionLearner(), epochs=epochs, batch_budget=32)
    obs, info = env.reset(seed=seed)
    done = False
    while not done:
        # A fixed policy: the weak (second) modality gets 70 % of every batch.
        obs, reward, terminated, truncated, info = env.step(env.unwrapped.proportions_to_action([0.3, 0.7]))
        done = terminated or truncated
        print(f"epoch {info['epoch']}: batch sizes {info['batch_sizes']}, discrepancy {np.round(obs, 3)}")
    test = info["test"]
    print({k: round(v["accuracy"], 3) for k, v in test.items()})
    env.close()
    return test


if __name__ == "__main__":
    main()
