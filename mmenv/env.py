"""``DUSEnv``: training a multimodal classifier as a Gymnasium environment (DUS).

One episode is one training run. At each step the agent chooses what share of the
next training batches each modality gets; the environment trains the learner for one
epoch (or ``step_every`` iterations) with those per-modality batch sizes and answers
with the cumulative modality discrepancy and the reward.
"""

from __future__ import annotations

import copy
import functools
import math
from typing import Any, Callable, ContextManager, Mapping, TypeVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from .datasets import MultimodalDataset, TensorSplit, make_dataset
from .datasets.base import data_fingerprint, fingerprints_differ
from .errors import EnvStateError, InvalidArgumentError
from .discrepancy import DiscrepancyTracker, batch_discrepancy
from .learners import Batch, Learner, LearnerContext, LearnerError, make_learner
from .metrics import classification_metrics
from .rewards import RewardContext, RewardError, make_reward
from .sampling import (ACTION_SPACES, SOFTMAX_SCALE, ModalitySampler, SampleOrder, action_to_proportions, allocate,
                       make_sample_order, proportions_to_action)
from .sampling.scoring import ScoringContext, autocast_context, predict_split
from .step_stats import StepStats
from .validation import check_batch_budget, check_choice, check_float, check_int, check_log_dir, is_int, is_real

__all__ = ["DUSEnv", "grad_mode_independent"]

_F = TypeVar("_F", bound=Callable[..., Any])


def grad_mode_independent(fn: _F) -> _F:
    """Run ``fn`` with autograd on, whatever the caller's grad mode.

    Training happens inside ``step`` (and the model is built in ``reset``), so it must not
    depend on whether the caller is under ``torch.no_grad()`` or ``torch.inference_mode()``:
    sb3-contrib's ARS, for one, evaluates its candidate policies (and so steps the
    environment) under ``no_grad``. Inference mode is switched off too, or the parameters
    built in ``reset`` would be inference tensors that autograd refuses.
    """
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with torch.inference_mode(False), torch.enable_grad():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]

#: A step whose mean training loss (any entry of ``info["train_loss"]``) exceeds this is
#: treated as diverged even while finite. Cross-entropy at chance is ln(C) (2.3 for 10
#: classes); with the "budget" loss scaling a modality's loss is at most m times its mean
#: per-sample loss, so healthy runs stay orders of magnitude below 1e4, and a model whose
#: losses reach it has logit gaps of thousands: its training state is lost.
LOSS_DIVERGENCE_BOUND = 1e4

#: Reduced precisions autocast can run in (torch.autocast refuses integer types).
AUTOCAST_DTYPES = ("bfloat16", "float16")


def _check_autocast_dtype(value: Any) -> torch.dtype | None:
    """``None`` or a floating dtype autocast supports, given as a ``torch.dtype`` or its name."""
    if value is None:
        return None
    dtype = getattr(torch, value, None) if isinstance(value, str) else value
    if not isinstance(dtype, torch.dtype) or str(dtype).removeprefix("torch.") not in AUTOCAST_DTYPES + ("float32",):
        raise InvalidArgumentError(f"autocast_dtype must be None or one of {list(AUTOCAST_DTYPES)} (a torch.dtype "
                                   f"or its name), got {value!r}")
    return None if dtype == torch.float32 else dtype


def _is_real_scalar_array(value: Any) -> bool:
    """A one-element real NumPy array or torch tensor (a reward written with array maths)."""
    if isinstance(value, np.ndarray):
        return value.size == 1 and value.dtype.kind in "iuf"
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and (value.dtype.is_floating_point or not value.dtype.is_complex) \
            and value.dtype != torch.bool
    return False


