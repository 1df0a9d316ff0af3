"""K independent training runs of one configuration, trained in the same kernels.

:class:`BatchedRuns` takes K :class:`~mmenv.env.DUSEnv` objects built alike (same data,
learner class and settings) and trains them *together*: their parameters, momentum
buffers and method states are stacked along a leading axis, and every iteration runs the
learner's own functional step (:mod:`mmenv.learners.functional`) for all K runs at once
under ``torch.func.vmap`` (each run's parameters swapped into the model, as ``functional_call``
does), one backward through the stacked parameters, and
``torch.optim``'s functional SGD on the stacked tensors (its fused kernel where that is exact).

What stays per run, so that run k equals ``DUSEnv`` with the same seed and actions (to
float rounding) whatever K is:

* reset, seeding, model initialisation and the probe observation: each env's own ``reset``;
* sample indices: drawn from run k's sampler and generator, a segment at a time, in the
  same order as the single environment;
* randomness a learner's hook needs (OGM-GE's noise): drawn per run from run k's
  generator outside ``vmap``, in the same order as the single step;
* batch sizes: each run's own; a modality's batch is padded to the widest run with rows
  of weight 0 (``Batch.weights``), which every loss, score and statistic ignores exactly;
* the discrepancy, training accuracy and losses: folded into run k's own tracker in the
  same blocks as :class:`~mmenv.step_stats.StepStats`;
* everything after training (reward, info, evaluation): ``DUSEnv.finish_step`` of run k,
  with run k's model holding slot k's parameters (copied back every step).

Supported: :class:`~mmenv.learners.functional.FunctionalLearner` learners (every built-in
one, and plug-ins written in that form) with SGD, tensor data sets (features, sequences,
small images), no autocast, encoders without buffers (no batch norm: the ResNets are
refused). Anything else raises :class:`EngineError`; callers fall back to one run at a time.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import vmap
from torch.optim.sgd import sgd
from torch.utils._pytree import tree_map

from ..datasets.base import TensorSplit
from ..discrepancy import true_class_probability
from ..env import SEGMENT_ITERS, DUSEnv
from ..errors import MMEnvError
from ..learners.base import Batch
from ..learners.functional import FunctionalLearner, StepInfo, split_noise
from ..sampling import SampleOrder

__all__ = ["BatchedRuns", "EngineError", "engine_support"]

#: Iterations whose statistics are folded together (as StepStats' default block).
STATS_BLOCK = 64
#: Values per run a stacked tensor needs, in whole blocks, to take the fused SGD kernel (see
#: ``BatchedRuns._sgd``): a multiple of the widest CPU vector of floats (AVX-512: 16).
_FUSED_BLOCK = 16


class EngineError(MMEnvError, ValueError):
    """A configuration the batched engine cannot train (the caller runs it one run at a time)."""


def engine_support(env: DUSEnv) -> str | None:
    """``None`` if the engine can train ``env``'s configuration, else the reason it cannot."""
    learner = env.learner
    if not isinstance(learner, FunctionalLearner):
        return (f"learner {learner.name!r} implements only the imperative protocol (train_step); write it as a "
                "FunctionalLearner (loss/modulate) to train it batched")
    opt = getattr(learner, "opt_kwargs", {}) or {}
    if opt.get("optimizer", "sgd") != "sgd":
        return f"the engine implements SGD only, got optimizer={opt.get('optimizer')!r}"
    if not isinstance(env.dataset.train, TensorSplit):
        return "the engine needs a tensor data set (inputs in memory), not decoded media"
    if env.autocast_dtype is not None:
        return "autocast_dtype is not supported by the engine"
    model = getattr(learner, "model", None)
    if isinstance(model, nn.Module) and any(True for _ in model.buffers()):
        return "the model has buffers (e.g. batch norm), which the engine does not stack"
    return None


def _same_data(a: DUSEnv, b: DUSEnv) -> bool:
    """The same training data: the same tensors (cheap), else the same data fingerprint."""
    ta, tb = a.dataset.train, b.dataset.train
    if ta is tb or (isinstance(ta, TensorSplit) and isinstance(tb, TensorSplit) and ta.labels is tb.labels
                    and all(ta.inputs[m] is tb.inputs[m] for m in a.modalities)):
        return True
    return a.modalities == b.modalities and a.data_fingerprint == b.data_fingerprint


