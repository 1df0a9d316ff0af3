"""``DUSVectorEnv``: K independent DUS training runs stepped together in one process.

``gymnasium.vector.SyncVectorEnv`` of K :class:`~mmenv.env.DUSEnv` runs K small models
one after the other, so on a CPU (or a GPU) the cost is K times the per-operation
overhead of one tiny model. This environment stacks the K models' parameters along a
leading axis (``[K, out, in]`` weights) and trains them with *grouped batched matmuls*
(``torch.baddbmm``): one kernel per layer for all K runs. Each run keeps its own seed,
model initialisation, sampler stream, action and episode; only the arithmetic is batched.

How it reproduces the single environment (sub-environment k == ``DUSEnv`` with the same
seed and actions, up to float rounding):

* **Initial parameters**: every sub-environment is a real ``DUSEnv`` and is reset by its
  own ``reset`` (the same ``np_random`` seed derivation, the same ``fork_rng`` +
  ``manual_seed`` model construction, the same probe observation); its parameters are
  then copied into slot k of the stacked tensors.
* **Sampling**: slot k draws its indices from sub-environment k's own sampler and
  ``torch.Generator``, with its own batch sizes, so the draws are the same.
* **Unequal batch sizes**: each modality's batch is padded to the largest size across
  the K runs and every row carries a weight (1 real, 0 padding). Losses, discrepancy and
  accuracy are weighted sums, so padding rows contribute exactly zero (their gradient
  is zero too) and every loss equals the unpadded one.
* **Optimiser**: ``torch.optim.SGD`` (momentum, dampening 0, weight decay, no Nesterov)
  re-implemented on the stacked tensors with the same elementwise operations
  (``d = g + wd * p``; ``buf = momentum * buf + d``; ``p -= lr * buf``). A fresh slot
  starts from a zero buffer, which equals SGD's first-step ``buf = d`` exactly.
* **Autoreset**: Gymnasium 1.x's default ``AutoresetMode.NEXT_STEP``: the step after an
  episode ends resets that sub-environment (its action is ignored, reward 0).

Supported: the ``baseline`` learner with SGD, ``fusion_input="paired"``, MLP encoders
(feature inputs), tensor data sets and sample orders without an ``on_epoch_start`` hook.
Anything else raises :class:`VectorEnvError`; use ``gymnasium.vector.SyncVectorEnv``
(``gymnasium.make_vec(..., vectorization_mode="sync")``) for those.

Example::

    import gymnasium as gym
    import mmenv

    envs = gym.make_vec("mmenv/DUS-v0", num_envs=8, vectorization_mode="vector_entry_point", epochs=3)
    obs, infos = envs.reset(seed=0)          # obs: (8, m); slot k is seeded with 0 + k
    obs, rewards, terms, truncs, infos = envs.step(envs.action_space.sample())
"""

from __future__ import annotations

import copy
from typing import Any, Mapping, Sequence, cast

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from torch import Tensor, nn
from torch.nn import functional as F
from torch.optim.sgd import sgd

from .datasets import make_dataset
from .datasets.base import TensorSplit
from .discrepancy import true_class_probability
from .env import DUSEnv, grad_mode_independent
from .errors import MMEnvError
from .learners import Learner, make_learner
from .learners.baseline import BaselineLearner
from .models.multimodal import MultimodalModel
from .sampling import SampleOrder

__all__ = ["DUSVectorEnv", "VectorEnvError", "VectorFallbackWarning", "make_vector_env"]

_SYNC_HINT = ("use gymnasium.vector.SyncVectorEnv instead: "
              "gymnasium.make_vec('mmenv/DUS-v0', num_envs=K, vectorization_mode='sync', ...)")


class VectorEnvError(MMEnvError, ValueError):
    """A configuration the batched vector environment cannot run."""


# ---------------------------------------------------------------------- the batched model
def _linear_plan(layer: nn.Module, index: Mapping[int, int], where: str) -> tuple:
    if type(layer) is not nn.Linear or layer.bias is None:
        raise VectorEnvError(f"{where}: only nn.Linear layers with bias can be batched, got {type(layer).__name__}; "
                             + _SYNC_HINT)
    return ("linear", index[id(layer.weight)], index[id(layer.bias)])


