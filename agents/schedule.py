"""Open-loop share schedules: constant shares and few-phase schedules over training progress.

These are the policies the benchmark's *oracle* and *tuned constant* are searched over
(:mod:`mmenv.experiments.oracle`). They ignore the observation: the proportions depend only
on how far the training run has got.

* :func:`share_vector` ``(m, j, s)``: modality ``j`` gets share ``s``, the other ``m - 1``
  modalities split ``1 - s`` equally (for two modalities: ``[s, 1 - s]`` or ``[1 - s, s]``).
* :class:`SchedulePolicy`: phase ``k`` applies from training progress ``switch[k - 1]`` on
  (progress = iterations done / iterations of the run, so 0 at the first step and
  ``(E - 1) / E`` at the last step of an epoch-stepped run). One phase is a constant share.

Example::

    from mmenv.agents import make_policy
    make_policy("schedule", shares=[0.7], modality=1)                  # constant: modality 1 gets 0.7
    make_policy("schedule", shares=[0.8, 0.3], switch=[0.5], modality=1)   # 0.8 for the first half, then 0.3
    make_policy("schedule", phases=[[0.2, 0.8], [0.5, 0.5]], switch=[0.6])  # full proportion vectors
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .policy import Policy, PolicyError, normalise_proportions

__all__ = ["SchedulePolicy", "share_vector"]


def share_vector(m: int, modality: int, share: float) -> np.ndarray:
    """Proportions where ``modality`` gets ``share`` and the others split the rest equally."""
    if m < 2:
        raise PolicyError(f"a share vector needs at least 2 modalities, got {m}")
    if not 0 <= modality < m:
        raise PolicyError(f"modality index {modality} is out of range for {m} modalities")
    if not (math.isfinite(share) and 0.0 <= share <= 1.0):
        raise PolicyError(f"share must lie in [0, 1], got {share}")
    p = np.full(m, (1.0 - share) / (m - 1))
    p[modality] = share
    return p


class SchedulePolicy(Policy):
    """Piecewise-constant proportions over training progress (observation ignored).

    Args:
        shares: one share per phase for modality ``modality`` (the others split the rest
            equally). Give either ``shares`` or ``phases``.
        phases: one full proportion vector per phase (normalised to sum 1; its length must
            match the environment's number of modalities).
        switch: ``len(phases) - 1`` increasing fractions in ``(0, 1)``: phase ``k`` starts
            when the fraction of the run's iterations already trained reaches ``switch[k - 1]``.
        modality: the modality index ``shares`` refer to.
    """

    name = "schedule"

    def __init__(self, shares: Sequence[float] | None = None, phases: Sequence[Sequence[float]] | None = None,
                 switch: Sequence[float] = (), modality: int = 0) -> None:
        if (shares is None) == (phases is None):
            raise PolicyError("give exactly one of shares=[s1, s2, ...] (for one modality) or "
                              "phases=[[p1, ..., pm], ...] (full proportion vectors)")
        n = len(shares) if shares is not None else len(phases)  # type: ignore[arg-type]
        if n < 1:
            raise PolicyError("a schedule needs at least one phase")
        switch = [float(x) for x in switch]
        if len(switch) != n - 1:
            raise PolicyError(f"{n} phase(s) need {n - 1} switch point(s), got {len(switch)}")
        if any(not 0.0 < x < 1.0 for x in switch) or any(b <= a for a, b in zip(switch, switch[1:])):
            raise PolicyError(f"switch points must be increasing fractions in (0, 1), got {switch}")
        if shares is not None:
            for s in shares:
                if not (isinstance(s, (int, float)) and math.isfinite(s) and 0.0 <= s <= 1.0):
                    raise PolicyError(f"shares must lie in [0, 1], got {list(shares)}")
        if phases is not None:
            lengths = {len(p) for p in phases}
            if len(lengths) != 1 or lengths.pop() < 2:
                raise PolicyError(f"phases must be proportion vectors of one length >= 2, got {phases}")
        if not (isinstance(modality, int) and modality >= 0):
            raise PolicyError(f"modality must be an index >= 0, got {modality!r}")
        self.shares = None if shares is None else [float(s) for s in shares]
        self.phases = None if phases is None else [[float(x) for x in p] for p in phases]
        self.switch = switch
        self.modality = modality
        self._total_iters: int | None = None

    def reset(self, env: Any) -> None:
        self._total_iters = int(getattr(env, "total_iters", 0)) or None
        m = len(env.modalities)
        if self.phases is not None and len(self.phases[0]) != m:
            raise PolicyError(f"schedule phases have {len(self.phases[0])} proportions but the environment has "
                              f"{m} modalities {list(env.modalities)}")
        if self.shares is not None and self.modality >= m:
            raise PolicyError(f"schedule modality index {self.modality} is out of range for the environment's "
                              f"{m} modalities {list(env.modalities)}")

    def progress(self, info: dict | None) -> float:
        """Fraction of the run's iterations trained before this action (0 without reset)."""
        if not info or not self._total_iters:
            return 0.0
        return float(info.get("iteration", 0)) / self._total_iters

    def phase(self, info: dict | None) -> int:
        t = self.progress(info)
        return sum(1 for x in self.switch if t >= x - 1e-9)

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        k = self.phase(info)
        m = np.asarray(obs).shape[-1]
        if self.phases is not None:
            return normalise_proportions(np.asarray(self.phases[k]))
        return share_vector(m, self.modality, self.shares[k])  # type: ignore[index]

    def __repr__(self) -> str:
        what = f"shares={self.shares}, modality={self.modality}" if self.shares is not None else f"phases={self.phases}"
        return f"SchedulePolicy({what}, switch={self.switch})"
