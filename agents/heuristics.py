"""Heuristic sampling policies: the baselines the learned policies are compared with.

All of them read the observation (the cumulative discrepancy ``s^``, one value per
modality); DUS-H also reads the epoch. Our reading of each, as implemented:

* :class:`UniformPolicy` — ``N_B / m`` per modality (Algorithm 1's INIT action, and the
  ordinary joint-training batch).
* :class:`DUSHPolicy` ("DUS-H", the paper's heuristic). The paper writes the dominant
  modality's batch as ``f(T) = round(beta * e^(alpha*T) * N_B)`` with ``beta = 0.5``,
  ``alpha = ln(1/beta) / E``, ``T`` the epoch and ``E`` the number of epochs, and says
  the dominant modality gets "half of the other modalities' size at the start, equal at
  the end". Taken literally for ``m = 2`` the formula gives the dominant modality
  ``N_B / 2`` at the start and all of ``N_B`` at the end, which contradicts the sentence,
  so we read ``ratio(T) = beta * e^(alpha*T)`` as the *ratio* of the dominant batch to
  each other modality's batch: ``ratio(0) = 0.5`` and ``ratio(E) = 1``. With ``x`` the
  share of each non-dominant modality, ``ratio * x + (m - 1) * x = 1``, so

      p_dom = ratio / (ratio + m - 1),   p_other = 1 / (ratio + m - 1).

  For two modalities: 1/3 vs 2/3 at ``T = 0``, 1/2 vs 1/2 at ``T = E``. ``T`` is
  ``info["epoch"]`` (epochs completed before the action), so with one step per epoch
  the last action uses ``T = E - 1``.
* :class:`FixedRatioPolicy` (the paper's "MLA-HB"): the dominant modality always gets
  half of each other modality's batch (``ratio = 0.5`` above).

Both rules fix a *direction*: the modality that is ahead gets less. That is right when the
other modalities are behind because they are slow to learn, and wrong when they are behind
because they are noisy (their extra data is corrupted evidence: docs/synthetic.md). So
both take ``direction="less"`` (default, the paper's) or ``direction="more"``: the
dominant and the other modalities swap roles, i.e. each *other* modality gets ``ratio``
times the dominant modality's batch (``p_dom = 1 / (1 + (m - 1) ratio)``). With ``ratio``
(fixed) or ``beta`` (DUS-H) they form the tunable rivals of the benchmark
(:mod:`mmenv.experiments.tuning`).
* :class:`DiscrepancyPolicy` (the paper's "DUS w/o RL" ablation): proportions computed
  directly from the discrepancy, giving *less* data to the modality that is ahead.
  Default form ``"softmax"``: ``p = softmax(-(s / sum(s)) / tau)`` on the discrepancy
  *shares* (scale-free, so it behaves the same for ``discrepancy="sum"`` and ``"mean"``),
  ``tau = 0.25``; form ``"inverse"``: ``p_j ∝ 1 / (s_j + eps)``.

* :class:`ValGainPolicy` ("val-gain", the package's own rule, not the paper's): reads the run
  instead of fixing a direction. Before every step it measures each modality's validation
  accuracy (its own output head) and gives ``share`` of the batch to the modality whose
  validation accuracy rose most since the previous step (the others split the rest equally;
  uniform before the first change is known and on ties). A slow modality is the one still
  rising, so it gets more; a noisy modality stops rising while the clean leader keeps rising,
  so the leader gets more. Found on the ``direction`` family's train instances with tuning
  seeds only (docs/benchmark.md); one validation pass per step.

The *dominant* modality of DUS-H and the fixed ratio is the one with the largest
cumulative discrepancy *per sample* (ties: the lowest index), unless the user names it
(``dominant="audio"`` or an index): with the paper's ``discrepancy="sum"`` the score
also grows with the batch a modality was given, so the raw observation would make these
policies flip the dominant modality every step (``dominant_by="observation"`` keeps
that raw reading).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .policy import Policy, PolicyError

__all__ = ["UniformPolicy", "DUSHPolicy", "FixedRatioPolicy", "DiscrepancyPolicy", "ValGainPolicy", "ratio_proportions",
           "directed_proportions", "DIRECTIONS"]

#: The direction rules of DUS-H and the fixed ratio: the dominant modality gets less, or more.
DIRECTIONS = ("less", "more")


def ratio_proportions(m: int, dominant: int, ratio: float) -> np.ndarray:
    """Proportions where the dominant batch is ``ratio`` times each other modality's batch."""
    if m < 1 or not 0 <= dominant < m:
        raise PolicyError(f"dominant index {dominant} is out of range for {m} modalities")
    if not (ratio >= 0.0 and math.isfinite(ratio)):
        raise PolicyError(f"ratio must be a finite number >= 0, got {ratio}")
    p = np.full(m, 1.0 / (ratio + m - 1))
    p[dominant] = ratio / (ratio + m - 1)
    return p


