"""Balance-aware Sequence Sampling (BSS) as sample-order strategies.

Reading of the method taken here (design notes, section 3):

* **Multi-perspective measurer.** For training sample i with unimodal softmax
  predictions p_i^m:

  - S_i, the *balance* perspective: cosine similarity of the unimodal softmax vectors
    (two modalities); with m > 2 the mean over all modality pairs.
  - L_i, the *difficulty* perspective: the per-sample loss, the sum of every unimodal
    cross-entropy plus the fused (multimodal) cross-entropy.
  - Both are min-max normalised over the training set (S~, L~ in [0, 1]; a constant
    score normalises to 0). Difficulty ``d_i = (1 - S~_i) + L~_i``: a sample is easy
    when its modalities agree and its loss is low.

* **Heuristic scheduler** (:class:`BSSCurriculum`): sort easy -> hard and train epoch t
  on the first ``floor(N * lambda(t))`` samples, with the root pacing function
  ``lambda(t) = min(1, sqrt((1 - l0^2) / T_grow * (t + 1) + l0^2))``. The official
  code ranks once with the initial model; ``rerank_every`` (default 1: every epoch,
  the better choice per the design notes) re-scores with the current model.

* **Learning-based scheduler** (:class:`BSSLearned`): re-score every epoch with the
  current model; weights ``w_i = 1 - (L~_i - S~_i) + 0.01``; each pass is an order of
  all samples drawn without replacement with probabilities ``w / sum w`` (Gumbel
  top-k, i.e. Plackett-Luce sampling, from the episode's generator).

Fit into the environment: DUS keeps a fixed number of iterations per epoch and lets
the policy choose per-modality batch sizes. Every stream (paired core and each
modality) draws from the curriculum's subset (re-shuffled each pass, so a small early
subset is revisited within the epoch) or from a fresh weighted order. Scoring uses
``learner.predict`` on the training split in eval mode, batched, on the env's device
(``ctx.predict`` of the :class:`~mmenv.sampling.scoring.ScoringContext` the strategy gets).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations

import torch
from torch import Tensor
from torch.nn import functional as F

from ..errors import EnvStateError, InvalidArgumentError
from .order import SampleOrder
from .scoring import ScoringContext

__all__ = [
    "BalanceScores",
    "minmax_normalise",
    "balance_scores",
    "root_pacing",
    "weighted_permutation",
    "BSSCurriculum",
    "BSSLearned",
]


@dataclass
class BalanceScores:
    """Per-sample measurer outputs (all ``[N]`` tensors on the scoring device)."""

    similarity: Tensor  # S_i
    loss: Tensor  # L_i
    similarity_norm: Tensor  # S~_i
    loss_norm: Tensor  # L~_i

    @property
    def difficulty(self) -> Tensor:
        """``d_i = (1 - S~_i) + L~_i`` (low = easy)."""
        return (1.0 - self.similarity_norm) + self.loss_norm

    @property
    def learned_weights(self) -> Tensor:
        """``w_i = 1 - (L~_i - S~_i) + 0.01`` of the learning-based scheduler."""
        return 1.0 - (self.loss_norm - self.similarity_norm) + 0.01


def minmax_normalise(x: Tensor) -> Tensor:
    """``(x - min) / (max - min)`` over the tensor; a constant tensor maps to zeros."""
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo).clamp_min(torch.finfo(x.dtype).tiny)


def balance_scores(fused: Tensor, per_modality: Mapping[str, Tensor], labels: Tensor) -> BalanceScores:
    """The multi-perspective measurer on class scores (logits or log-probabilities).

    Args:
        fused: ``[N, C]`` fused scores.
        per_modality: modality -> ``[N, C]`` unimodal scores (at least two modalities).
        labels: ``[N]`` true classes.
    """
    if len(per_modality) < 2:
        raise InvalidArgumentError(f"BSS needs at least two modalities, got {list(per_modality)}")
    probs = [torch.softmax(z.float(), dim=1) for z in per_modality.values()]
    sims = [F.cosine_similarity(a, b, dim=1) for a, b in combinations(probs, 2)]
    similarity = torch.stack(sims).mean(0)
    loss = F.cross_entropy(fused.float(), labels, reduction="none")
    for z in per_modality.values():
        loss = loss + F.cross_entropy(z.float(), labels, reduction="none")
    return BalanceScores(similarity, loss, minmax_normalise(similarity), minmax_normalise(loss))


def root_pacing(t: int, l0: float = 0.1, t_grow: float = 40) -> float:
    """``lambda(t) = min(1, sqrt((1 - l0^2) / T_grow * (t + 1) + l0^2))`` (share of data at epoch t)."""
    return min(1.0, math.sqrt((1.0 - l0 * l0) / t_grow * (t + 1) + l0 * l0))


def weighted_permutation(weights: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A permutation drawn without replacement with probabilities ``w / sum w`` per draw.

    Gumbel top-k: sorting ``log w_i + G_i`` (G_i standard Gumbel) in descending order
    gives exactly sequential sampling without replacement (Plackett-Luce), in one
    vectorised, host-sync-free operation.
    """
    if weights.dim() != 1:
        # internal invariant: callers pass one weight per sample
        raise ValueError(f"weights must be 1-D, got shape {tuple(weights.shape)}")
    u = torch.rand(weights.shape[0], generator=generator, device=weights.device, dtype=torch.float64)
    u = u.clamp(torch.finfo(torch.float64).tiny, 1.0 - 1e-16)
    gumbel = -torch.log(-torch.log(u))
    keys = torch.log(weights.double()) + gumbel
    return torch.argsort(keys, descending=True)