def plan_model(model: MultimodalModel) -> tuple[list[tuple[str, nn.Parameter]], dict[str, Any]]:
    """Describe a Baseline ``MultimodalModel`` as a list of batched operations.

    Returns the parameters in ``model.parameters()`` order and a plan: per modality the
    encoder's operations (``flatten``, ``linear``, ``relu``), the unimodal head and the
    fusion head, each ``linear`` naming its weight and bias by parameter position.
    """
    params = list(model.named_parameters())
    index = {id(p): i for i, (_, p) in enumerate(params)}
    plan: dict[str, Any] = {"encoders": {}, "heads": {}}
    for m in model.modalities:
        enc = model.encoders[m]
        net = getattr(enc, "net", None)
        if not isinstance(net, nn.Sequential):
            raise VectorEnvError(f"encoder of modality {m!r} ({type(enc).__name__}) is not an MLP; " + _SYNC_HINT)
        ops = []
        for layer in net:
            if isinstance(layer, nn.Flatten):
                ops.append(("flatten",))
            elif type(layer) is nn.ReLU:
                ops.append(("relu",))
            else:
                ops.append(_linear_plan(layer, index, f"encoder of modality {m!r}"))
        plan["encoders"][m] = ops
        plan["heads"][m] = _linear_plan(model.heads[m], index, f"head of modality {m!r}")
    if model.fusion is None:
        raise VectorEnvError("the model has no fusion head; " + _SYNC_HINT)
    plan["fusion"] = _linear_plan(model.fusion, index, "fusion head")
    return params, plan


def _blinear(x: Tensor, params: Sequence[Tensor], op: tuple) -> Tensor:
    """``x @ W^T + b`` for K stacked layers: x ``[K, B, in]``, W ``[K, out, in]``, b ``[K, out]``."""
    w, b = params[op[1]], params[op[2]]
    return torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))


def batched_encode(params: Sequence[Tensor], ops: Sequence[tuple], x: Tensor) -> Tensor:
    """Run one modality's stacked encoder on ``x`` ``[K, B, ...]``."""
    k, b = x.shape[0], x.shape[1]
    h = x.reshape(k, b, -1)
    for op in ops:
        if op[0] == "linear":
            h = _blinear(h, params, op)
        elif op[0] == "relu":
            h = torch.relu(h)
        # "flatten": inputs are already flat per row
    return h


