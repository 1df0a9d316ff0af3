"""Save and restore a :class:`mmenv.DUSEnv` mid-run: its state dict and checkpoint files.

:class:`EnvStateMixin` gives the environment ``state_dict`` / ``load_state_dict``,
``save_checkpoint`` / ``load_checkpoint``, ``last_observation`` and ``data_fingerprint``.
It is part of ``DUSEnv`` (written apart so that ``mmenv/env.py`` holds the environment's
core job), so it reads and writes the environment's own attributes, declared below.
The file format and the safe loading are :mod:`mmenv.checkpoint`'s.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from .datasets import MultimodalDataset
from .datasets.base import data_fingerprint, fingerprints_differ
from .discrepancy import DiscrepancyTracker
from .learners import Learner
from .sampling import ModalitySampler, SampleOrder
from .tb import EnvTensorBoard

__all__ = ["EnvStateMixin"]


class EnvStateMixin:
    """The checkpoint half of :class:`mmenv.DUSEnv` (see the module docstring)."""

    # Set by DUSEnv.__init__ / reset (declared here for the type checker).
    dataset: MultimodalDataset
    learner: Learner
    sample_order: SampleOrder
    sampler: ModalitySampler
    tracker: DiscrepancyTracker
    modalities: tuple[str, ...]
    device: torch.device
    epochs: int
    batch_budget: int
    step_every: str | int
    iters_per_epoch: int
    min_batch: int
    symmetric: bool
    action_space_name: str
    episode_seed: int | None
    generator: torch.Generator
    iteration: int
    episode_step: int
    _epoch_started: int
    _obs: np.ndarray
    _needs_reset: bool
    _val_memo: tuple[tuple[int, int], dict[str, dict[str, float]]] | None
    _data_fingerprint: str | None
    _np_random: np.random.Generator | None
    _np_random_seed: int | None
    _tb: EnvTensorBoard
    reset: Callable[..., Any]

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
        if self._data_fingerprint is None:
            self._data_fingerprint = data_fingerprint(self.dataset)
        return self._data_fingerprint

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
            "global_step": self._tb.global_step,
            "needs_reset": self._needs_reset,
            "np_random": None if bit_gen is None else copy.deepcopy(bit_gen.state),
            "np_random_seed": self._np_random_seed,
            "episode": None,
        }
        if self.episode_seed is not None:
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
        self._tb.global_step = int(state["global_step"])
        self._needs_reset = bool(state["needs_reset"])
        self._val_memo = None  # the model was replaced: no validation pass of the old one may serve

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