class _Swap:
    """Puts one run's parameters into a model for one call, as ``torch.func.functional_call`` does.

    The slots (owning module, attribute, parameter name; tied parameters included) are listed once,
    and a call assigns the owners' ``_parameters`` entries directly: ``functional_call`` re-resolves
    every name through ``setattr`` per call, about 0.2 ms of each of the two calls an iteration
    makes (a sixth of an iteration of 8 runs of the default MLP).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        owners = dict(model.named_modules(remove_duplicate=False))
        canonical = {id(p): n for n, p in model.named_parameters()}
        self.slots: list[tuple[nn.Module, str, str]] = []
        for full, p in model.named_parameters(remove_duplicate=False):
            owner, _, leaf = full.rpartition(".")
            self.slots.append((owners[owner], leaf, canonical[id(p)]))

    def __call__(self, params: Mapping[str, Tensor], fn: Any, *args: Any) -> Any:
        saved = [module._parameters[leaf] for module, leaf, _ in self.slots]
        try:
            for module, leaf, name in self.slots:
                module._parameters[leaf] = params[name]  # type: ignore[assignment]
            return fn(self.model, *args)
        finally:
            for (module, leaf, _), value in zip(self.slots, saved):
                module._parameters[leaf] = value


def _takes_out(learner: Any) -> bool:
    """Whether ``learner.noise_block`` accepts ``out`` (the base method does; an override may not)."""
    return _accepts_out(type(learner).noise_block)


@functools.cache
def _accepts_out(method: Any) -> bool:
    """Read once per method: inspecting a signature per run and segment is needless work."""
    try:
        params = inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
    return "out" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


class BatchedRuns:
    """K runs (``envs``) trained in one batch; see the module docstring.

    The envs are reset by their own ``reset``; call :meth:`load` for the runs just reset
    (all of them the first time), then :meth:`step` for runs at the same iteration.
    """

    def __init__(self, envs: Sequence[DUSEnv]) -> None:
        if not envs:
            raise EngineError("BatchedRuns needs at least one environment")
        self.envs = list(envs)
        reason = engine_support(self.envs[0])
        if reason is not None:
            raise EngineError(reason)
        first = self.envs[0]
        for env in self.envs[1:]:
            if type(env.learner) is not type(first.learner) or not _same_data(env, first):
                raise EngineError("every run of a batch needs the same learner class and the same data set object")
        self.template: FunctionalLearner = first.learner  # type: ignore[assignment]
        opt = dict(getattr(self.template, "opt_kwargs", {}) or {})
        self.lr = float(opt.get("lr", 1e-2))
        self.momentum = float(opt.get("momentum", 0.9))
        self.weight_decay = float(opt.get("weight_decay", 1e-4))
        self.params: dict[str, Tensor] | None = None
        self.buffers: dict[str, Tensor] | None = None
        self.state: Any = None
        self.names: list[str] = []
        self._hook = self.template.has_hook()
        self._fused_device = first.device.type == "cpu"  # see _sgd
        self._sgd_groups: dict[tuple[str, ...], tuple[list[str], list[str]]] = {}  # names -> (fused, foreach)
        self._epoch_hook = type(self.template).epoch_end is not FunctionalLearner.epoch_end
        self._order_hook = type(first.sample_order).on_epoch_start is not SampleOrder.on_epoch_start

    @property
    def num_runs(self) -> int:
        return len(self.envs)

    # ------------------------------------------------------------ slots
    def load(self, runs: Sequence[int] | None = None) -> None:
        """Copy the (freshly reset) learners of ``runs`` (default all) into their slots."""
        runs = list(range(self.num_runs)) if runs is None else list(runs)
        learners = [self._learner(k) for k in range(self.num_runs)]
        with torch.no_grad():
            if self.params is None:
                if len(runs) != self.num_runs:
                    raise EngineError("the first load must cover every run")
                self.names = [n for n, _ in learners[0].model.named_parameters()]
                per = [dict(lr.model.named_parameters()) for lr in learners]
                self.params = {n: torch.stack([p[n].detach() for p in per]).contiguous() for n in self.names}
                self.buffers = {n: torch.zeros_like(t) for n, t in self.params.items()}
                self.state = tree_map(lambda *xs: torch.stack([x.detach() for x in xs]).contiguous(),
                                      *[lr.fstate for lr in learners]) if learners[0].fstate else {}
                return
            assert self.buffers is not None
            for k in runs:
                own = dict(learners[k].model.named_parameters())
                for n in self.names:
                    self.params[n][k].copy_(own[n])
                    self.buffers[n][k].zero_()
                if self.state:
                    def put(slot: Tensor, value: Tensor, k: int = k) -> None:
                        slot[k].copy_(value)
                    tree_map(put, self.state, learners[k].fstate)

    def sync(self, runs: Sequence[int] | None = None) -> None:
        """Copy slots ``runs`` (default all) back into their learners (model, momentum, method state)."""
        if self.params is None or self.buffers is None:
            return
        runs = list(range(self.num_runs)) if runs is None else list(runs)
        with torch.no_grad():
            for k in runs:
                learner = self._learner(k)
                for n, p in learner.model.named_parameters():
                    p.copy_(self.params[n][k])
                    learner.optimizer.state[p]["momentum_buffer"] = self.buffers[n][k].clone()
                if self.state:
                    learner.fstate = tree_map(lambda t, k=k: t[k].clone(), self.state)
                self.envs[k]._val_memo = None  # the model now holds the slot's weights

    def _learner(self, k: int) -> FunctionalLearner:
        return self.envs[k].learner  # type: ignore[return-value]

    # ------------------------------------------------------------ one environment step
    def step(self, runs: Sequence[int], sizes: Sequence[Sequence[int]]) -> np.ndarray:
        """Train runs ``runs`` (all at the same iteration) for one environment step with their
        per-modality batch ``sizes``; returns each run's packed step read (the single env's
        ``[observation (m), train accuracy (m), mean losses]``) as rows of one array, and the
        loss keys as :attr:`last_keys`."""
        if self.params is None:
            raise EngineError("call load() after the environments' reset, before step()")
        runs = list(runs)
        envs = [self.envs[k] for k in runs]
        env0 = envs[0]
        if len({env.iteration for env in envs}) != 1:
            raise EngineError("runs trained together must be at the same iteration")
        device, mods = env0.device, env0.modalities
        m = len(mods)
        full = runs == list(range(self.num_runs))
        sel = torch.tensor(runs, device=device)
        # Internal invariant: reset() stacks the parameters and buffers before any step.
        assert self.params is not None and self.buffers is not None
        params = self.params if full else {n: t[sel] for n, t in self.params.items()}
        buffers = self.buffers if full else {n: t[sel] for n, t in self.buffers.items()}
        state = self.state if (full or not self.state) else tree_map(lambda t: t[sel], self.state)
        n_iters = env0.iterations_next_step()
        size_t = torch.tensor([list(s) for s in sizes], dtype=torch.float32, device=device)  # [g, m]
        width = [max(int(s[j]) for s in sizes) for j in range(m)]
        weights = {mod: (torch.arange(width[j], device=device)[None, :] < size_t[:, j:j + 1]).float()
                   for j, mod in enumerate(mods)}
        sum_mode = env0.tracker.mode == "sum"
        stats = _Stats(envs, sum_mode)
        done = 0
        while done < n_iters:
            if env0.epoch != env0._epoch_started:
                stats.flush()
                if self._order_hook:
                    self._sync_subset(runs, params, buffers, state)
            epoch = [env.start_epoch_if_due() for env in envs][0]
            seg = min(n_iters - done, (epoch + 1) * env0.iters_per_epoch - env0.iteration, SEGMENT_ITERS)
            params, state = self._segment(envs, sizes, width, weights, size_t, seg, epoch, params, buffers, state,
                                          stats)
            for env in envs:
                env.iteration += seg
            if env0.iteration % env0.iters_per_epoch == 0 and self._epoch_hook:
                state = vmap(lambda s, e=epoch: self.template.epoch_end(s, e), randomness="error")(state)
            done += seg
        stats.flush()
        if not full:
            with torch.no_grad():
                for n in self.names:
                    self.params[n][sel] = params[n]
                    self.buffers[n][sel] = buffers[n]
                if self.state:
                    def put(slot: Tensor, value: Tensor) -> None:
                        slot[sel] = value
                    tree_map(put, self.state, state)
        else:
            self.params, self.state = params, state
        for env in envs:
            env.learner.count_iterations(n_iters)  # type: ignore[attr-defined]
        self.sync(runs)
        seen = size_t * n_iters
        obs = torch.stack([env.tracker.observation.float() for env in envs])
        keys = list(stats.loss_sums)
        self.last_keys = keys
        packed = torch.cat([obs, stats.correct / seen.clamp(min=1.0),
                            torch.stack([stats.loss_sums[key].float() for key in keys], 1) / n_iters], 1)
        return packed.cpu().numpy()  # the one host synchronisation of the step

    def _sync_subset(self, runs: list[int], params: Mapping[str, Tensor], buffers: Mapping[str, Tensor],
                     state: Any) -> None:
        """Copy the group's current slots into its learners (a sample order scores with them)."""
        with torch.no_grad():
            for i, k in enumerate(runs):
                learner = self._learner(k)
                for n, p in learner.model.named_parameters():
                    p.copy_(params[n][i])
                if state:
                    learner.fstate = tree_map(lambda t, i=i: t[i].clone(), state)

    def _segment(self, envs: list[DUSEnv], sizes: Sequence[Sequence[int]], width: list[int],
                 weights: dict[str, Tensor], size_t: Tensor, n: int, epoch: int, params: dict[str, Tensor],
                 buffers: dict[str, Tensor], state: Any, stats: _Stats) -> tuple[dict[str, Tensor], Any]:
        """``n`` iterations of one epoch for the group (indices drawn per run first, as the single env)."""
        env0 = envs[0]
        device, mods = env0.device, env0.modalities
        g = len(envs)
        train = env0.dataset.train
        assert isinstance(train, TensorSplit)  # internal invariant: the engine refuses other splits at build
        drawn = [env.sampler.sample_block(list(s), epoch, n) for env, s in zip(envs, sizes)]
        paired = [p for p, _ in drawn]
        p_max = max(paired)
        index = {}
        for j, mod in enumerate(mods):
            flat = torch.zeros(n, g, width[j], dtype=torch.long, device=device)
            for k, (_, idx) in enumerate(drawn):
                a = int(sizes[k][j])
                if a:
                    flat[:, k, :a] = idx[mod]
            index[mod] = flat
        inputs = {mod: train.gather(mod, index[mod].reshape(-1)).view(n, g, width[j], *train.inputs[mod].shape[1:])
                  for j, mod in enumerate(mods)}
        labels = {mod: train.labels[index[mod]] for mod in mods}
        paired_w = (torch.arange(p_max, device=device)[None, :]
                    < torch.tensor(paired, device=device, dtype=torch.float32)[:, None]).float()
        masks = ({mod: torch.ones(g, width[j], dtype=torch.bool, device=device) for j, mod in enumerate(mods)}
                 if env0.sample_order.single_modality_batches(epoch) else None)
        learners = [env.learner for env in envs]
        template = self.template
        ipe = env0.iters_per_epoch
        iteration0 = env0.iteration
        host = _Swap(template.model)
        # One-phase learners with noise draw a segment's noise per run in one call ([g, n, total]).
        block = self._noise_block(learners, StepInfo(epoch, iteration0, ipe, 0), n) if template.num_phases() == 1 \
            else None
        for i in range(n):
            parts: dict[str, Any] = {"inputs": {mod: inputs[mod][i] for mod in mods}, "labels": {mod: labels[mod][i] for mod in mods},
                     "indices": {mod: index[mod][i] for mod in mods}, "weights": weights, "paired_weight": paired_w}
            if masks is not None:
                parts["masks"] = masks
            logits: dict[str, Tensor] = {}
            losses: dict[str, Tensor] = {}
            totals = []
            phases = template.num_phases()
            for phase in range(phases):
                info = StepInfo(epoch, iteration0 + i, ipe, phase)
                prefixes = template.phase_params(phase)
                train_names = [nm for nm in self.names if prefixes is None or nm.startswith(tuple(prefixes))]
                noise = self._noise(learners, info) if block is None else self._block_row(block, i, info)
                grads, aux, state = self._phase(host, info, p_max, train_names, params, state, parts, noise)
                with torch.no_grad():
                    self._sgd(train_names, params, grads, buffers)
                logits.update(aux["logits"])
                step_losses = dict(aux["losses"])
                totals.append(step_losses.pop("total"))
                losses.update(step_losses)
            total = totals[0] if phases == 1 else torch.stack(totals).sum(0)
            stats.add(logits, parts["labels"], weights, size_t, {"total": total, **losses})
        return params, state

    def _sgd(self, names: list[str], params: Mapping[str, Tensor], grads: Mapping[str, Tensor],
             buffers: Mapping[str, Tensor]) -> None:
        """One SGD step (momentum, weight decay) of the stacked tensors ``names``, in place.

        On the CPU, tensors of whole 16-value blocks per run take torch's fused kernel (one pass
        over each tensor, about a third of the foreach form's time, which was a fifth of an
        iteration of 32 runs); the rest take the foreach form. The fused kernel computes a
        tensor's last partial vector apart, with other rounding, so a run's values would depend
        on its place in the stack, i.e. on K; with whole blocks per run no run has such a tail, and
        both forms give the same values bit for bit (tests/test_engine.py).
        """
        key = tuple(names)
        if key not in self._sgd_groups:   # the stacked tensors' dtypes and sizes never change
            fused = [nm for nm in names if self._fused_device and self._fused_ok(params[nm])]
            self._sgd_groups[key] = (fused, [nm for nm in names if nm not in fused])
        fused, rest = self._sgd_groups[key]
        settings: dict[str, Any] = dict(weight_decay=self.weight_decay, momentum=self.momentum, lr=self.lr,
                                        dampening=0.0, nesterov=False, maximize=False)
        if fused:
            # The fused kernel reads a gradient as laid out like its parameter: autograd may hand
            # back a transposed one (torch 2.13 then takes silently wrong steps), so copy those.
            sgd([params[nm] for nm in fused], [grads[nm].contiguous() for nm in fused],
                [buffers[nm] for nm in fused], fused=True, **settings)
        if rest:
            sgd([params[nm] for nm in rest], [grads[nm] for nm in rest], [buffers[nm] for nm in rest],
                foreach=True, **settings)

    @staticmethod
    def _fused_ok(stacked: Tensor) -> bool:
        # 16 values fill the widest vector of float32 (and float64); narrower types have wider ones.
        return (stacked.dtype in (torch.float32, torch.float64) and stacked.is_contiguous()
                and (stacked[0].numel() % _FUSED_BLOCK) == 0)

    def _noise_block(self, learners: Sequence[Any], info: StepInfo, n: int) -> Tensor | None:
        """The segment's noise, ``[runs, n, total]`` (each run's from its own generator, in the
        single step's order, drawn straight into its slice), or ``None`` when some run cannot draw
        it as one block."""
        shapes = self.template.noise_shapes(self.template.model, info)
        if not shapes:
            return None
        ref = self.params[self.names[0]] if self.params else None
        assert ref is not None  # internal invariant: load() stacked the parameters before any step
        total = sum(math.prod(shape) for _, shape in shapes)
        block = torch.empty(len(learners), n, total, dtype=ref.dtype, device=ref.device)
        for k, learner in enumerate(learners):
            # A plug-in may override noise_block without ``out`` (its first form): it draws elsewhere.
            flat = learner.noise_block(info, n, out=block[k]) if _takes_out(learner) else learner.noise_block(info, n)
            if flat is None:
                return None
            if flat.data_ptr() != block[k].data_ptr():
                block[k].copy_(flat.reshape(n, total))
        return block

    def _block_row(self, block: Tensor, i: int, info: StepInfo) -> dict[str, Tensor]:
        """Iteration ``i``'s noise of every run, as :meth:`_noise` gives it (views of ``block``)."""
        return split_noise(block[:, i], self.template.noise_shapes(self.template.model, info))

    def _noise(self, learners: Sequence[Any], info: StepInfo) -> dict[str, Tensor]:
        """Each run's noise from its own generator (outside vmap), stacked."""
        if not self.template.noise_shapes(self.template.model, info):
            return {}
        per = [lr.draw_noise(info) for lr in learners]
        return {name: torch.stack([d[name] for d in per]) for name in per[0]}

    def _phase(self, host: _Swap, info: StepInfo, p_max: int, train_names: list[str], params: dict[str, Tensor],
               state: Any, parts: dict[str, Any], noise: dict[str, Tensor]) -> tuple[dict[str, Tensor], Any, Any]:
        """One phase for the group: the learner's loss for every run under ``vmap``, one ordinary
        backward through the stacked parameters (run k's loss depends on slot k only, so the
        gradient of the sum is every run's own gradient), then the hook under ``vmap``."""

        def make_batch(parts: dict[str, Any]) -> Batch:
            return Batch(inputs=parts["inputs"], labels=parts["labels"], indices=parts["indices"], num_paired=p_max,
                         epoch=info.epoch, iteration=info.iteration, masks=parts.get("masks"),
                         weights=parts["weights"], paired_weight=parts["paired_weight"])

        def forward(p: dict[str, Tensor], st: Any, pt: dict[str, Any]):
            loss, aux = host(p, self.template.loss, make_batch(pt), st, info)
            return loss, aux

        leaves = {nm: params[nm].detach().requires_grad_(True) for nm in train_names}
        merged = {**params, **leaves}
        loss, aux = vmap(forward, randomness="error")(merged, state, parts)
        grad_list = torch.autograd.grad(loss.sum(), [leaves[nm] for nm in train_names])
        grads = dict(zip(train_names, grad_list))
        aux = tree_map(lambda t: t.detach() if isinstance(t, Tensor) else t, aux)
        new_state = aux.get("state", state)
        if self._hook:
            def hook(p: dict[str, Tensor], g: dict[str, Tensor], pt: dict[str, Any], ax: Any, st: Any,
                     nz: dict[str, Tensor]):
                return host(p, self.template.modulate, g, make_batch(pt), ax, st, info, nz)
            with torch.no_grad():
                grads, new_state = vmap(hook, randomness="error")(params, grads, parts, aux, new_state, noise)
        return grads, {"logits": aux["logits"], "losses": aux["losses"]}, new_state