# ---------------------------------------------------------------------- the environment
class DUSVectorEnv(VectorEnv):
    """K independent :class:`~mmenv.env.DUSEnv` runs with their models trained in one batch.

    Args:
        num_envs: K.
        **env_kwargs: ``DUSEnv`` arguments, the same for every run (a data set given by
            name is built once and shared). A ``Learner`` object is deep-copied per run.

    Observation/action spaces are the single environment's batched K times
    (``(K, m)``). ``infos`` follow Gymnasium's vector convention (``info[key][k]`` with a
    ``info["_" + key]`` mask). ``get_learner(k)`` returns run k's learner with its
    model holding the current parameters.
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, **env_kwargs: Any) -> None:
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        kwargs = dict(env_kwargs)
        kwargs.pop("max_episode_steps", None)  # passed by make_vec for specs with a limit
        dataset = kwargs.pop("dataset", "synthetic")
        if isinstance(dataset, str):
            dataset = make_dataset(dataset, **dict(kwargs.pop("dataset_kwargs", None) or {}))
        learner = kwargs.pop("learner", "baseline")
        learner_kwargs = dict(kwargs.pop("learner_kwargs", None) or {})
        sample_order = kwargs.pop("sample_order", "shuffle")
        self.envs: list[DUSEnv] = []
        for _ in range(num_envs):
            run_learner = make_learner(learner, **learner_kwargs) if isinstance(learner, str) else copy.deepcopy(learner)
            order = copy.deepcopy(sample_order) if isinstance(sample_order, SampleOrder) else sample_order
            self.envs.append(DUSEnv(dataset=dataset, learner=run_learner, sample_order=order, **kwargs))
        self._check_supported(self.envs[0])

        first = self.envs[0]
        self.num_envs = num_envs
        self.modalities = first.modalities
        self.device = first.device
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = dict(self.metadata)
        self.autoreset_mode = AutoresetMode.NEXT_STEP
        lrn = cast(BaselineLearner, first.learner)  # checked by _check_supported
        opt: dict[str, Any] = dict(lrn.opt_kwargs)  # numbers, checked by the learner's constructor
        self.lr = float(opt["lr"])
        self.momentum = float(opt["momentum"])
        self.weight_decay = float(opt["weight_decay"])
        self.loss_scale = lrn.loss_scale
        self.unimodal_weight = lrn.unimodal_weight
        self.params: list[Tensor] | None = None  # stacked leaves [K, ...]
        self.momentum_buffers: list[Tensor] | None = None
        self.plan: dict[str, Any] | None = None
        self._autoreset = np.zeros(num_envs, dtype=np.bool_)
        self._obs = np.zeros((num_envs, len(self.modalities)), dtype=np.float32)

    @staticmethod
    def _check_supported(env: DUSEnv) -> None:
        learner = env.learner
        if type(learner) is not BaselineLearner:
            raise VectorEnvError(f"the batched vector environment supports the 'baseline' learner only, "
                                 f"got {learner.name!r}; " + _SYNC_HINT)
        if learner.opt_kwargs["optimizer"] != "sgd":
            raise VectorEnvError(f"the batched vector environment implements SGD only, got "
                                 f"optimizer={learner.opt_kwargs['optimizer']!r}; " + _SYNC_HINT)
        if learner.fusion_input != "paired":
            raise VectorEnvError(f"fusion_input={learner.fusion_input!r} is not batched (only 'paired'); " + _SYNC_HINT)
        if not isinstance(env.dataset.train, TensorSplit):
            raise VectorEnvError("the batched vector environment needs a tensor data set (features in memory); "
                                 + _SYNC_HINT)
        if any(spec.kind != "features" for spec in env.dataset.modalities):
            raise VectorEnvError("the batched vector environment supports feature inputs (MLP encoders) only; "
                                 + _SYNC_HINT)
        if type(env.sample_order).on_epoch_start is not SampleOrder.on_epoch_start:
            raise VectorEnvError(f"sample order {env.sample_order.name!r} scores samples at epoch start, which "
                                 "the batched environment does not support; " + _SYNC_HINT)
        if env.autocast_dtype is not None:
            raise VectorEnvError("autocast_dtype is not supported by the batched environment; " + _SYNC_HINT)
        if env.step_every != "epoch" and not isinstance(env.step_every, int):
            raise VectorEnvError(f"unsupported step_every {env.step_every!r}")

    # ------------------------------------------------------------------ parameters
    def _model(self, k: int) -> MultimodalModel:
        """Run k's model (a Baseline learner's, checked by _check_supported; built at reset)."""
        model = cast(BaselineLearner, self.envs[k].learner).model
        if model is None:
            raise RuntimeError("call reset() before stepping: the models are built at reset")
        return model

    def _stacked(self) -> tuple[list[Tensor], list[Tensor], dict[str, Any]]:
        """The stacked parameters, their momentum buffers and the model plan (built at the first reset)."""
        if self.params is None or self.momentum_buffers is None or self.plan is None:
            raise RuntimeError("call reset() before step()")
        return self.params, self.momentum_buffers, self.plan

    def _load_slot(self, k: int) -> None:
        """Copy run k's freshly built model into slot k (and zero its momentum)."""
        stacked_params, buffers, _ = self._stacked()
        with torch.no_grad():
            for stacked, buf, p in zip(stacked_params, buffers, self._model(k).parameters()):
                stacked[k].copy_(p)
                buf[k].zero_()

    def _build_stack(self) -> None:
        params, self.plan = plan_model(self._model(0))
        self.param_names = [name for name, _ in params]
        per_env = [list(self._model(k).parameters()) for k in range(self.num_envs)]
        self.params = [torch.stack([ps[i].detach() for ps in per_env]).requires_grad_(True)
                       for i in range(len(params))]
        self.momentum_buffers = [torch.zeros_like(p) for p in self.params]

    def get_learner(self, k: int) -> Learner:
        """Run k's learner, its model loaded with slot k's current parameters."""
        if self.params is not None:
            with torch.no_grad():
                for stacked, p in zip(self.params, self._model(k).parameters()):
                    p.copy_(stacked[k])
        return self.envs[k].learner

    # ------------------------------------------------------------------ gym API
    @grad_mode_independent
    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict | None = None):
        """Reset every run (or those in ``options["reset_mask"]``); ``seed`` int -> ``seed + k``."""
        k_all = self.num_envs
        if seed is None:
            seeds: list[int | None] = [None] * k_all
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + k for k in range(k_all)]
        else:
            seeds = list(seed)
            if len(seeds) != k_all:
                raise ValueError(f"got {len(seeds)} seeds for num_envs={k_all}")
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        mask = np.ones(k_all, dtype=np.bool_) if mask is None else np.asarray(mask, dtype=np.bool_)
        if mask.shape != (k_all,):
            raise ValueError(f"options['reset_mask'] must have shape ({k_all},), got {mask.shape}")
        infos: dict[str, Any] = {}
        for k in np.flatnonzero(mask):
            obs, info = self.envs[k].reset(seed=seeds[k], options=options or None)
            self._obs[k] = obs
            infos = self._add_info(infos, info, int(k))
            self._autoreset[k] = False
            if self.params is not None:
                self._load_slot(int(k))
        if self.params is None:
            if not mask.all():
                raise RuntimeError("the first reset must reset every sub-environment")
            self._build_stack()
        return self._obs.copy(), infos

    @grad_mode_independent
    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = np.asarray(actions)
        if actions.shape[0] != self.num_envs:
            raise ValueError(f"actions must have a leading dimension of num_envs={self.num_envs}, "
                             f"got shape {actions.shape}")
        if self.params is None:
            raise RuntimeError("call reset() before step()")
        k_all = self.num_envs
        rewards = np.zeros(k_all, dtype=np.float64)
        terms = np.zeros(k_all, dtype=np.bool_)
        truncs = np.zeros(k_all, dtype=np.bool_)
        infos: dict[str, Any] = {}
        per_info: dict[int, dict] = {}

        # NEXT_STEP autoreset: runs that ended last step are reset now and do not train.
        active = []
        for k in range(k_all):
            if self._autoreset[k]:
                self._obs[k], per_info[k] = self.envs[k].reset()
                self._load_slot(k)
            else:
                active.append(k)
        plans = {}
        for k in active:
            env = self.envs[k]
            proportions, sizes = env.batch_sizes_for(actions[k])
            val_before = self._evaluate(k, "val")["fused"]["accuracy"] if env.needs_validation else None
            plans[k] = (proportions, sizes, val_before)
        # Runs at the same iteration train together (after autoresets they may differ).
        groups: dict[int, list[int]] = {}
        for k in active:
            groups.setdefault(self.envs[k].iteration, []).append(k)
        for members in groups.values():
            results = self._train_group(members, [plans[k][1] for k in members])
            for k, (packed, keys, _n_iters) in zip(members, results):
                out = self._finish_step(k, plans[k], packed, keys)
                self._obs[k], rewards[k], terms[k], truncs[k], per_info[k] = out
        for k in range(k_all):
            infos = self._add_info(infos, per_info[k], k)
        self._autoreset = terms | truncs
        return self._obs.copy(), rewards, terms, truncs, infos

    # ------------------------------------------------------------------ training
    def _train_group(self, members: list[int], sizes: list[list[int]]) -> list[tuple[np.ndarray, list[str], int]]:
        """Train runs ``members`` (all at the same iteration) for one environment step."""
        envs = [self.envs[k] for k in members]
        env0 = envs[0]
        device, mods = self.device, self.modalities
        g, m = len(members), len(mods)
        n_iters = env0.iterations_next_step()  # the same for every member (same iteration)
        full = members == list(range(self.num_envs))
        sel = torch.tensor(members, device=device)
        all_params, all_bufs, plan = self._stacked()
        params = all_params if full else [p.detach()[sel].requires_grad_(True) for p in all_params]
        bufs = all_bufs if full else [b[sel] for b in all_bufs]

        # Per-step layout of the padded batches (sizes are fixed within a step).
        size_t = torch.tensor(sizes, dtype=torch.float32, device=device)  # [g, m]
        paired = [min(s) for s in sizes]
        width = [max(s[j] for s in sizes) for j in range(m)]
        p_max = max(paired)
        rows = {j: torch.arange(width[j], device=device) for j in range(m)}
        weights = [(rows[j].unsqueeze(0) < size_t[:, j:j + 1]).float() for j in range(m)]  # [g, A_j]
        positions = [torch.cat([k * width[j] + torch.arange(s[j], device=device) for k, s in enumerate(sizes)])
                     for j in range(m)]
        paired_t = torch.tensor(paired, dtype=torch.float32, device=device)
        paired_w = (torch.arange(p_max, device=device).unsqueeze(0) < paired_t.unsqueeze(1)).float()
        share = env0.batch_budget / m
        if self.loss_scale == "budget":
            uni_scale = torch.full((g, m), 1.0 / share, device=device)
            fused_scale = torch.full((g,), 1.0 / share, device=device)
        else:  # per-sample mean; an empty batch contributes zero, as scaled_ce does
            uni_scale = torch.where(size_t > 0, 1.0 / size_t.clamp(min=1), torch.zeros_like(size_t))
            fused_scale = torch.where(paired_t > 0, 1.0 / paired_t.clamp(min=1), torch.zeros_like(paired_t))
        sum_mode = env0.tracker.mode == "sum"
        counts = size_t.clamp(min=1)
        train = env0.dataset.train
        keys = ["total", "fused", *mods]

        s_total = torch.zeros(g, m, device=device)
        s_last = torch.zeros(g, m, device=device)
        correct = torch.zeros(g, m, device=device)
        loss_sums = torch.zeros(g, len(keys), device=device)
        for _ in range(n_iters):
            idx_parts: list[list[Tensor]] = [[] for _ in range(m)]
            for env, s in zip(envs, sizes):
                idx = env.draw_iteration(s)  # starts the epoch when due; counts the iteration
                for j, mod in enumerate(mods):
                    idx_parts[j].append(idx[mod])
            xs, ys = [], []
            for j, mod in enumerate(mods):
                flat = torch.zeros(g * width[j], dtype=torch.long, device=device)
                flat[positions[j]] = torch.cat(idx_parts[j])
                xs.append(train.gather(mod, flat).view(g, width[j], -1))
                ys.append(train.labels[flat].view(g, width[j]))

            feats = [batched_encode(params, plan["encoders"][mod], xs[j]) for j, mod in enumerate(mods)]
            logits = [_blinear(feats[j], params, plan["heads"][mod]) for j, mod in enumerate(mods)]
            c = logits[0].shape[-1]
            uni = [(F.cross_entropy(logits[j].reshape(-1, c), ys[j].reshape(-1), reduction="none").view(g, -1)
                    * weights[j]).sum(1) * uni_scale[:, j] for j in range(m)]
            fused_logits = _blinear(torch.cat([f[:, :p_max] for f in feats], dim=2), params, plan["fusion"])
            fused = (F.cross_entropy(fused_logits.reshape(-1, c), ys[0][:, :p_max].reshape(-1), reduction="none")
                     .view(g, p_max) * paired_w).sum(1) * fused_scale
            total = fused + self.unimodal_weight * sum(uni)
            grads = torch.autograd.grad(total.sum(), params)
            with torch.no_grad():
                # torch.optim.SGD's own update (its functional form), elementwise on the stacked
                # tensors: the same operations as the single env's optimizer. Buffers start at
                # zero, so the first update's momentum * 0 + d equals SGD's buf = d exactly.
                sgd(params, list(grads), list(bufs), foreach=True, weight_decay=self.weight_decay,
                    momentum=self.momentum, lr=self.lr, dampening=0.0, nesterov=False, maximize=False)
                # Statistics of the step (weighted: padding rows count zero).
                s_t, hits = [], []
                for j in range(m):
                    z = logits[j].float()
                    prob = true_class_probability(z, ys[j]) * weights[j]
                    s_t.append(prob.sum(1))
                    hits.append(((z.argmax(-1) == ys[j]).float() * weights[j]).sum(1))
                s_last = torch.stack(s_t, 1)
                if not sum_mode:
                    s_last = s_last / counts
                s_total += s_last
                correct += torch.stack(hits, 1)
                loss_sums += torch.stack([total, fused, *uni], 1).detach()

        if not full:
            with torch.no_grad():
                for stacked, buf, p, b in zip(all_params, all_bufs, params, bufs):
                    stacked[sel] = p.detach()
                    buf[sel] = b
        obs = []
        for i, env in enumerate(envs):
            env.tracker.fold_sum(s_total[i], n_iters, s_last[i])
            obs.append(env.tracker.observation.float())
        # The one host synchronisation of the step for the whole group.
        packed = torch.cat([torch.stack(obs), correct / (size_t * n_iters), loss_sums / n_iters], 1).cpu().numpy()
        return [(packed[i], keys, n_iters) for i in range(g)]

    def _evaluate(self, k: int, split: str) -> dict:
        self.get_learner(k)
        return self.envs[k].evaluate(split)

    def _finish_step(self, k: int, plan: tuple, packed: np.ndarray, keys: list[str]):
        """Sub-environment k's bookkeeping after training: ``DUSEnv.finish_step`` itself,
        evaluated with the batched model's slot k."""
        proportions, sizes, val_before = plan
        return self.envs[k].finish_step(packed, keys, proportions, sizes, val_before,
                                        evaluate=lambda split: self._evaluate(k, split))

    def close(self, **kwargs: Any) -> None:
        for env in self.envs:
            env.close()
        super().close(**kwargs)