def directed_proportions(m: int, dominant: int, ratio: float, direction: str = "less") -> np.ndarray:
    """Proportions under a direction rule, with ``ratio`` in ``(0, 1]`` the smaller-to-larger batch ratio.

    ``"less"``: the dominant batch is ``ratio`` times each other modality's batch
    (:func:`ratio_proportions`). ``"more"``: each other modality's batch is ``ratio`` times
    the dominant one's (the dominant modality gets ``1 / ratio`` times each other's).
    ``ratio = 1`` is the uniform split either way.
    """
    if direction not in DIRECTIONS:
        raise PolicyError(f"direction must be one of {list(DIRECTIONS)}, got {direction!r}")
    if direction == "less":
        return ratio_proportions(m, dominant, ratio)
    if not (ratio > 0.0 and math.isfinite(ratio)):
        raise PolicyError(f"ratio must be a finite number > 0 with direction='more', got {ratio}")
    return ratio_proportions(m, dominant, 1.0 / ratio)


def _check_direction(direction: Any) -> str:
    if not isinstance(direction, str) or direction not in DIRECTIONS:
        raise PolicyError(f"direction must be one of {list(DIRECTIONS)} (the dominant modality gets less or more), "
                          f"got {direction!r}")
    return direction


class UniformPolicy(Policy):
    """``N_B / m`` each: the ordinary joint-training batch."""

    name = "uniform"

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        m = np.asarray(obs).shape[-1]
        return np.full(m, 1.0 / m)


class _DominantPolicy(Policy):
    """Shared logic: find the dominant modality (named, or the largest discrepancy).

    With ``discrepancy="sum"`` (the paper's) a modality's score also grows with the batch
    it was given, so a policy that gives the weak modality more would soon read it as
    dominant and flip back and forth. ``dominant_by="per-sample"`` (default) therefore
    compares ``s^_j / mean batch size_j`` — the cumulative score per sample, the mean batch
    sizes being tracked from ``info["batch_sizes"]`` and ``info["iteration"]`` — which
    equals the raw comparison under uniform batches and under ``discrepancy="mean"``.
    ``dominant_by="observation"`` compares the raw observation.
    """

    BY = ("per-sample", "observation")

    def __init__(self, dominant: str | int | None = None, dominant_by: str = "per-sample") -> None:
        if dominant_by not in self.BY:
            raise PolicyError(f"dominant_by must be one of {list(self.BY)}, got {dominant_by!r}")
        self.dominant = dominant
        self.dominant_by = dominant_by
        self._dominant_index: int | None = dominant if isinstance(dominant, int) else None
        self._mode = "sum"
        self._reset_sizes()

    def _reset_sizes(self) -> None:
        self._size_acc: np.ndarray | None = None
        self._iters = 0
        self._last_iter = 0

    def reset(self, env: Any) -> None:
        self._reset_sizes()
        tracker = getattr(env, "tracker", None)
        self._mode = getattr(tracker, "mode", "sum")
        if isinstance(self.dominant, str):
            modalities = list(env.modalities)
            if self.dominant not in modalities:
                raise PolicyError(f"dominant modality {self.dominant!r} is not one of the environment's "
                                  f"modalities {modalities}")
            self._dominant_index = modalities.index(self.dominant)

    def _scores(self, obs: np.ndarray, info: dict | None) -> np.ndarray:
        s = np.nan_to_num(np.asarray(obs, dtype=np.float64), nan=-np.inf)
        if self.dominant_by != "per-sample" or self._mode != "sum" or not info or "batch_sizes" not in info:
            return s
        iteration = int(info.get("iteration", 0))
        if iteration < self._last_iter:  # a new episode without reset(): start over
            self._reset_sizes()
        if iteration > self._last_iter:
            sizes = np.asarray(info["batch_sizes"], dtype=np.float64)
            weight = iteration - self._last_iter
            self._size_acc = sizes * weight if self._size_acc is None else self._size_acc + sizes * weight
            self._iters += weight
            self._last_iter = iteration
        if self._size_acc is None:
            return s
        return s / np.maximum(self._size_acc / self._iters, 1e-9)

    def dominant_index(self, obs: np.ndarray, info: dict | None = None) -> int:
        if self._dominant_index is not None:
            return self._dominant_index
        if isinstance(self.dominant, str):
            raise PolicyError(f"dominant={self.dominant!r} is a name: call reset(env) first so it can be "
                              "resolved to an index (or pass an index)")
        return int(np.argmax(self._scores(obs, info)))