class _Stats:
    """Per-run discrepancy, correct counts and loss sums of a group, folded in StepStats' blocks."""

    def __init__(self, envs: list[DUSEnv], sum_mode: bool) -> None:
        self.envs = envs
        self.sum_mode = sum_mode
        self.mods = envs[0].modalities
        device = envs[0].device
        self.correct = torch.zeros(len(envs), len(self.mods), device=device)
        self.loss_sums: dict[str, Tensor] = {}
        self._s: list[Tensor] = []
        self._hits: list[Tensor] = []
        self._losses: list[dict[str, Tensor]] = []

    def add(self, logits: Mapping[str, Tensor], labels: Mapping[str, Tensor], weights: Mapping[str, Tensor],
            size_t: Tensor, losses: Mapping[str, Tensor]) -> None:
        s_cols, hits = [], []
        for j, mod in enumerate(self.mods):
            z = logits[mod].float()
            y = labels[mod]
            w = weights[mod]
            p = true_class_probability(z, y) * w  # [g, A]
            s = p.sum(1)
            s_cols.append(s if self.sum_mode else s / size_t[:, j])
            hits.append(((z.argmax(-1) == y).float() * w).sum(1))
        self._s.append(torch.stack(s_cols, 1))
        self._hits.append(torch.stack(hits, 1))
        self._losses.append({k: v.detach() for k, v in losses.items()})
        if len(self._s) >= STATS_BLOCK:
            self.flush()

    def flush(self) -> None:
        if not self._s:
            return
        s = torch.stack(self._s)  # [T, g, m]
        for k, env in enumerate(self.envs):
            env.tracker.fold(s[:, k])
        self.correct = self.correct + torch.stack(self._hits).sum(0)
        for key in self._losses[0]:
            block = torch.stack([it[key] for it in self._losses]).float().sum(0)
            self.loss_sums[key] = self.loss_sums[key] + block if key in self.loss_sums else block
        self._s, self._hits, self._losses = [], [], []
