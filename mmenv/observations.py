"""The benchmark environment's observations (``observation=`` of ``mmenv/DUSBench-v0``).

``mmenv/DUS-v0`` observes the paper's cumulative discrepancy only. The benchmark offers three
observation modes, built here from the environment's ``info`` and public methods:

``"paper"``
    The cumulative discrepancy ``s^`` (Eq. 3), ``(m,)``: exactly DUS-v0's.
``"extended"``
    ``(4m + 1,)``: the discrepancy (m), training progress (1), the proportions applied at the
    last step (m), each modality's training loss / ln C clipped to ``[0, 4]`` (m) and its
    training accuracy (m). Grouped by feature, not by modality.
``"modal"``
    Laid out **per modality** for permutation-equivariant policies
    (:mod:`mmenv.agents.equivariant`): for each modality, in the environment's modality order,
    :data:`MODAL_FEATURES` = [discrepancy, last proportion, training loss / ln C, training
    accuracy, validation accuracy of that modality's own output], then the change of each of
    the five since the previous step (0 before the first action); then the global features
    :data:`MODAL_GLOBALS` = [progress]. ``(10m + 1,)`` values. The validation accuracies come
    from one ``evaluate("val")`` per step (shared with the reward's), so a policy can tell a
    *slow* modality (validation accuracy rising with its share) from a *noisy* one
    (training accuracy rising while validation accuracy does not).

:func:`observation_layout` gives ``(m, per-modality width, global width)`` for the modes
laid out per modality (``"paper"``: ``(m, 1, 0)``; ``"modal"``: ``(m, 10, 1)``), and
:func:`infer_observation` recognises a mode from an observation length and m (how a saved
agent without a record of its observation is read).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from .errors import InvalidArgumentError

__all__ = ["OBSERVATIONS", "MODAL_FEATURES", "MODAL_GLOBALS", "LOSS_CLIP", "observation_space",
           "observation_names", "observation_layout", "infer_observation", "ObservationBuilder"]

OBSERVATIONS = ("paper", "extended", "modal")
LOSS_CLIP = 4.0
#: per-modality base features of ``"modal"`` (each followed, after all five, by its change)
MODAL_FEATURES = ("discrepancy", "proportion", "train_loss", "train_accuracy", "val_accuracy")
MODAL_GLOBALS = ("progress",)
_BASE_HIGH = np.array([1.0, 1.0, LOSS_CLIP, 1.0, 1.0])


def check_observation(mode: str) -> str:
    if mode not in OBSERVATIONS:
        raise InvalidArgumentError(f"unknown observation {mode!r}; valid: {list(OBSERVATIONS)}")
    return mode


def observation_size(mode: str, m: int) -> int:
    return {"paper": m, "extended": 4 * m + 1, "modal": 2 * len(MODAL_FEATURES) * m + len(MODAL_GLOBALS)}[mode]


def observation_space(mode: str, m: int, paper_space: spaces.Box | None = None) -> spaces.Box:
    """The Box of ``mode`` for m modalities (``paper_space``: the wrapped env's own, for ``"paper"``)."""
    check_observation(mode)
    if mode == "paper":
        return paper_space if paper_space is not None else spaces.Box(0.0, 1.0, (m,), np.float32)
    if mode == "extended":
        high = np.concatenate([np.ones(2 * m + 1), np.full(m, LOSS_CLIP), np.ones(m)]).astype(np.float32)
        return spaces.Box(np.zeros_like(high), high, dtype=np.float32)
    per_high = np.concatenate([_BASE_HIGH, _BASE_HIGH])
    per_low = np.concatenate([np.zeros_like(_BASE_HIGH), -_BASE_HIGH])
    high = np.concatenate([np.tile(per_high, m), np.ones(len(MODAL_GLOBALS))]).astype(np.float32)
    low = np.concatenate([np.tile(per_low, m), np.zeros(len(MODAL_GLOBALS))]).astype(np.float32)
    return spaces.Box(low, high, dtype=np.float32)


def observation_names(mode: str, modalities: Sequence[str]) -> list[str]:
    """One name per observation entry, in order (plots, logs)."""
    check_observation(mode)
    mods = list(modalities)
    if mode == "paper":
        return [f"discrepancy/{mod}" for mod in mods]
    if mode == "extended":
        names = [f"discrepancy/{mod}" for mod in mods] + ["progress"] + [f"proportion/{mod}" for mod in mods]
        return names + [f"train_loss/{mod}" for mod in mods] + [f"train_accuracy/{mod}" for mod in mods]
    per = list(MODAL_FEATURES) + [f"delta_{f}" for f in MODAL_FEATURES]
    return [f"{f}/{mod}" for mod in mods for f in per] + list(MODAL_GLOBALS)


def observation_layout(mode: str, m: int) -> tuple[int, int, int] | None:
    """``(m, per-modality width k, global width g)`` when ``mode`` is laid out per modality
    (entries ``[i*k:(i+1)*k]`` belong to modality i, the last g are global); else ``None``."""
    check_observation(mode)
    if mode == "paper":
        return (m, 1, 0)
    if mode == "modal":
        return (m, 2 * len(MODAL_FEATURES), len(MODAL_GLOBALS))
    return None


def infer_observation(length: int, m: int) -> str | None:
    """The mode whose observation has ``length`` entries for m modalities (``None`` if none does)."""
    for mode in OBSERVATIONS:
        if observation_size(mode, m) == length:
            return mode
    return None


class ObservationBuilder:
    """Turns the wrapped environment's observation and ``info`` into the ``mode`` observation.

    Stateful for ``"modal"`` (it remembers the previous step's features for the changes);
    :meth:`reset` starts an episode. ``val_metrics`` is a callable returning
    ``env.evaluate("val")`` for the current model (the wrapper caches it per step).
    """

    def __init__(self, mode: str, modalities: Sequence[str], num_classes: int) -> None:
        self.mode = check_observation(mode)
        self.modalities = tuple(modalities)
        self.num_classes = int(num_classes)
        self._previous: np.ndarray | None = None

    @property
    def needs_validation(self) -> bool:
        """Whether the mode reads validation metrics every step."""
        return self.mode == "modal"

    def _train_signals(self, info: Mapping[str, Any] | None, total_iters: int) -> tuple[float, np.ndarray,
                                                                                        np.ndarray, np.ndarray]:
        m, c = len(self.modalities), self.num_classes
        if info is None or "proportions" not in info:  # before the first action
            return 0.0, np.full(m, 1.0 / m), np.ones(m), np.full(m, 1.0 / c)
        progress = float(info["iteration"]) / float(total_iters)
        props = np.asarray(info["proportions"], dtype=np.float64)
        losses = info["train_loss"]
        fallback = losses.get("fused", losses.get("total", math.log(c)))
        loss = np.array([losses.get(mod, fallback) for mod in self.modalities], dtype=np.float64) / math.log(c)
        acc = np.array([info["train_accuracy"][mod] for mod in self.modalities], dtype=np.float64)
        loss = np.clip(np.nan_to_num(loss, nan=LOSS_CLIP, posinf=LOSS_CLIP), 0.0, LOSS_CLIP)
        acc = np.clip(np.nan_to_num(acc, nan=0.0), 0.0, 1.0)
        return progress, props, loss, acc

    def reset(self) -> None:
        self._previous = None

    def state(self) -> torch.Tensor | None:
        """The episode state (the previous step's per-modality values behind the change
        features), as a tensor a checkpoint can hold; :meth:`load_state` restores it."""
        return None if self._previous is None else torch.as_tensor(self._previous)

    def load_state(self, state: Any) -> None:
        self._previous = None if state is None else np.asarray(state, dtype=np.float64)

    def build(self, obs: np.ndarray, info: Mapping[str, Any] | None, total_iters: int,
              val_metrics: Any = None, diverged: bool = False) -> np.ndarray:
        """The observation of ``mode`` (``info=None`` at reset)."""
        s = np.asarray(obs, dtype=np.float64)
        if self.mode == "paper":
            return np.asarray(obs, np.float32)
        progress, props, loss, acc = self._train_signals(info, total_iters)
        if self.mode == "extended":
            return np.concatenate([s, [progress], props, loss, acc]).astype(np.float32)
        if diverged:
            val = np.zeros(len(self.modalities))
        else:
            metrics = val_metrics()
            val = np.array([metrics[mod]["accuracy"] for mod in self.modalities], dtype=np.float64)
            val = np.clip(np.nan_to_num(val, nan=0.0), 0.0, 1.0)
        base = np.stack([np.clip(np.nan_to_num(s, nan=0.0), 0.0, 1.0), props, loss, acc, val], axis=1)  # (m, 5)
        delta = np.zeros_like(base) if self._previous is None else base - self._previous
        self._previous = base
        per = np.concatenate([base, delta], axis=1)  # (m, 10)
        return np.concatenate([per.reshape(-1), [progress]]).astype(np.float32)