def _kwargs_mapping(name: str, value: Any) -> dict[str, Any]:
    """A ``*_kwargs`` argument as a dict of keyword arguments (``None``: none)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidArgumentError(f"{name} must be a mapping of keyword arguments, got {value!r}")
    return dict(value)


def _check_optimizer_settings(learner: Learner) -> None:
    """The optimizer settings a built-in learner keeps (``opt_kwargs``), checked before training."""
    opt = getattr(learner, "opt_kwargs", None)
    if not isinstance(opt, Mapping):
        return
    owner = f"learner {learner.name!r}"
    if "lr" in opt:
        check_float("lr", opt["lr"], minimum=0.0, strict_minimum=True, owner=owner)
    for key in ("momentum", "weight_decay"):
        if key in opt:
            check_float(key, opt[key], minimum=0.0, owner=owner)
    if "optimizer" in opt:
        check_choice("optimizer", opt["optimizer"], ("sgd", "adam"), owner=owner)


# Iterations whose indices and inputs are drawn and gathered together (see _train_segment).
SEGMENT_ITERS = 128


class DUSEnv(gym.Env):
    """Data-aware Unimodal Sampling: the agent sets per-modality batch proportions.

    ## Observation
    ``Box(0, 1, (m,), float32)``: the cumulative discrepancy ``s^_t^j`` of each modality
    (Eq. 3), in ``self.modalities`` order. With ``discrepancy="sum"`` (the paper's) it is
    the running mean of the summed true-class probability over modality j's batch,
    divided by the budget N_B; with ``"mean"`` the per-sample average. After ``reset``
    it is the score of the freshly initialised model on one uniform probe batch (no
    training, not counted in the running mean), so the first action sees real values.

    ## Action
    ``action_space="unit"`` (the class default, the paper's): ``Box(0, 1, (m,), float32)``
    proportions a^. ``"symmetric"``: ``Box(-1, 1)``, mapped by ``(a + 1) / 2``.
    ``"softmax"`` (the default of the registered id ``mmenv/DUS-v0``, made for Gaussian
    agents such as SB3's): ``Box(-1, 1)`` logits, ``a^ = softmax(softmax_scale * a)``; the
    zero action is uniform and no share can be more than ``exp(2 * softmax_scale)`` (20 by
    default) times another, so an untrained agent cannot starve a modality.
    The proportions are normalised to sum 1 and turned into integer batch sizes
    ``a_j ~= N_B * a^_j`` summing exactly to N_B (Eq. 4, largest remainder), each at least
    ``min_batch``. Edge cases (NaN, all zeros, overshoots): :mod:`mmenv.sampling.allocation`.

    ## Reward
    ``reward="dus"`` (Eq. 5, default), ``"discrepancy-gap"``, ``"val-acc-gain"`` or any
    callable ``f(RewardContext) -> float`` (:mod:`mmenv.rewards`). Eq. 5 uses the state
    the agent acted on, as in Algorithm 1.

    ## Episode end
    ``terminated`` once ``epochs`` epochs of ``iters_per_epoch`` iterations are done;
    ``truncated`` with ``info["diverged"] = True`` if a training loss becomes NaN/inf or
    exceeds :data:`LOSS_DIVERGENCE_BOUND` (1e4) while finite.
    On the last step ``info["test"]`` holds accuracy, MAP and macro-F1 on the test split
    for the fused prediction (``info["test"]["fused"]``) and for each modality.

    ## Info (every step)
    ``batch_sizes`` (ints, modality order), ``proportions``, ``discrepancy`` (the new
    observation as a list), ``train_loss`` (dict: ``total``, ``fused``, one per modality),
    ``train_accuracy`` (per modality, over the step's batches), ``epoch`` (epochs done),
    ``iteration`` (iterations done), ``diverged``.

    Args:
        dataset: a registered name (``"synthetic"``, ...) or a :class:`MultimodalDataset`.
        learner: a registered name (``"baseline"``, ...) or a :class:`Learner` object.
        epochs: training epochs per episode (E).
        batch_budget: N_B, the total batch size shared by the modalities.
        step_every: ``"epoch"`` (one step per epoch, Algorithm 1) or an int k
            (one step every k iterations).
        reward: reward name or callable.
        discrepancy: ``"sum"`` (paper) or ``"mean"``.
        device: torch device for data, model, sampling and tracking.
        dataset_kwargs, learner_kwargs: passed to the registry when names are given.
        action_space: ``"unit"`` ([0, 1] proportions, the paper's), ``"symmetric"`` ([-1, 1],
            affine) or ``"softmax"`` ([-1, 1] logits; the registered id's default).
        softmax_scale: the logit scale of the softmax space (default ``ln(20) / 2``).
        sample_order: sample-order strategy (name or :class:`SampleOrder`), default shuffle;
            also ``"bss-curriculum"``, ``"bss-learned"``, ``"remix"`` (docs/sample_orders.md).
            The policy still sets the batch sizes; the strategy picks the samples.
        sample_order_kwargs: passed to the registry when ``sample_order`` is a name.
        iters_per_epoch: iterations per epoch; default ``ceil(N_train * m / N_B)``, so that
            under uniform shares every modality sees about its whole split once per epoch.
        min_batch: minimum batch size per modality (default 1).
        action_tol: tolerated float overshoot of the action bounds (clipped).
        eval_batch_size: batch size for validation/test passes.
        log_dir: if set, TensorBoard scalars are written there every step.
        autocast_dtype: ``None`` (default, full precision) or a reduced precision such as
            ``torch.bfloat16`` / ``"bfloat16"``: the learner's training and prediction run
            under ``torch.autocast`` on ``device`` (docs/performance.md).
        render_mode: ``None`` (default), ``"ansi"`` (:meth:`render` returns a text summary of
            the episode so far: step, epoch, batch sizes, discrepancy, reward) or
            ``"rgb_array"`` (an ``H x W x 3`` uint8 picture of the batch sizes and the
            discrepancy per step so far).

    Raises:
        InvalidArgumentError: an argument of the wrong type or out of range, checked here
            before any data set is built (ints take Python or NumPy integers, not ``bool``,
            floats or strings; ``action_tol`` in [0, 0.5]; ``autocast_dtype`` bfloat16 /
            float16 / float32 or ``None``; learner ``lr`` > 0). Data problems raise
            ``DatasetError``, unknown names ``UnknownNameError``, unknown keywords
            ``ArgumentError``: all :class:`mmenv.MMEnvError`.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        dataset: str | MultimodalDataset = "synthetic",
        learner: str | Learner = "baseline",
        epochs: int = 5,
        batch_budget: int = 64,
        step_every: str | int = "epoch",
        reward: str | Callable[[RewardContext], float] = "dus",
        discrepancy: str = "sum",
        device: str | torch.device = "cpu",
        dataset_kwargs: Mapping[str, Any] | None = None,
        learner_kwargs: Mapping[str, Any] | None = None,
        action_space: str = "unit",
        softmax_scale: float = SOFTMAX_SCALE,
        sample_order: str | SampleOrder = "shuffle",
        sample_order_kwargs: Mapping[str, Any] | None = None,
        iters_per_epoch: int | None = None,
        min_batch: int = 1,
        action_tol: float = 1e-6,
        eval_batch_size: int = 1024,
        log_dir: str | None = None,
        autocast_dtype: torch.dtype | str | None = None,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        # Every argument is checked here, once, before any data is built or anything trains
        # (mmenv.validation: InvalidArgumentError naming the argument and the fix).
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise InvalidArgumentError(f"render_mode must be None or one of {self.metadata['render_modes']}, "
                                       f"got {render_mode!r}")
        self.render_mode = render_mode
        self._history: list[tuple[list[int], list[float], float]] = []   # (sizes, discrepancy, reward)
        epochs = check_int("epochs", epochs, minimum=1)
        min_batch = check_int("min_batch", min_batch, minimum=0)
        batch_budget = check_int("batch_budget", batch_budget, minimum=1)
        if not (isinstance(step_every, str) and step_every == "epoch"):
            if not is_int(step_every) or int(step_every) < 1:
                raise InvalidArgumentError(f"step_every must be 'epoch' or a positive int of iterations, "
                                           f"got {step_every!r}")
            step_every = int(step_every)
        if iters_per_epoch is not None:
            iters_per_epoch = check_int("iters_per_epoch", iters_per_epoch, minimum=1,
                                        fix="pass None for the default ceil(N_train * m / N_B)")
        eval_batch_size = check_int("eval_batch_size", eval_batch_size, minimum=1)
        action_tol = check_float("action_tol", action_tol, minimum=0.0, maximum=0.5,
                                 fix="it is the tolerated float overshoot of the action bounds, e.g. 1e-6")
        softmax_scale = check_float("softmax_scale", softmax_scale, minimum=0.0, strict_minimum=True)
        check_choice("action_space", action_space, ACTION_SPACES)
        check_choice("discrepancy", discrepancy, ("sum", "mean"))
        check_log_dir(log_dir)
        if not isinstance(reward, str) and not callable(reward):
            raise InvalidArgumentError(f"reward must be a registered name or a callable f(RewardContext) -> float, "
                                       f"got {reward!r}")
        if not isinstance(device, (str, torch.device)):
            raise InvalidArgumentError(f"device must be a string such as 'cpu' or 'cuda:0' or a torch.device, "
                                       f"got {device!r}")
        try:
            self.device = torch.device(device)
        except (RuntimeError, ValueError) as exc:
            raise InvalidArgumentError(f"device {device!r} is not a torch device ({exc}); use e.g. 'cpu' or 'cuda'") \
                from None
        self.autocast_dtype: torch.dtype | None = _check_autocast_dtype(autocast_dtype)
        if isinstance(dataset, str):
            dataset = make_dataset(dataset, **_kwargs_mapping("dataset_kwargs", dataset_kwargs))
        elif not isinstance(dataset, MultimodalDataset):
            raise InvalidArgumentError(f"dataset must be a name or a MultimodalDataset, got {type(dataset).__name__}")
        elif dataset_kwargs:
            raise InvalidArgumentError("dataset_kwargs only apply when dataset is given by name")
        self.dataset = dataset.to(self.device)
        if isinstance(learner, str):
            learner = make_learner(learner, **_kwargs_mapping("learner_kwargs", learner_kwargs))
        elif not isinstance(learner, Learner):
            raise InvalidArgumentError(f"learner must be a name or a Learner, got {type(learner).__name__}")
        elif learner_kwargs:
            raise InvalidArgumentError("learner_kwargs only apply when learner is given by name")
        _check_optimizer_settings(learner)
        self.learner = learner
        self.modalities: tuple[str, ...] = self.dataset.modality_names
        self.learner.check_modalities(self.modalities)
        m = len(self.modalities)

        check_batch_budget(batch_budget, m, min_batch, len(self.dataset.train))
        if learner.requires_paired and min_batch < 1:
            raise InvalidArgumentError(f"learner {learner.name!r} needs paired samples: min_batch must be >= 1")
        self.epochs = epochs
        self.batch_budget = batch_budget
        self.step_every = step_every
        self.min_batch = min_batch
        self.action_tol = action_tol
        self.eval_batch_size = eval_batch_size
        self.action_space_name = action_space
        self.softmax_scale = float(softmax_scale)
        self.symmetric = action_space == "symmetric"
        self.reward_fn = make_reward(reward)
        self.reward_name = reward if isinstance(reward, str) else getattr(reward, "__name__", repr(reward))
        self.needs_validation = bool(getattr(self.reward_fn, "needs_validation", False))
        if self.needs_validation and self.dataset.val is None:
            raise InvalidArgumentError("this reward needs validation accuracy but the dataset has no val split")
        self.sample_order = make_sample_order(sample_order, **_kwargs_mapping("sample_order_kwargs",
                                                                              sample_order_kwargs))
        if self.sample_order.uses_masks and not (learner.supports_masks and not learner.requires_paired):
            raise LearnerError(
                f"sample_order {self.sample_order.name!r} trains on single-modality (masked) batches, but learner "
                f"{learner.name!r} does not honour Batch.masks (supports_masks=False) or needs paired rows; "
                "use a learner with supports_masks=True (e.g. 'baseline') or another sample order")
        n_train = len(self.dataset.train)
        self.iters_per_epoch = iters_per_epoch or max(1, math.ceil(n_train * m / batch_budget))
        self.total_iters = self.epochs * self.iters_per_epoch
        self.tracker = DiscrepancyTracker(self.modalities, discrepancy, batch_budget, self.device)

        self.observation_space = spaces.Box(0.0, 1.0, shape=(m,), dtype=np.float32)
        low = 0.0 if action_space == "unit" else -1.0
        self.action_space = spaces.Box(low, 1.0, shape=(m,), dtype=np.float32)

        self.log_dir = log_dir
        self._writer = None
        self._global_step = 0
        self._needs_reset = True

    # ------------------------------------------------------------------ helpers
    def uniform_action(self) -> np.ndarray:
        """The INIT action of Algorithm 1 (N_B / m each), in this env's action space."""
        m = len(self.modalities)
        return self.proportions_to_action(np.full(m, 1.0 / m))

    def proportions_to_action(self, proportions) -> np.ndarray:
        """Map proportions in [0, 1] to this env's action space."""
        return proportions_to_action(proportions, self.action_space_name, self.softmax_scale)

    def action_to_proportions(self, action) -> np.ndarray:
        """Validate an action of this env's space and return its proportions (sum 1)."""
        return action_to_proportions(action, len(self.modalities), tol=self.action_tol,
                                     space=self.action_space_name, softmax_scale=self.softmax_scale)

    @property
    def epoch(self) -> int:
        return self.iteration // self.iters_per_epoch

    def _writer_or_none(self):
        if self.log_dir is None or getattr(self, "_tb_failed", False):
            return None
        if self._writer is None:
            from .tb import make_writer

            try:
                self._writer = make_writer(self.log_dir)
            except Exception as exc:  # noqa: BLE001 - logging must never stop training
                self._tensorboard_failed(exc)
        return self._writer

    def _tensorboard_failed(self, exc: BaseException) -> None:
        """TensorBoard logging failed (disk full, read-only folder...): warn once, stop logging,
        keep training (the run's results do not depend on its logs)."""
        import warnings

        self._tb_failed = True
        warnings.warn(f"TensorBoard logging to {self.log_dir} stopped, training goes on: "
                      f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
                      RuntimeWarning, stacklevel=3)
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - closing a broken writer may fail too
                pass

    def _autocast(self) -> ContextManager[Any]:
        """``torch.autocast`` on this env's device when ``autocast_dtype`` is set (else a no-op)."""
        return autocast_context(self.device.type, self.autocast_dtype)

    # ------------------------------------------------------------------ gym API
    @grad_mode_independent
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.episode_seed = int(self.np_random.integers(0, 2**31 - 1))
        gen = torch.Generator(device=self.device)
        gen.manual_seed(self.episode_seed)
        self.generator = gen
        # Raw-media splits draw their augmentation from their own CPU generator.
        self.dataset.train.reseed(self.episode_seed)
        ctx = LearnerContext(
            modalities=self.dataset.modalities,
            num_classes=self.dataset.num_classes,
            device=self.device,
            batch_budget=self.batch_budget,
            epochs=self.epochs,
            iters_per_epoch=self.iters_per_epoch,
            seed=self.episode_seed,
            generator=gen,
        )
        # Model initialisation uses torch's global RNG: seed it inside a fork so the
        # caller's RNG state is untouched and the episode depends on `seed` alone.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.episode_seed)
            self.learner.setup(ctx)
        self.learner.train()
        self.sample_order.setup(len(self.dataset.train), ("paired", *self.modalities), self.device, gen)
        self.sampler = ModalitySampler(self.modalities, self.sample_order)
        self.tracker.reset()
        self.iteration = 0
        self.episode_step = 0
        self._epoch_started = -1
        self._needs_reset = False
        self._obs = self._probe_observation()
        self._history = []
        writer = self._writer_or_none()
        if writer is not None:
            from .tb import log_reset

            try:
                log_reset(writer, self._global_step, self.modalities, self._obs.tolist())
            except Exception as exc:  # noqa: BLE001 - logging must never stop training
                self._tensorboard_failed(exc)
        info = {"batch_sizes": allocate(np.full(len(self.modalities), 1 / len(self.modalities)),
                                        self.batch_budget, self.min_batch),
                "epoch": 0, "iteration": 0, "discrepancy": self._obs.tolist()}
        return self._obs.copy(), info

    @torch.no_grad()
    def _probe_observation(self) -> np.ndarray:
        """Discrepancy of the current model on one uniform probe batch (its own RNG).

        The probe batch is paired (the same N_B/m samples for every modality) and is
        scored with ``learner.predict``; it does not train and does not enter Eq. 3.
        """
        m = len(self.modalities)
        a = max(1, self.batch_budget // m)
        probe_gen = torch.Generator(device=self.device)
        probe_gen.manual_seed(self.episode_seed + 1)
        train = self.dataset.train
        idx = torch.randperm(len(train), generator=probe_gen, device=self.device)[:a]
        self.learner.eval()
        with self._autocast():
            pred = self.learner.predict({mod: train.gather(mod, idx) for mod in self.modalities})
        self.learner.train()
        labels = {mod: train.labels[idx] for mod in self.modalities}
        s = batch_discrepancy(pred.per_modality, labels, self.modalities, self.tracker.mode)
        # Scale the probe's sum to the per-modality share the uniform action would give.
        scaled = (s * (self.batch_budget / m) / a / self.batch_budget if self.tracker.mode == "sum" else s)
        obs = scaled.cpu().numpy().astype(np.float32)
        return np.clip(np.nan_to_num(obs, nan=0.0), 0.0, 1.0)

    def _train_segment(self, sizes: list[int], n: int, epoch: int, stats: StepStats) -> None:
        """Train ``n`` iterations of one epoch with fixed per-modality ``sizes``.

        Indices for the whole segment are drawn first (the same draws, in the same order,
        as ``n`` single calls), and tensor data sets gather the segment's inputs and labels
        with one ``index_select`` per modality; each iteration then takes views. This keeps
        per-iteration Python to the learner call itself.
        """
        train = self.dataset.train
        mods = self.modalities
        num_paired, index = self.sampler.sample_block(sizes, epoch, n)  # index[mod]: [n, a_j]
        labels = {mod: train.labels[index[mod]] for mod in mods}
        if isinstance(train, TensorSplit):
            inputs = {mod: train.gather(mod, index[mod].reshape(-1)).view(n, a, *train.inputs[mod].shape[1:])
                      for mod, a in zip(mods, sizes)}
        else:  # media data sets decode per batch
            inputs = None
        # Single-modality epochs (Data Remixing): every row lacks the other modalities.
        masks = ({mod: torch.ones(a, dtype=torch.bool, device=self.device) for mod, a in zip(mods, sizes)}
                 if self.sample_order.single_modality_batches(epoch) else None)
        autocast = self._autocast()
        # Per-iteration views, made by one unbind per tensor rather than n indexing calls.
        rows_x = (zip(*(inputs[mod].unbind(0) for mod in mods)) if inputs is not None
                  else ([train.gather(mod, index[mod][i]) for mod in mods] for i in range(n)))
        rows_y = zip(*(labels[mod].unbind(0) for mod in mods))
        rows_i = zip(*(index[mod].unbind(0) for mod in mods))
        for x, y, idx in zip(rows_x, rows_y, rows_i):
            batch = Batch(
                inputs=dict(zip(mods, x)),
                labels=dict(zip(mods, y)),
                indices=dict(zip(mods, idx)),
                num_paired=num_paired,
                epoch=epoch,
                iteration=self.iteration,
                masks=masks,
            )
            with autocast:
                out = self.learner.train_step(batch)
            stats.add(out.logits, batch.labels, out.losses)
            self.iteration += 1
        if self.iteration % self.iters_per_epoch == 0:
            self.learner.on_epoch_end(epoch)

    @grad_mode_independent
    def step(self, action):
        if self._needs_reset:
            raise EnvStateError("call reset() before step() (the episode has ended or never started)")
        proportions, sizes = self.batch_sizes_for(action)
        val_before = self.evaluate("val")["fused"]["accuracy"] if self.needs_validation else None
        n_iters = self.iterations_next_step()

        # Discrepancy, accuracy and losses are folded in blocks (mmenv/step_stats.py).
        stats = StepStats(self.modalities, self.tracker, self.device)
        seen = torch.tensor(sizes, dtype=torch.float32, device=self.device) * n_iters
        done_iters = 0
        while done_iters < n_iters:
            if self.epoch != self._epoch_started:
                stats.flush()  # a sample order may read the tracker at epoch start
            epoch = self.start_epoch_if_due()
            # A segment = the iterations of this step that lie in the current epoch.
            # Capped at SEGMENT_ITERS so the pre-gathered inputs stay small.
            seg = min(n_iters - done_iters, (epoch + 1) * self.iters_per_epoch - self.iteration, SEGMENT_ITERS)
            self._train_segment(sizes, seg, epoch, stats)
            done_iters += seg

        stats.flush()
        correct, loss_sums = stats.correct, stats.loss_sums
        # The one host synchronisation of the step.
        keys = list(loss_sums)
        packed = torch.cat([
            self.tracker.observation.float(),
            correct / seen.clamp(min=1.0),  # a modality may get 0 rows when min_batch=0
            torch.stack([loss_sums[k].float() for k in keys]) / n_iters,
        ]).cpu().numpy()
        return self.finish_step(packed, keys, proportions, sizes, val_before)

    # ------------------------------------------------------------------ seams for other drivers
    # The batched vector environment (mmenv/vector_env.py) trains the models of K runs
    # itself; these public methods are everything else of a step it needs from a run.
    def batch_sizes_for(self, action) -> tuple[np.ndarray, list[int]]:
        """The normalised proportions and the integer batch sizes (Eq. 4) an ``action`` gives."""
        proportions = self.action_to_proportions(action)
        return proportions, allocate(proportions, self.batch_budget, self.min_batch)

    def iterations_next_step(self) -> int:
        """How many training iterations the next step trains: the rest of the current epoch
        (``step_every="epoch"``) or ``step_every``, capped at the episode's end."""
        if self.step_every == "epoch":
            return self.iters_per_epoch - self.iteration % self.iters_per_epoch
        return min(int(self.step_every), self.total_iters - self.iteration)

    def start_epoch_if_due(self) -> int:
        """Start the epoch the next iteration belongs to, unless it has started; return it.

        Starting an epoch runs the sample order's ``on_epoch_start`` hook with a
        :class:`~mmenv.sampling.scoring.ScoringContext` (the strategy never sees the env).
        """
        epoch = self.epoch
        if epoch != self._epoch_started:
            self._epoch_started = epoch
            self.sample_order.on_epoch_start(self.scoring_context(epoch))
        return epoch

    def scoring_context(self, epoch: int) -> ScoringContext:
        """What a sample order gets at the start of ``epoch`` (see :mod:`mmenv.sampling.scoring`)."""
        return ScoringContext(epoch=epoch, epochs=self.epochs, labels=self.dataset.train.labels,
                              discrepancy=self.tracker.observation, predict=self.predict)

    def draw_iteration(self, sizes: list[int]) -> dict[str, torch.Tensor]:
        """One training iteration's sample indices per modality, for a driver that trains this
        run's model itself: starts the epoch when due, draws from this run's sampler (the
        same draws as :meth:`step` makes) and counts the iteration as trained."""
        epoch = self.start_epoch_if_due()
        _, idx = self.sampler.sample(sizes, epoch)
        self.iteration += 1
        return idx

    def finish_step(self, packed: np.ndarray, keys: list[str], proportions: np.ndarray, sizes: list[int],
                    val_before: float | None, evaluate: Callable[[str], dict] | None = None):
        """Everything after training: observation, divergence, reward, info, episode end.

        ``packed`` is the step's one host read: ``[observation (m), train accuracy (m),
        mean losses (len(keys))]``; the reward compares with the observation the action was
        taken on (the current one). The batched vector environment calls this too, with its
        own ``evaluate``, so both report steps the same way. Returns ``step``'s 5-tuple.
        """
        evaluate = evaluate or self.evaluate
        obs_before = self._obs
        m = len(self.modalities)
        obs_raw = packed[:m]
        train_acc = packed[m:2 * m]
        losses = dict(zip(keys, packed[2 * m:].tolist()))
        # Divergence = a non-finite loss or discrepancy (the training state is lost), or a
        # finite loss past LOSS_DIVERGENCE_BOUND (a run that exploded but has not yet overflowed).
        step_losses = packed[2 * m:]
        diverged = not (np.all(np.isfinite(obs_raw)) and np.all(np.isfinite(step_losses))
                        and np.all(np.abs(step_losses) <= LOSS_DIVERGENCE_BOUND))
        obs = np.clip(np.nan_to_num(obs_raw, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0).astype(np.float32)
        self._obs = obs

        terminated = self.iteration >= self.total_iters and not diverged
        truncated = diverged
        val_after = None
        if self.needs_validation:
            val_after = evaluate("val")["fused"]["accuracy"] if not diverged else 0.0
        info: dict[str, Any] = {
            "batch_sizes": sizes,
            "proportions": proportions.tolist(),
            "discrepancy": obs.tolist(),
            "train_loss": losses,
            "train_accuracy": dict(zip(self.modalities, train_acc.tolist())),
            "epoch": self.iteration // self.iters_per_epoch,
            "iteration": self.iteration,
            "diverged": diverged,
        }
        if val_after is not None:
            info["val_accuracy"] = val_after
        elif self.log_dir is not None and self.dataset.val is not None and not diverged:
            # Logged runs record validation accuracy too (one pass over the val split per step).
            info["val_accuracy"] = evaluate("val")["fused"]["accuracy"]
        ctx = RewardContext(obs_before, proportions, obs, sizes, val_before, val_after, info)
        raw_reward = self.reward_fn(ctx)
        if not (is_real(raw_reward) or _is_real_scalar_array(raw_reward)):
            raise RewardError(f"reward {self.reward_name!r} returned {raw_reward!r} ({type(raw_reward).__name__}); "
                              "a reward function must return one float")
        reward = float(raw_reward)
        if not math.isfinite(reward):
            reward = 0.0 if diverged else reward
            if not math.isfinite(reward):
                raise RewardError(f"reward {self.reward_name!r} returned {reward} on a healthy step (inputs: "
                                  f"proportions {proportions}); a reward must be finite")
        if terminated or truncated:
            info["test"] = evaluate("test") if not diverged else None
            self._needs_reset = True
        self.episode_step += 1
        self._log(info, reward)
        if self.render_mode is not None:
            self._history.append((list(sizes), obs.tolist(), reward))
        return obs.copy(), reward, terminated, truncated, info

    # ------------------------------------------------------------------ evaluation
    def predict(self, split: str = "train", batch_size: int | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Class scores of the current model on ``split``: ``(fused [N, C], {modality: [N, C]})``.

        The one prediction loop (:func:`mmenv.sampling.scoring.predict_split`): eval mode,
        batches of ``batch_size`` (default ``eval_batch_size``), ``autocast_dtype`` honoured,
        train mode restored even on error.
        """
        data = getattr(self.dataset, split, None)
        if data is None:
            raise InvalidArgumentError(f"dataset {self.dataset.name!r} has no {split!r} split")
        return predict_split(self.learner, data, batch_size or self.eval_batch_size, self.autocast_dtype)

    def evaluate(self, split: str = "test") -> dict[str, dict[str, float]]:
        """Metrics of the current model on ``split``: ``{"fused": {...}, modality: {...}}``."""
        fused, per = self.predict(split)
        labels, c = getattr(self.dataset, split).labels, self.dataset.num_classes
        out = {"fused": classification_metrics(fused, labels, c)}
        for mod in self.modalities:
            out[mod] = classification_metrics(per[mod], labels, c)
        return out

    # ------------------------------------------------------------------ checkpointing
    def _checkpoint_config(self) -> dict[str, Any]:
        """The settings a checkpoint is only valid for (checked by :meth:`load_state_dict`)."""
        return {
            "dataset": self.dataset.name, "n_train": len(self.dataset.train), "modalities": list(self.modalities),
            "learner": self.learner.name, "sample_order": self.sample_order.name, "epochs": self.epochs,
            "batch_budget": self.batch_budget, "step_every": self.step_every, "iters_per_epoch": self.iters_per_epoch,
            "min_batch": self.min_batch, "discrepancy": self.tracker.mode, "symmetric": self.symmetric,
            "action_space": self.action_space_name, "data_fingerprint": self.data_fingerprint,
        }

    @property
    def data_fingerprint(self) -> str:
        """:func:`mmenv.datasets.base.data_fingerprint` of this env's data (computed once)."""
        fp = getattr(self, "_data_fingerprint", None)
        if fp is None:
            fp = self._data_fingerprint = data_fingerprint(self.dataset)
        return fp

    def _random_splits(self) -> list[tuple[str, Any]]:
        """Data splits that own a ``torch.Generator`` (e.g. training-time augmentation)."""
        out = []
        for name in ("train", "val", "test"):
            split = getattr(self.dataset, name, None)
            if isinstance(getattr(split, "generator", None), torch.Generator):
                out.append((name, split))
        return out

    def _learner_scalars(self) -> dict[str, Any]:
        """The learner's plain scalar attributes (step counters, flags...).

        Saved next to ``learner.state_dict()`` so that a counter a learner keeps outside its
        state dict (e.g. optimizer steps taken) survives a checkpoint too. Scalars only:
        they are immutable, so restoring them cannot break a reference the learner holds;
        tensors and other method state belong in the learner's ``state_dict``.
        """
        return {k: v for k, v in vars(self.learner).items() if type(v) in (int, float, bool, str)}

    def state_dict(self) -> dict[str, Any]:
        """A snapshot of everything the rest of the run depends on (see :mod:`mmenv.checkpoint`).

        Holds the Gymnasium ``np_random`` state (it draws the next episode's seed) and, once
        an episode has started, the episode: the env's ``torch.Generator`` state (and that of
        any data split owning one, e.g. media augmentation), the learner
        (model, optimizer, schedule, method state), the sample order and sampler streams
        (permutations and cursors), the discrepancy tracker, the iteration / epoch /
        episode-step counters and the last observation. Tensors are copies, so the
        snapshot stays valid while the environment keeps stepping. Only plain containers,
        numbers, strings and tensors: ``torch.load(weights_only=True)`` reads it back.
        """
        bit_gen = None if self._np_random is None else self._np_random.bit_generator
        state: dict[str, Any] = {
            "config": self._checkpoint_config(),
            "global_step": self._global_step,
            "needs_reset": self._needs_reset,
            "np_random": None if bit_gen is None else copy.deepcopy(bit_gen.state),
            "np_random_seed": getattr(self, "_np_random_seed", None),
            "episode": None,
        }
        if getattr(self, "generator", None) is not None:
            state["episode"] = copy.deepcopy({
                "episode_seed": self.episode_seed,
                "generator": self.generator.get_state(),
                "learner": self.learner.state_dict(),
                "learner_scalars": self._learner_scalars(),
                "sample_order": self.sample_order.state_dict(),
                "sampler": self.sampler.state_dict(),
                "tracker": self.tracker.state_dict(),
                "iteration": self.iteration,
                "episode_step": self.episode_step,
                "epoch_started": self._epoch_started,
                "obs": torch.from_numpy(np.asarray(self._obs, dtype=np.float32).copy()),
                # Splits with their own randomness (media augmentation) keep a torch.Generator.
                "split_generators": {name: split.generator.get_state() for name, split in self._random_splits()},
            })
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` snapshot into this (identically configured) environment.

        The episode's objects are rebuilt by a plain ``reset()`` (fresh model, optimizer and
        streams of the right shapes) and then overwritten with the saved state, so the next
        ``step`` gives exactly what the saved environment's next ``step`` would have given.
        """
        from .checkpoint import CheckpointError, data_mismatch_error

        saved, mine = dict(state["config"]), self._checkpoint_config()
        # Another data set (or another seed of the same generator) with the same name and
        # sizes: refused before the generic check, with its own error.
        saved_fp = saved.pop("data_fingerprint", None)
        mine_fp = mine.pop("data_fingerprint")
        if fingerprints_differ(saved_fp, mine_fp) and all(saved.get(k) == mine[k] for k in mine):
            raise data_mismatch_error(self.dataset, saved_fp, mine_fp)
        diff = [k for k in mine if saved.get(k) != mine[k]]
        if diff:
            detail = ", ".join(f"{k}: saved {saved.get(k)!r}, this env {mine[k]!r}" for k in diff)
            raise CheckpointError(f"checkpoint was written for another configuration ({detail}); "
                                  "build the environment with the saved settings")
        ep = state["episode"]
        if ep is not None:
            self.reset()
            self.episode_seed = int(ep["episode_seed"])
            self.generator.set_state(ep["generator"])
            for key, value in ep.get("learner_scalars", {}).items():
                setattr(self.learner, key, value)
            self.learner.load_state_dict(ep["learner"])
            self.sample_order.load_state_dict(ep["sample_order"])
            # Stream entries are tuples (permutation, cursor, ...); checkpoints load onto the CPU.
            self.sampler.load_state_dict({k: tuple(v.to(self.device) if isinstance(v, torch.Tensor) else v for v in entry)
                                          for k, entry in ep["sampler"].items()})
            self.tracker.load_state_dict(ep["tracker"])
            self.iteration = int(ep["iteration"])
            self.episode_step = int(ep["episode_step"])
            self._epoch_started = int(ep["epoch_started"])
            self._obs = ep["obs"].numpy().astype(np.float32)
            for name, split in self._random_splits():
                if name in ep.get("split_generators", {}):
                    split.generator.set_state(ep["split_generators"][name])
        if state["np_random"] is not None:
            bit_gen = getattr(np.random, state["np_random"]["bit_generator"])()
            bit_gen.state = state["np_random"]
            self._np_random = np.random.Generator(bit_gen)
            self._np_random_seed = state["np_random_seed"]
        self._global_step = int(state["global_step"])
        self._needs_reset = bool(state["needs_reset"])

    @property
    def last_observation(self) -> np.ndarray:
        """The observation the agent acts on next (a copy), e.g. after :meth:`load_checkpoint`."""
        return np.asarray(self._obs, dtype=np.float32).copy()

    def save_checkpoint(self, path: str) -> None:
        """Atomically write :meth:`state_dict` to ``path`` (a kill mid-write leaves the old file)."""
        from .checkpoint import save_env_checkpoint

        save_env_checkpoint(self, path)

    def load_checkpoint(self, path: str) -> None:
        """Restore the state saved by :meth:`save_checkpoint` (same configuration required)."""
        from .checkpoint import load_env_checkpoint

        load_env_checkpoint(self, path)

    # ------------------------------------------------------------------ rendering
    def render(self):
        """The episode so far, as ``render_mode`` asks (``None``: nothing)."""
        if self.render_mode is None:
            return None
        if self.render_mode == "ansi":
            return self._render_text()
        return self._render_rgb()

    def _render_text(self) -> str:
        mods = self.modalities
        if getattr(self, "generator", None) is None:
            return "DUSEnv: not reset yet"
        head = (f"step {self.episode_step} | epoch {self.epoch}/{self.epochs} | iteration {self.iteration}/"
                f"{self.total_iters} | N_B {self.batch_budget}")
        if not self._history:
            disc = ", ".join(f"{m}={v:.4f}" for m, v in zip(mods, self._obs))
            return f"{head}\n  discrepancy (probe): {disc}"
        sizes, disc_now, reward = self._history[-1]
        total = sum(r for _, _, r in self._history)
        return (f"{head}\n  batch sizes: " + ", ".join(f"{m}={a}" for m, a in zip(mods, sizes))
                + "\n  discrepancy: " + ", ".join(f"{m}={v:.4f}" for m, v in zip(mods, disc_now))
                + f"\n  reward: {reward:.4f} (episode sum {total:.4f})")

    def _render_rgb(self) -> np.ndarray:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        fig = Figure(figsize=(6.4, 2.8), dpi=100)
        canvas = FigureCanvasAgg(fig)
        ax_b, ax_d = fig.subplots(1, 2)
        steps = np.arange(1, len(self._history) + 1)
        for j, mod in enumerate(self.modalities):
            if self._history:
                ax_b.plot(steps, [h[0][j] for h in self._history], marker="o", label=mod)
                ax_d.plot(steps, [h[1][j] for h in self._history], marker="o", label=mod)
        ax_b.axhline(self.batch_budget / len(self.modalities), color="black", ls="--", lw=1)
        ax_b.set(title="batch size", xlabel="step", ylim=(0, self.batch_budget))
        ax_d.set(title="cumulative discrepancy", xlabel="step")
        if self._history:  # no labelled lines before the first step: a legend would warn
            ax_b.legend(fontsize=7)
        from matplotlib.ticker import MaxNLocator

        for ax in (ax_b, ax_d):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.tight_layout()
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()

    # ------------------------------------------------------------------ logging
    def _log(self, info: dict, reward: float) -> None:
        writer = self._writer_or_none()
        self._global_step += 1
        if writer is None:
            return
        from .tb import log_step

        try:
            self._last_scalars = log_step(writer, self._global_step, self.modalities, info, reward)
        except Exception as exc:  # noqa: BLE001 - logging must never stop training
            self._tensorboard_failed(exc)

    @property
    def tensorboard_writer(self):
        """The ``SummaryWriter`` on ``log_dir`` (``None`` without one), for callers that add
        to the run's log, such as ``mmenv compare``'s hparams summary."""
        return self._writer_or_none()

    def tensorboard_state(self) -> dict[str, Any]:
        """Where this environment's TensorBoard log stands, for :meth:`resume_tensorboard`:
        the global step (steps logged so far over all episodes) and the last step's scalars."""
        return {"global_step": int(self._global_step), "last_step": dict(getattr(self, "_last_scalars", {}))}

    def resume_tensorboard(self, state: Mapping[str, Any] | None = None) -> None:
        """Continue the log after a run was interrupted, so that no step is written twice.

        ``state`` is a :meth:`tensorboard_state` saved when the resumed-from point was
        reached (``None``: from the start). The next writer on ``log_dir`` purges every event
        at or after ``state["global_step"]`` that the interrupted run wrote (TensorBoard's
        ``purge_step``), then writes the saved last step again (its step is shared with the
        next episode's ``discrepancy_initial``, so it is purged too) and goes on from there.
        """
        state = dict(state or {})
        self._global_step = int(state.get("global_step", 0))
        if self.log_dir is None:
            return
        from .tb import make_writer, write_scalars

        self._last_scalars = dict(state.get("last_step") or {})
        try:
            if self._writer is not None:
                self._writer.close()
            self._writer = make_writer(self.log_dir, purge_step=self._global_step)
            if self._last_scalars:
                write_scalars(self._writer, self._last_scalars, self._global_step)
        except Exception as exc:  # noqa: BLE001 - logging must never stop training
            self._tensorboard_failed(exc)

    def close(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception as exc:  # noqa: BLE001 - a full disk at close loses only logs
                self._tensorboard_failed(exc)
            self._writer = None
        super().close()
