"""The functional form of the learner protocol: one training step, written once.

A :class:`FunctionalLearner` writes its training iteration as pure functions of the
model's parameters, the batch and a dict of method-state tensors:

* :meth:`FunctionalLearner.loss` ``(model, batch, state, info) -> (loss, aux)``: the
  forward pass and the loss. ``aux`` is a dict with ``"logits"`` (modality -> unimodal
  logits on its batch, for the discrepancy), ``"losses"`` (name -> scalar, ``"total"``
  required), optional ``"extras"`` (logged scalars), optional ``"state"`` (the new method
  state) and anything the gradient hook needs (e.g. detached features).
* :meth:`FunctionalLearner.modulate` ``(model, grads, batch, aux, state, info, noise) ->
  (grads, state)``: an optional gradient hook between the gradient and the optimizer step
  (OGM-GE's modulation and noise, AGM's coefficients, MLA's projection).
* :meth:`FunctionalLearner.noise_shapes`: Gaussian noise the hook needs, drawn by the
  caller from the run's own generator (outside any ``vmap``), so a run's draws never
  depend on how many runs train beside it.
* :meth:`FunctionalLearner.epoch_end` ``(state, epoch) -> state`` (PMR's prototypes).
* :meth:`FunctionalLearner.num_phases` / :meth:`phase_params`: learners that take several
  optimizer steps per iteration (MLA: one per modality) and which parameters each trains.

The imperative :meth:`Learner.train_step` is *derived* from these (:meth:`train_step` below:
forward, ``backward``, hook, ``optimizer.step``), so the single environment runs them as
before; the batched engine (:mod:`mmenv.engine`) runs the very same functions for K runs at
once under ``torch.func.vmap`` with ``functional_call`` (the ``model`` it passes holds the
run's parameters). Inside these functions, therefore: no host synchronisation, no Python
branch on tensor values, no randomness, no in-place update of ``state`` tensors, and a
batch may be *padded* — :func:`row_weights` / :func:`paired_weights` give the rows that are
real (``None`` in the single environment: every row is). The helpers below
(:func:`weighted_ce`, :func:`paired_mean`, :func:`unpaired_rows`) take both forms.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .base import Batch, Learner, LearnerContext, StepOutput
from .common import build_optimizer, scaled_ce, weighted_scaled_ce

__all__ = ["StepInfo", "FunctionalLearner", "row_weights", "paired_weights", "weighted_ce", "weighted_mean",
           "paired_mean", "unpaired_rows", "row_count", "split_noise"]


@dataclass(frozen=True)
class StepInfo:
    """The static facts of one training iteration (the same for every run trained together)."""

    epoch: int
    iteration: int
    iters_per_epoch: int
    phase: int = 0


# ---------------------------------------------------------------- padded-batch helpers
def row_weights(batch: Batch, modality: str) -> Tensor | None:
    """Modality's row weights ``[a_j]`` (1 real, 0 padding), or ``None`` when every row is real."""
    return None if batch.weights is None else batch.weights[modality]


def paired_weights(batch: Batch) -> Tensor | None:
    """Weights ``[num_paired]`` of the paired core's rows (1 paired, 0 not), ``None`` when all are."""
    return batch.paired_weight


def row_count(batch: Batch, modality: str) -> Tensor | int:
    """How many real rows the modality has (an int when unpadded, a 0-d tensor when padded)."""
    w = row_weights(batch, modality)
    return batch.labels[modality].shape[0] if w is None else w.sum()


def weighted_ce(logits: Tensor, labels: Tensor, weights: Tensor | None, loss_scale: str, share: float) -> Tensor:
    """:func:`~mmenv.learners.common.scaled_ce` on real rows only (``weights=None``: all rows)."""
    if weights is None:
        return scaled_ce(logits, labels, loss_scale, share)
    return weighted_scaled_ce(logits, labels, weights, loss_scale, share)


def weighted_mean(values: Tensor, weights: Tensor | None) -> Tensor:
    """Mean over the first dimension of the real rows (0 when there are none)."""
    if weights is None:
        return values.mean(dim=0) if values.shape[0] else values.sum(dim=0) * 0.0
    w = weights.reshape(-1, *([1] * (values.dim() - 1))).to(values.dtype)
    return (values * w).sum(dim=0) / weights.sum().clamp_min(1.0)


def paired_mean(paired_rows: Mapping[str, Tensor], whole_rows: Mapping[str, Tensor], batch: Batch,
                modalities: Sequence[str]) -> Tensor:
    """Per-modality mean ``[m]`` of a per-row quantity, on the paired core when there is one.

    ``paired_rows[m]`` holds the quantity on the paired core's rows (``[num_paired]``),
    ``whole_rows[m]`` on the modality's whole batch; without a paired core (a run whose
    ``num_paired`` is 0) the whole batch is used. Detached.
    """
    pw = paired_weights(batch)
    out = []
    for m in modalities:
        if pw is None:
            out.append(weighted_mean(paired_rows[m], None) if batch.num_paired > 0
                       else weighted_mean(whole_rows[m], None))
        else:
            paired = weighted_mean(paired_rows[m], pw)
            whole = weighted_mean(whole_rows[m], row_weights(batch, m))
            out.append(torch.where(pw.sum() > 0, paired, whole))
    return torch.stack(out).detach()