class _BSSBase(SampleOrder):
    restart_each_epoch = True

    def __init__(self, score_batch_size: int | None = None) -> None:
        self.score_batch_size = score_batch_size
        self.scores: BalanceScores | None = None

    def setup(self, n, streams, device, generator) -> None:
        super().setup(n, streams, device, generator)
        self.scores = None

    def score(self, ctx: ScoringContext) -> BalanceScores:
        """Score the training split with the current model (``ctx.predict``)."""
        fused, per = ctx.predict("train", self.score_batch_size)
        self.scores = balance_scores(fused, per, ctx.labels)
        return self.scores

    def _scored(self, value: Tensor | None) -> Tensor:
        """``value`` (a ranking or weights computed from the scores), or an error if not scored yet."""
        if value is None or self.scores is None:
            raise EnvStateError(f"sample order {self.name!r} has not scored the data yet: the environment calls "
                               "on_epoch_start(ctx) before sampling; call it yourself (mmenv.sampling.scoring_context) "
                               "when using the sampler alone")
        return value


class BSSCurriculum(_BSSBase):
    """BSS heuristic scheduler: easy -> hard subset growing with the root pacing function.

    Args:
        l0: initial share of the data (lambda's starting value is ``sqrt(l0^2 + (1 - l0^2) / T_grow)``).
        t_grow: epochs until the whole training set is used (T_grow, the paper's 40); ``None``
            uses the episode's epoch count (``ctx.epochs``), so the last epoch sees all data.
            With the paper's 40 and a 10-epoch episode only the easiest ~51% are ever used.
        rerank_every: re-score every k epochs with the current model (default 1);
            ``0`` ranks once at epoch 0 with the initial model, as the official code does.
        shuffle_within: shuffle the selected subset each pass (default) or visit it in
            easy -> hard order.
        score_batch_size: batch size of the scoring pass (default: the env's eval batch size).
    """

    name = "bss-curriculum"

    def __init__(self, l0: float = 0.1, t_grow: float | None = 40, rerank_every: int = 1, shuffle_within: bool = True,
                 score_batch_size: int | None = None) -> None:
        if not 0.0 < l0 <= 1.0:
            raise InvalidArgumentError(f"l0 must be in (0, 1], got {l0}")
        if t_grow is not None and t_grow <= 0:
            raise InvalidArgumentError(f"t_grow must be > 0 epochs (or None for the episode length), got {t_grow}")
        if not isinstance(rerank_every, int) or rerank_every < 0:
            raise InvalidArgumentError(f"rerank_every must be an int >= 0 (0 = rank once at epoch 0), got {rerank_every!r}")
        super().__init__(score_batch_size)
        self.l0, self.t_grow, self.rerank_every, self.shuffle_within = l0, t_grow, rerank_every, shuffle_within
        self._t_grow = t_grow  # resolved T_grow (t_grow=None: set from ctx.epochs at the first epoch)
        self.ranking: Tensor | None = None
        self.pass_size = 0

    def setup(self, n, streams, device, generator) -> None:
        super().setup(n, streams, device, generator)
        self.ranking = None
        self.pass_size = n

    def pacing(self, epoch: int) -> float:
        if self._t_grow is None:
            raise EnvStateError("t_grow=None takes the episode length from on_epoch_start(ctx); call it first")
        return root_pacing(epoch, self.l0, self._t_grow)

    def subset_size(self, epoch: int) -> int:
        """``floor(N * lambda(epoch))`` (at least one sample)."""
        return max(1, min(self.n, math.floor(self.n * self.pacing(epoch) + 1e-9)))

    def on_epoch_start(self, ctx: ScoringContext) -> None:
        epoch = ctx.epoch
        if self.t_grow is None:
            if ctx.epochs is None:
                raise InvalidArgumentError("bss-curriculum with t_grow=None needs the episode length: build the "
                                 "ScoringContext with epochs=... (the environment does)")
            self._t_grow = ctx.epochs
        elif epoch == 0 and ctx.epochs is not None and self.t_grow > ctx.epochs:
            warnings.warn(
                f"bss-curriculum: t_grow={self.t_grow:g} is longer than the episode ({ctx.epochs} epochs), so "
                f"the model never trains on the full data set (last epoch uses "
                f"{root_pacing(ctx.epochs - 1, self.l0, self.t_grow):.0%} of it); pass "
                f"sample_order_kwargs={{'t_grow': None}} to grow over the episode",
                stacklevel=2,
            )
        due = self.rerank_every > 0 and epoch % self.rerank_every == 0
        if self.ranking is None or due:
            # stable sort: ties keep dataset order, so the ranking depends on the scores alone
            self.ranking = torch.argsort(self.score(ctx).difficulty, stable=True)
        self.pass_size = self.subset_size(epoch)

    def next_pass(self, stream: str, epoch: int) -> Tensor:
        subset = self._scored(self.ranking)[: self.pass_size]
        if self.shuffle_within:
            subset = subset[torch.randperm(subset.shape[0], generator=self.generator, device=self.device)]
        return subset

    def state_dict(self) -> dict:
        return {"ranking": self.ranking, "pass_size": self.pass_size, "scores": self.scores}

    def load_state_dict(self, state: dict) -> None:
        self.ranking, self.pass_size, self.scores = state["ranking"], state["pass_size"], state["scores"]


