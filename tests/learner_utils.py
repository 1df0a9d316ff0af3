"""Helpers shared by the learner tests: a context, hand-made batches, short episodes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mmenv.datasets import make_synthetic
from mmenv.env import DUSEnv
from mmenv.learners import Batch, Learner, LearnerContext


def tiny_data(num_modalities: int = 2, seed: int = 0):
    return make_synthetic(n_train=300, n_val=50, n_test=200, num_modalities=num_modalities, seed=seed)


def make_ctx(ds, batch_budget: int = 32, iters_per_epoch: int = 10, epochs: int = 3, seed: int = 0) -> LearnerContext:
    gen = torch.Generator().manual_seed(seed)
    return LearnerContext(ds.modalities, ds.num_classes, torch.device("cpu"), batch_budget, epochs,
                          iters_per_epoch, seed, gen)


def setup_learner(learner: Learner, ds, seed: int = 0, **ctx_kwargs) -> Learner:
    """``setup`` under a fixed torch seed, so two learners built alike start identical."""
    torch.manual_seed(seed)
    learner.setup(make_ctx(ds, seed=seed, **ctx_kwargs))
    learner.train()
    return learner


def make_batch(ds, sizes: Sequence[int], num_paired: int, epoch: int = 0, iteration: int = 0, seed: int = 0) -> Batch:
    """A batch with a paired core of ``num_paired`` rows and distinct unpaired rows per modality."""
    train = ds.train
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    core, pos = perm[:num_paired], num_paired
    idx = {}
    for m, a in zip(ds.modality_names, sizes):
        extra = perm[pos:pos + a - num_paired]
        pos += a - num_paired
        idx[m] = torch.cat([core, extra])
    return Batch(inputs={m: train.gather(m, i) for m, i in idx.items()},
                 labels={m: train.labels[i] for m, i in idx.items()},
                 indices=idx, num_paired=num_paired, epoch=epoch, iteration=iteration)


def encoder_grads(learner: Learner, modality: str) -> list[torch.Tensor]:
    return [p.grad.clone() for p in learner.model.encoders[modality].parameters()]


def train_episode(learner: Learner, action: Sequence[float], num_modalities: int = 2, epochs: int = 3,
                  seed: int = 0) -> dict:
    """Run one episode with a fixed action; return ``info["test"]``."""
    env = DUSEnv(dataset=tiny_data(num_modalities), learner=learner, epochs=epochs, batch_budget=32)
    env.reset(seed=seed)
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(np.asarray(action, dtype=np.float32))
        done = terminated or truncated
    assert not info["diverged"]
    return info["test"]


# Equal shares, the first (strong) modality favoured, the last (weak) one favoured.
TWO_MODALITY_ACTIONS = [[0.5, 0.5], [0.8, 0.2], [0.2, 0.8]]
THREE_MODALITY_ACTIONS = [[1 / 3] * 3, [0.2, 0.2, 0.6]]
CHANCE = 0.25  # make_synthetic has 4 balanced classes