class DUSHPolicy(_DominantPolicy):
    """DUS-H: dominant/other batch ratio ``beta * e^(alpha*T)`` rising from ``beta`` to 1.

    Args:
        epochs: E. Taken from the environment at :meth:`reset` when not given.
        beta: ratio at ``T = 0`` (paper: 0.5).
        dominant: modality name or index; default: largest cumulative discrepancy.
        dominant_by: ``"per-sample"`` (default) or ``"observation"`` (see ``_DominantPolicy``).
        direction: ``"less"`` (paper: the dominant modality starts at ``beta`` times each
            other's batch) or ``"more"`` (each other modality starts at ``beta`` times the
            dominant one's); both end at the uniform split.
    """

    name = "dus-h"

    def __init__(self, epochs: int | None = None, beta: float = 0.5, dominant: str | int | None = None,
                 dominant_by: str = "per-sample", direction: str = "less") -> None:
        super().__init__(dominant, dominant_by)
        if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating, np.integer)) \
                or not 0.0 < beta <= 1.0:
            raise PolicyError(f"beta must lie in (0, 1] (the start ratio of dominant to other batch), got {beta!r}")
        self.beta = float(beta)
        self.direction = _check_direction(direction)
        self._user_epochs = epochs
        self.epochs = epochs

    def reset(self, env: Any) -> None:
        super().reset(env)
        self.epochs = self._user_epochs if self._user_epochs is not None else int(env.epochs)

    def ratio(self, epoch: float) -> float:
        """``beta * e^(alpha*T)`` with ``alpha = ln(1/beta) / E``, capped at 1."""
        if not self.epochs:
            raise PolicyError("DUS-H needs the number of epochs E: pass epochs=... or call reset(env)")
        alpha = math.log(1.0 / self.beta) / self.epochs
        return min(1.0, self.beta * math.exp(alpha * epoch))

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        epoch = info.get("epoch", 0) if info else 0
        m = np.asarray(obs).shape[-1]
        return directed_proportions(m, self.dominant_index(obs, info), self.ratio(epoch), self.direction)


class FixedRatioPolicy(_DominantPolicy):
    """MLA-HB: the dominant modality gets ``ratio`` (0.5) times each other modality's batch.

    With ``direction="more"`` each other modality gets ``ratio`` times the dominant one's
    batch instead (``ratio`` must then be > 0).
    """

    name = "fixed"

    def __init__(self, ratio: float = 0.5, dominant: str | int | None = None, dominant_by: str = "per-sample",
                 direction: str = "less") -> None:
        super().__init__(dominant, dominant_by)
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.floating, np.integer)):
            raise PolicyError(f"ratio must be a number (the dominant-to-other batch ratio), got {ratio!r}")
        self.direction = _check_direction(direction)
        directed_proportions(2, 0, float(ratio), self.direction)  # validate early
        self.ratio = float(ratio)

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        m = np.asarray(obs).shape[-1]
        return directed_proportions(m, self.dominant_index(obs, info), self.ratio, self.direction)