class BSSLearned(_BSSBase):
    """BSS learning-based scheduler: weighted orders from scores re-computed each epoch.

    Args:
        rescore_every: re-score every k epochs (default 1, every epoch).
        eps: the additive constant of the weights (0.01).
        score_batch_size: batch size of the scoring pass (default: the env's eval batch size).
    """

    name = "bss-learned"

    def __init__(self, rescore_every: int = 1, eps: float = 0.01, score_batch_size: int | None = None) -> None:
        if not isinstance(rescore_every, int) or rescore_every < 1:
            raise InvalidArgumentError(f"rescore_every must be an int >= 1, got {rescore_every!r}")
        if eps <= 0:
            raise InvalidArgumentError(f"eps must be > 0 so every sample keeps a positive weight, got {eps}")
        super().__init__(score_batch_size)
        self.rescore_every, self.eps = rescore_every, eps
        self.weights: Tensor | None = None

    def setup(self, n, streams, device, generator) -> None:
        super().setup(n, streams, device, generator)
        self.weights = None

    def on_epoch_start(self, ctx: ScoringContext) -> None:
        if self.weights is None or ctx.epoch % self.rescore_every == 0:
            s = self.score(ctx)
            self.weights = 1.0 - (s.loss_norm - s.similarity_norm) + self.eps

    def next_pass(self, stream: str, epoch: int) -> Tensor:
        return weighted_permutation(self._scored(self.weights), self.generator)

    def state_dict(self) -> dict:
        return {"weights": self.weights, "scores": self.scores}

    def load_state_dict(self, state: dict) -> None:
        self.weights, self.scores = state["weights"], state["scores"]
