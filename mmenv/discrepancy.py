"""Batch discrepancy and its cumulative mean (the DUS observation).

Batch discrepancy (after OGM-GE's score): ``s_t^j = sum_{i in B_t^j} p_j(x_i)[y_i]``,
the summed softmax probability of the true class over modality j's batch. With
``mode="mean"`` it is the per-sample average instead.

Cumulative discrepancy (Eq. 3): ``s^_1 = s_1``, ``s^_t = ((t-1)/t) s^_{t-1} + s_t / t``,
the running mean over iterations t = 1, 2, ... of the episode. With ``mode="mean"`` a
modality that got no rows in an iteration keeps its running value for that iteration. The observation is that
vector; with ``mode="sum"`` it is divided by the batch budget N_B so it lies in [0, 1].

Everything stays on the device: ``update`` launches kernels only; reading
:attr:`observation` synchronises (the environment does it once per step).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from .errors import InvalidArgumentError

MODES = ("sum", "mean")


def true_class_probability(logits: Tensor, labels: Tensor) -> Tensor:
    """Softmax probability of the true class for each row: ``p(x_i)[y_i]``.

    Works on any leading shape (``[..., C]`` logits, ``[...]`` labels). Computed as
    ``exp(z_y - max z) / sum_c exp(z_c - max z)`` rather than a full ``softmax`` then a
    gather: the same value, but several times faster on a CPU for the small class counts
    of these tasks (softmax kernels are slow along a short last dimension).
    """
    z = logits.float()
    top = z.amax(-1, keepdim=True)
    z_true = z.gather(-1, labels.unsqueeze(-1))
    return ((z_true - top).exp() / (z - top).exp().sum(-1, keepdim=True)).squeeze(-1)


def batch_discrepancy(logits: Mapping[str, Tensor], labels: Mapping[str, Tensor], modalities: Sequence[str],
                      mode: str = "sum") -> Tensor:
    """``s_t`` for every modality, as a ``[m]`` tensor (no host sync)."""
    vals = []
    for m in modalities:
        p = true_class_probability(logits[m], labels[m])
        vals.append(p.sum() if mode == "sum" else p.mean())
    return torch.stack(vals)


class DiscrepancyTracker:
    """Running mean of the batch discrepancy over iterations (Eq. 3)."""

    def __init__(self, modalities: Sequence[str], mode: str = "sum", batch_budget: int = 64,
                 device: torch.device | str = "cpu") -> None:
        if mode not in MODES:
            raise InvalidArgumentError(f"unknown discrepancy mode {mode!r}; valid: {list(MODES)}")
        self.modalities = tuple(modalities)
        self.mode = mode
        self.batch_budget = batch_budget
        self.device = torch.device(device)
        self.reset()

    def reset(self) -> None:
        self.t = 0
        self.value = torch.zeros(len(self.modalities), device=self.device)
        self.last = torch.zeros(len(self.modalities), device=self.device)

    def update(self, s_t: Tensor) -> None:
        """Fold in one iteration's ``s_t`` (``[m]`` tensor, raw: sums or means)."""
        self.t += 1
        s_t = s_t.detach().to(self.value.dtype)
        # "mean" of an empty batch (a modality given 0 rows) is NaN: that modality keeps
        # its running value instead of being dragged towards 0 or poisoned.
        s_t = torch.where(torch.isnan(s_t), self.value, s_t)
        self.last = s_t
        if self.t == 1:
            self.value = s_t.clone()
        else:
            self.value = self.value * ((self.t - 1) / self.t) + s_t / self.t

    def fold(self, s: Tensor) -> None:
        """Fold ``T`` iterations' batch discrepancies ``s`` (``[T, m]``) at once.

        Equals ``T`` calls of :meth:`update` up to float rounding (see :meth:`fold_sum`).
        """
        if s.shape[0] > 0:
            s = s.detach().to(self.value.dtype)
            # "mean" over an empty batch is NaN (a modality given 0 rows, min_batch=0): that
            # modality keeps its running value, as update does.
            s = torch.where(torch.isnan(s), self.value.expand_as(s), s)
            self.fold_sum(s.sum(0), int(s.shape[0]), s[-1])

    def fold_sum(self, total: Tensor, n: int, last: Tensor) -> None:
        """Fold ``n`` iterations, given the sum ``total`` (``[m]``) of their batch discrepancies.

        Eq. 3's recurrence ``s^_t = ((t-1)/t) s^_{t-1} + s_t / t`` is the plain mean of
        ``s_1 .. s_t``, so ``n`` iterations at once give
        ``s^_{t0+n} = (t0 s^_{t0} + sum_i s_{t0+i}) / (t0 + n)``. ``last`` is ``s_{t0+n}``.
        """
        if n == 0:
            return
        total = total.to(self.value.dtype)
        t0 = self.t
        self.value = total / n if t0 == 0 else (self.value * t0 + total) / (t0 + n)
        self.t = t0 + n
        self.last = last.to(self.value.dtype)

    @property
    def observation(self) -> Tensor:
        """The normalised cumulative discrepancy (device tensor, float32)."""
        return self.value / self.batch_budget if self.mode == "sum" else self.value.clone()

    def state_dict(self) -> dict:
        return {"t": self.t, "value": self.value.clone(), "last": self.last.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.t = int(state["t"])
        self.value = state["value"].to(self.device)
        self.last = state["last"].to(self.device)