class DiscrepancyPolicy(Policy):
    """DUS w/o RL: less data for the modality that is ahead, straight from ``s^``.

    Args:
        form: ``"softmax"`` — ``softmax(-(s / sum s) / tau)``; ``"inverse"`` —
            ``p ∝ 1 / (s + eps)``.
        tau: softmax temperature on the discrepancy shares (smaller = sharper).
        eps: keeps the inverse finite when a score is 0.
    """

    name = "discrepancy"
    FORMS = ("softmax", "inverse")

    def __init__(self, form: str = "softmax", tau: float = 0.25, eps: float = 1e-3) -> None:
        if form not in self.FORMS:
            raise PolicyError(f"unknown form {form!r}; valid: {list(self.FORMS)}")
        if not tau > 0:
            raise PolicyError(f"tau must be > 0, got {tau}")
        self.form, self.tau, self.eps = form, tau, eps

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        s = np.clip(np.nan_to_num(np.asarray(obs, dtype=np.float64), nan=0.0), 0.0, None)
        if self.form == "inverse":
            w = 1.0 / (s + self.eps)
            return w / w.sum()
        total = s.sum()
        share = s / total if total > 0 else np.full_like(s, 1.0 / s.shape[0])
        z = -share / self.tau
        z -= z.max()
        w = np.exp(z)
        return w / w.sum()


class ValGainPolicy(Policy):
    """More data for the modality whose validation accuracy rose most since the last step.

    Args:
        share: the batch share of that modality (in ``(1/m, 1)``; the others split ``1 - share``
            equally).
        min_gain: a rise this much (accuracy, 0-1) above every other modality's is needed to
            leave uniform; below it (ties, the first step) the policy plays uniform.

    It reads the environment it was reset with (:meth:`mmenv.DUSEnv.evaluate` on ``"val"``, one
    pass per step), so it needs ``reset(env)`` before ``act``.
    """

    name = "val-gain"

    def __init__(self, share: float = 0.75, min_gain: float = 1e-9) -> None:
        if isinstance(share, bool) or not isinstance(share, (int, float, np.floating, np.integer)) \
                or not 0.0 < float(share) < 1.0:
            raise PolicyError(f"share must be a number in (0, 1) (the rising modality's batch share), got {share!r}")
        if isinstance(min_gain, bool) or not isinstance(min_gain, (int, float, np.floating, np.integer)) \
                or not min_gain >= 0:
            raise PolicyError(f"min_gain must be a number >= 0 (accuracy, 0-1), got {min_gain!r}")
        self.share, self.min_gain = float(share), float(min_gain)
        self._env: Any = None
        self._last: np.ndarray | None = None

    def reset(self, env: Any) -> None:
        if not hasattr(env, "evaluate") or not hasattr(env, "modalities"):
            raise PolicyError("the val-gain rule reads each modality's validation accuracy: reset it with the "
                              "environment (a DUSEnv, e.g. env.unwrapped)")
        m = len(env.modalities)
        if self.share <= 1.0 / m:
            raise PolicyError(f"share {self.share} is not above 1/m = {1.0 / m:.3f} for {m} modalities: the rising "
                              "modality would get less than the others; pass a larger share")
        self._env = env
        self._last = None

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        if self._env is None:
            raise PolicyError("call reset(env) before act(): the val-gain rule reads the environment's "
                              "validation accuracy")
        m = len(self._env.modalities)
        # The environment's once-per-step validation pass when it has one (shared with the reward).
        memo = getattr(self._env, "validation_metrics", None)
        metrics = memo() if callable(memo) else self._env.evaluate("val")
        now = np.array([metrics[mod]["accuracy"] for mod in self._env.modalities], dtype=np.float64)
        last, self._last = self._last, now
        if last is None:
            return np.full(m, 1.0 / m)
        gain = now - last
        order = np.argsort(-gain, kind="stable")
        if m < 2 or gain[order[0]] - gain[order[1]] < self.min_gain:
            return np.full(m, 1.0 / m)
        p = np.full(m, (1.0 - self.share) / (m - 1))
        p[order[0]] = self.share
        return p
