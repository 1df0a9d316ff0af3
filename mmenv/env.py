"""``DUSEnv``: training a multimodal classifier as a Gymnasium environment (DUS).

One episode is one training run. At each step the agent chooses what share of the
next training batches each modality gets; the environment trains the learner for one
epoch (or ``step_every`` iterations) with those per-modality batch sizes and answers
with the cumulative modality discrepancy and the reward.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from .datasets import MultimodalDataset, TensorSplit
from .discrepancy import DiscrepancyTracker, batch_discrepancy
from .env_args import (
    ENV_ARGS,
    autocast_dtype_of,
    build_dataset,
    build_learner,
    check_arg,
    check_cross_field,
    kwargs_mapping,
)
from .env_state import EnvStateMixin
from .errors import EnvStateError, InvalidArgumentError
from .grad_mode import grad_mode_independent
from .learners import Batch, Learner, LearnerContext, LearnerError
from .metrics import classification_metrics
from .render import RENDER_MODES, RenderMixin
from .rewards import RewardContext, make_reward, reward_name, reward_value, validation_need
from .sampling import (
    SOFTMAX_SCALE,
    ModalitySampler,
    SampleOrder,
    action_to_proportions,
    allocate,
    make_sample_order,
    proportions_to_action,
)
from .sampling.scoring import ScoringContext, autocast_context, predict_split
from .step_stats import StepStats
from .tb import EnvTensorBoard
from .validation import check_batch_budget

__all__ = ["DUSEnv", "grad_mode_independent"]

#: A step whose mean training loss (any entry of ``info["train_loss"]``) exceeds this is
#: treated as diverged even while finite. Cross-entropy at chance is ln(C) (2.3 for 10
#: classes); with the "budget" loss scaling a modality's loss is at most m times its mean
#: per-sample loss, so healthy runs stay orders of magnitude below 1e4, and a model whose
#: losses reach it has logit gaps of thousands: its training state is lost.
LOSS_DIVERGENCE_BOUND = 1e4

# Iterations whose indices and inputs are drawn and gathered together (see _train_segment).
SEGMENT_ITERS = 128


class DUSEnv(EnvStateMixin, RenderMixin, gym.Env):
    """Data-aware Unimodal Sampling: the agent sets per-modality batch proportions.

    The reference of spaces, arguments, rewards, ``info`` keys, episode end and errors is
    ``docs/environment.md``; the arguments' types and ranges are :data:`mmenv.env_args.ENV_ARGS`.

    * **Observation** ``Box(0, 1, (m,), float32)``: the cumulative discrepancy of each
      modality (Eq. 3), in ``self.modalities`` order; after ``reset`` the score of the fresh
      model on one uniform probe batch (no training).
    * **Action** (``action_space``): ``"unit"`` (class default, the paper's) ``Box(0, 1)``
      proportions; ``"symmetric"`` ``Box(-1, 1)`` mapped by ``(a + 1) / 2``; ``"softmax"``
      (the default of ``mmenv/DUS-v0``) ``Box(-1, 1)`` logits, ``softmax(softmax_scale * a)``.
      Proportions become integer batch sizes summing to N_B (Eq. 4), each >= ``min_batch``.
    * **Reward** (``reward``): a name of :data:`mmenv.rewards.REWARDS` (``"dus"``, Eq. 5, by
      default) or a callable ``f(RewardContext) -> float``.
    * **Episode end**: ``terminated`` after ``epochs`` epochs of ``iters_per_epoch``
      iterations; ``truncated`` with ``info["diverged"]`` when a training loss is NaN/inf or
      exceeds :data:`LOSS_DIVERGENCE_BOUND`. The last step's ``info["test"]`` holds the test
      metrics (fused and per modality).
    * **Info** (every step): ``batch_sizes``, ``proportions``, ``discrepancy``, ``train_loss``,
      ``train_accuracy``, ``epoch``, ``iteration``, ``diverged`` (+ ``val_accuracy``, ``test``).

    Arguments are checked before any data set is built (:mod:`mmenv.env_args`:
    ``InvalidArgumentError``); data problems raise ``DatasetError``, unknown names
    ``UnknownNameError``, unknown keywords ``ArgumentError``: all :class:`mmenv.MMEnvError`.
    Checkpoints: :class:`~mmenv.env_state.EnvStateMixin`; rendering:
    :class:`~mmenv.render.RenderMixin`; TensorBoard: :class:`~mmenv.tb.EnvTensorBoard`.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 4}

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
        # Every argument is checked here, once, before any data is built or anything trains,
        # by the one argument table (mmenv.env_args: InvalidArgumentError naming the argument).
        given = locals()
        args = {name: check_arg(name, given[name]) for name in ENV_ARGS}
        self.render_mode = render_mode
        self._history: list[tuple[list[int], list[float], float]] = []   # (sizes, discrepancy, reward)
        epochs, min_batch, batch_budget = args["epochs"], args["min_batch"], args["batch_budget"]
        step_every, iters_per_epoch = args["step_every"], args["iters_per_epoch"]
        eval_batch_size, action_tol, softmax_scale = args["eval_batch_size"], args["action_tol"], args["softmax_scale"]
        self.device = torch.device(device)
        self.autocast_dtype: torch.dtype | None = autocast_dtype_of(autocast_dtype)
        self.dataset = build_dataset(dataset, dataset_kwargs).to(self.device)
        self.learner = built = build_learner(learner, learner_kwargs)
        self.modalities: tuple[str, ...] = self.dataset.modality_names
        self.learner.check_modalities(self.modalities)
        m = len(self.modalities)
        check_cross_field(args, m, built.requires_paired, built.name)
        check_batch_budget(batch_budget, m, min_batch, len(self.dataset.train))
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
        self.reward_name = reward_name(reward)
        validation = validation_need(self.reward_fn)
        self.needs_validation = validation == "step"
        self.needs_final_validation = validation == "final"
        if validation is not None and self.dataset.val is None:
            raise InvalidArgumentError(f"reward {self.reward_name!r} needs validation accuracy but dataset "
                                       f"{self.dataset.name!r} has no val split (give it one, e.g. "
                                       "dataset_kwargs={'n_val': 500}, or use another reward)")
        self.sample_order = make_sample_order(sample_order, **kwargs_mapping("sample_order_kwargs", sample_order_kwargs))
        if self.sample_order.uses_masks and not (built.supports_masks and not built.requires_paired):
            raise LearnerError(
                f"sample_order {self.sample_order.name!r} trains on single-modality (masked) batches, but learner "
                f"{built.name!r} does not honour Batch.masks (supports_masks=False) or needs paired rows; "
                "use a learner with supports_masks=True (e.g. 'baseline') or another sample order")
        n_train = len(self.dataset.train)
        self.iters_per_epoch = iters_per_epoch or max(1, math.ceil(n_train * m / batch_budget))
        self.total_iters = self.epochs * self.iters_per_epoch
        self.tracker = DiscrepancyTracker(self.modalities, discrepancy, batch_budget, self.device)

        self.observation_space = spaces.Box(0.0, 1.0, shape=(m,), dtype=np.float32)
        low = 0.0 if action_space == "unit" else -1.0
        self.action_space = spaces.Box(low, 1.0, shape=(m,), dtype=np.float32)

        self.log_dir = log_dir
        self._tb = EnvTensorBoard(log_dir)
        self._data_fingerprint: str | None = None
        # The episode's state, set by reset (none before the first one: episode_seed None).
        self.episode_seed: int | None = None
        self.generator = torch.Generator(device=self.device)
        self.sampler = ModalitySampler(self.modalities, self.sample_order)
        self.iteration = 0
        self.episode_step = 0
        self._epoch_started = -1
        self._obs = np.zeros(m, dtype=np.float32)
        self._needs_reset = True
        # (iteration, evaluate("val")) of the current model: see validation_metrics.
        self._val_memo: tuple[tuple[int, int], dict[str, dict[str, float]]] | None = None

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

    def _autocast(self) -> AbstractContextManager[Any]:
        """``torch.autocast`` on this env's device when ``autocast_dtype`` is set (else a no-op)."""
        return autocast_context(self.device.type, self.autocast_dtype)

    # ------------------------------------------------------------------ gym API
    @grad_mode_independent
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.episode_seed = episode_seed = int(self.np_random.integers(0, 2**31 - 1))
        gen = torch.Generator(device=self.device)
        gen.manual_seed(episode_seed)
        self.generator = gen
        # Raw-media splits draw their augmentation from their own CPU generator.
        self.dataset.train.reseed(episode_seed)
        ctx = LearnerContext(
            modalities=self.dataset.modalities,
            num_classes=self.dataset.num_classes,
            device=self.device,
            batch_budget=self.batch_budget,
            epochs=self.epochs,
            iters_per_epoch=self.iters_per_epoch,
            seed=episode_seed,
            generator=gen,
        )
        # Model initialisation uses torch's global RNG: seed it inside a fork so the
        # caller's RNG state is untouched and the episode depends on `seed` alone.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(episode_seed)
            self.learner.setup(ctx)
        self.learner.train()
        self.sample_order.setup(len(self.dataset.train), ("paired", *self.modalities), self.device, gen)
        self.sampler = ModalitySampler(self.modalities, self.sample_order)
        self.tracker.reset()
        self.iteration = 0
        self.episode_step = 0
        self._epoch_started = -1
        self._needs_reset = False
        self._val_memo = None
        self._obs = self._probe_observation(episode_seed)
        self._history = []
        self._tb.log_reset(self.modalities, self._obs.tolist())
        info = {"batch_sizes": allocate(np.full(len(self.modalities), 1 / len(self.modalities)),
                                        self.batch_budget, self.min_batch),
                "epoch": 0, "iteration": 0, "discrepancy": self._obs.tolist()}
        return self._obs.copy(), info

    @torch.no_grad()
    def _probe_observation(self, episode_seed: int) -> np.ndarray:
        """Discrepancy of the current model on one uniform probe batch (its own RNG).

        The probe batch is paired (the same N_B/m samples for every modality) and is
        scored with ``learner.predict``; it does not train and does not enter Eq. 3.
        """
        m = len(self.modalities)
        a = max(1, self.batch_budget // m)
        probe_gen = torch.Generator(device=self.device)
        probe_gen.manual_seed(episode_seed + 1)
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
        val_before = self.validation_metrics()["fused"]["accuracy"] if self.needs_validation else None
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
        self._val_memo = None  # the driver trains the model for this iteration after the count moved
        return idx

    def finish_step(self, packed: np.ndarray, keys: list[str], proportions: np.ndarray, sizes: list[int],
                    val_before: float | None, evaluate: Callable[[str], dict] | None = None):
        """Everything after training: observation, divergence, reward, info, episode end.

        ``packed`` is the step's one host read: ``[observation (m), train accuracy (m),
        mean losses (len(keys))]``; the reward compares with the observation the action was
        taken on (the current one). The batched vector environment calls this too, with its
        own ``evaluate``, so both report steps the same way. Returns ``step``'s 5-tuple.
        """
        val = self.validation_metrics if evaluate is None else partial(evaluate, "val")
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
        if self.needs_validation or (self.needs_final_validation and (terminated or truncated)):
            val_after = val()["fused"]["accuracy"] if not diverged else 0.0
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
            info["val_accuracy"] = val()["fused"]["accuracy"]
        ctx = RewardContext(obs_before, proportions, obs, sizes, val_before, val_after, info, terminated or truncated)
        reward = reward_value(self.reward_name, self.reward_fn(ctx), diverged, proportions)
        if terminated or truncated:
            info["test"] = evaluate("test") if not diverged else None
            self._needs_reset = True
        self.episode_step += 1
        self._tb.log_step(self.modalities, info, reward)
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

    def validation_metrics(self) -> dict[str, dict[str, float]]:
        """``evaluate("val")`` of the current model, computed once per training state.

        The model only changes by training (the iteration count moves) or by ``reset`` /
        ``load_state_dict`` (which forget the memo), so one evaluation serves the reward's
        "after" of a step, the next step's "before" and a policy's observation in between:
        with a validation reward this halves the validation passes of a run. Treat the result
        as read-only; call :meth:`evaluate` after changing the model by hand.
        """
        key = (self.iteration, id(self.learner.model) if hasattr(self.learner, "model") else 0)
        memo = self._val_memo
        if memo is None or memo[0] != key:
            memo = self._val_memo = (key, self.evaluate("val"))
        return memo[1]

    def evaluate(self, split: str = "test") -> dict[str, dict[str, float]]:
        """Metrics of the current model on ``split``: ``{"fused": {...}, modality: {...}}``."""
        fused, per = self.predict(split)
        labels, c = getattr(self.dataset, split).labels, self.dataset.num_classes
        out = {"fused": classification_metrics(fused, labels, c)}
        for mod in self.modalities:
            out[mod] = classification_metrics(per[mod], labels, c)
        return out

    # ------------------------------------------------------------------ TensorBoard (mmenv/tb.py)
    @property
    def tensorboard_writer(self) -> Any:
        """The ``SummaryWriter`` on ``log_dir`` (``None`` without one), for callers that add
        to the run's log, such as ``mmenv compare``'s hparams summary."""
        return self._tb.writer

    def tensorboard_state(self) -> dict[str, Any]:
        """Where this environment's TensorBoard log stands, for :meth:`resume_tensorboard`:
        the global step (steps logged so far over all episodes) and the last step's scalars."""
        return self._tb.state()

    def resume_tensorboard(self, state: Mapping[str, Any] | None = None) -> None:
        """Continue the log after a run was interrupted, so that no step is written twice.

        ``state`` is a :meth:`tensorboard_state` saved when the resumed-from point was
        reached (``None``: from the start). The next writer on ``log_dir`` purges every event
        at or after ``state["global_step"]`` that the interrupted run wrote (TensorBoard's
        ``purge_step``), then writes the saved last step again (its step is shared with the
        next episode's ``discrepancy_initial``, so it is purged too) and goes on from there.
        """
        self._tb.resume(state)

    def close(self) -> None:
        self._tb.close()
        super().close()