def unpaired_rows(batch: Batch, modality: str) -> tuple[slice, Tensor | None]:
    """The modality's unpaired rows: ``(row slice, weights)``.

    Unpadded: ``slice(num_paired, None)`` and ``None``. Padded: every row, weighted 1 on the
    run's own unpaired real rows (the run's paired core may be shorter than ``num_paired``).
    """
    w = row_weights(batch, modality)
    pw = paired_weights(batch)
    if w is None or pw is None:
        return slice(batch.num_paired, None), None
    rows = torch.arange(w.shape[0], device=w.device, dtype=w.dtype)
    return slice(None), w * (rows >= pw.sum()).to(w.dtype)


def split_noise(flat: Tensor, shapes: Sequence[tuple[str, torch.Size]]) -> dict[str, Tensor]:
    """One flat noise draw ``[..., total]`` as the named tensors of ``shapes`` (views, leading
    dimensions kept: the batched engine's rows of runs)."""
    sizes = [math.prod(shape) for _, shape in shapes]
    lead = flat.shape[:-1]
    return {name: part.view(*lead, *shape) for (name, shape), part in zip(shapes, flat.split(sizes, dim=-1))}


# ---------------------------------------------------------------- the protocol
class FunctionalLearner(Learner):
    """A learner whose iteration is pure functions (see the module docstring).

    Subclasses implement :meth:`build_model`, :meth:`loss` and :meth:`predict`; the rest
    has defaults. :meth:`setup` builds ``self.model`` and ``self.optimizer`` (from
    ``self.opt_kwargs``, SGD by default) and the method state ``self.fstate``.
    """

    opt_kwargs: dict[str, Any] = {}
    model: nn.Module

    # ------------------------------------------------------------ what a learner writes
    @abstractmethod
    def build_model(self, ctx: LearnerContext) -> nn.Module:
        """The ``nn.Module`` holding every trained parameter (on the CPU; moved by :meth:`setup`)."""

    def initial_state(self, ctx: LearnerContext) -> dict[str, Any]:
        """The method state at the start of a run: a (nested) dict of tensors (default none)."""
        return {}

    @abstractmethod
    def loss(self, model: Any, batch: Batch, state: Mapping[str, Any],
             info: StepInfo) -> tuple[Tensor, dict[str, Any]]:
        """One iteration's (phase's) loss and ``aux`` (see the module docstring)."""

    def modulate(self, model: Any, grads: dict[str, Tensor], batch: Batch, aux: Mapping[str, Any],
                 state: Mapping[str, Any], info: StepInfo,
                 noise: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], Mapping[str, Any]]:
        """Gradient hook before the optimizer step: returns ``(grads, state)`` (default unchanged)."""
        return grads, state

    def noise_shapes(self, model: Any, info: StepInfo) -> list[tuple[str, torch.Size]]:
        """``(name, shape)`` of the standard-normal tensors :meth:`modulate` needs this iteration,
        drawn in this order from ``ctx.generator`` (default none)."""
        return []

    def epoch_end(self, state: Mapping[str, Any], epoch: int) -> Mapping[str, Any]:
        """Method state after epoch ``epoch`` ends (default unchanged)."""
        return state

    def num_phases(self) -> int:
        """Optimizer steps per iteration (default 1)."""
        return 1

    def phase_params(self, phase: int) -> tuple[str, ...] | None:
        """Name prefixes of the parameters phase ``phase`` trains (``None``: all of them).

        Parameters outside it get no gradient in that phase, so the optimizer leaves them
        alone (no weight decay, no momentum), as ``zero_grad(set_to_none=True)`` does.
        """
        return None

    # ------------------------------------------------------------ derived imperative protocol
    @property
    def fstate(self) -> dict[str, Any]:
        return self.__dict__.setdefault("_fstate", {})

    @fstate.setter
    def fstate(self, value: Mapping[str, Any]) -> None:
        self.__dict__["_fstate"] = dict(value)

    def setup(self, ctx: LearnerContext) -> None:
        self.check_modalities(ctx.modality_names)
        self.ctx = ctx
        self.share = ctx.batch_budget / len(ctx.modalities)
        self.model = self.build_model(ctx).to(ctx.device)
        self.optimizer = build_optimizer(self.model.parameters(), **self.opt_kwargs)
        self.fstate = self.initial_state(ctx)
        # The model's parameters, listed once per run: the step reads them every iteration, and
        # walking the module tree each time costs more than a small model's arithmetic.
        self.__dict__["_named_params"] = (self.model, list(self.model.named_parameters()))

    def step_info(self, batch: Batch, phase: int = 0) -> StepInfo:
        return StepInfo(batch.epoch, batch.iteration, self.ctx.iters_per_epoch, phase)

    def draw_noise(self, info: StepInfo, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """This iteration's noise from ``generator`` (default the run's ``ctx.generator``)."""
        shapes = self.noise_shapes(self.model, info)
        if not shapes:
            return {}
        ref = self._parameters_of_model()[0][1]
        gen = generator if generator is not None else self.ctx.generator
        sizes = [math.prod(shape) for _, shape in shapes]
        if ref.device.type != "cpu" or any(size % 16 for size in sizes):
            return {name: torch.randn(shape, generator=gen, device=ref.device, dtype=ref.dtype)
                    for name, shape in shapes}
        # One draw for every tensor, then split: the batched engine draws each run's noise every
        # iteration, and one call per tensor cost more than the rest of the hook. On the CPU,
        # randn fills blocks of 16 values, so with sizes that are multiples of 16 (every MLP
        # here) the values are those of one draw per tensor; otherwise draw per tensor, as before.
        return split_noise(torch.randn(sum(sizes), generator=gen, device=ref.device, dtype=ref.dtype), shapes)

    def noise_block(self, info: StepInfo, n: int, out: Tensor | None = None) -> Tensor | None:
        """The noise of ``n`` consecutive iterations from ``info`` on, as one ``[n, total]`` draw
        from ``ctx.generator``, or ``None`` where that would not equal ``n`` calls of
        :meth:`draw_noise` (the batched engine then draws per iteration).

        On the CPU, ``torch.randn`` fills blocks of 16 values, so one draw of ``n x total`` values
        is ``n`` draws of ``total`` in a row exactly when ``total`` is a multiple of 16 (every MLP
        here: 12,544 values per OGM-GE iteration); a CUDA generator's stream depends on the calls.
        The noise's shapes must not change within the block (a segment never crosses an epoch).
        ``out``: a contiguous ``[n, total]`` tensor to draw into (the engine's slice for this run).
        """
        shapes = self.noise_shapes(self.model, info)
        sizes = [math.prod(shape) for _, shape in shapes]
        total = sum(sizes)
        ref = self._parameters_of_model()[0][1] if shapes else None
        if ref is None or any(size % 16 for size in sizes) or ref.device.type != "cpu":
            return None  # draw_noise draws per tensor there: so does the engine
        infos = [StepInfo(info.epoch, info.iteration + i, info.iters_per_epoch, info.phase) for i in range(1, n)]
        if any(self.noise_shapes(self.model, later) != shapes for later in infos):
            return None
        return torch.randn(n * total, generator=self.ctx.generator, dtype=ref.dtype,
                           out=None if out is None else out.view(-1)).view(n, total)

    def _parameters_of_model(self) -> list[tuple[str, nn.Parameter]]:
        """``named_parameters()`` of ``self.model``, listed once per :meth:`setup`."""
        cached = self.__dict__.get("_named_params")
        if cached is None or cached[0] is not self.model:
            cached = self.__dict__["_named_params"] = (self.model, list(self.model.named_parameters()))
        return cached[1]

    def has_hook(self) -> bool:
        return type(self).modulate is not FunctionalLearner.modulate

    def train_step(self, batch: Batch) -> StepOutput:
        """The imperative step, derived: per phase ``loss`` -> ``backward`` -> ``modulate`` -> step."""
        logits: dict[str, Tensor] = {}
        losses: dict[str, Tensor] = {}
        extras: dict[str, Tensor] = {}
        phases = self.num_phases()
        totals = []
        hook = self.has_hook()
        for phase in range(phases):
            info = self.step_info(batch, phase)
            loss, aux = self.loss(self.model, batch, self.fstate, info)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            state = aux.get("state", self.fstate)
            if hook:
                named = {n: p for n, p in self._parameters_of_model() if p.grad is not None}
                grads = {n: g for n, p in named.items() if (g := p.grad) is not None}
                noise = self.draw_noise(info)
                with torch.no_grad():
                    grads, state = self.modulate(self.model, grads, batch, aux, state, info, noise)
                for n, p in named.items():
                    p.grad = grads[n]
            self.optimizer.step()
            self.fstate = state
            logits.update(aux["logits"])
            step_losses = dict(aux["losses"])
            totals.append(step_losses.pop("total"))
            losses.update(step_losses)
            extras.update(aux.get("extras", {}))
        total = totals[0] if phases == 1 else torch.stack(totals).sum()
        self.count_iterations(1)
        return StepOutput({m: z.detach() for m, z in logits.items()},
                          {"total": total.detach(), **{k: v.detach() for k, v in losses.items()}}, extras)

    def on_epoch_end(self, epoch: int) -> None:
        self.fstate = self.epoch_end(self.fstate, epoch)

    def count_iterations(self, n: int) -> None:
        """Host-side bookkeeping after ``n`` iterations trained (by :meth:`train_step` or the
        batched engine); default nothing."""