class VectorFallbackWarning(UserWarning):
    """``make_vec``'s default fell back to ``SyncVectorEnv`` (the configuration is not batched)."""


def make_vector_env(num_envs: int = 1, **env_kwargs: Any) -> VectorEnv:
    """The ``vector_entry_point`` of ``mmenv/DUS-v0`` (``gymnasium.make_vec``'s default).

    The batched :class:`DUSVectorEnv` when the configuration is supported; otherwise
    (another learner such as OGM-GE or MLA, media data, Adam, ...) a
    ``gymnasium.vector.SyncVectorEnv`` of ``num_envs`` :class:`DUSEnv`, with a one-line
    :class:`VectorFallbackWarning` saying why. Both give the same per-run results.
    """
    try:
        return DUSVectorEnv(num_envs=num_envs, **env_kwargs)
    except VectorEnvError as exc:
        import warnings

        from gymnasium.vector import SyncVectorEnv

        reason = str(exc).split("; use gymnasium")[0]
        warnings.warn(f"mmenv: {reason}; using gymnasium.vector.SyncVectorEnv instead", VectorFallbackWarning,
                      stacklevel=3)
        kwargs = dict(env_kwargs)
        kwargs.pop("max_episode_steps", None)

        def make_one() -> DUSEnv:
            # A learner given as an object is copied: every run trains its own model.
            learner = kwargs.get("learner", "baseline")
            one = dict(kwargs, learner=learner if isinstance(learner, str) else copy.deepcopy(learner))
            return DUSEnv(**one)

        return SyncVectorEnv([make_one for _ in range(num_envs)])
