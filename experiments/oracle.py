"""The benchmark's reference points found by search: the per-instance oracle and the tuned constant.

* **Candidates** (:func:`candidate_grid`): uniform; constant shares (modality ``j`` gets
  ``s``, the others split the rest equally) for every modality and every share of the grid;
  two-phase schedules ``s1 -> s2`` switching at each fraction of the run in ``switches``; and
  optionally three-phase schedules ``s1 -> s2 -> s3`` switching at ``three_phase_switches``.
  Each candidate is the ``"schedule"`` policy (:class:`mmenv.agents.SchedulePolicy`) with full
  proportion vectors, so one vector gives one run key whichever way it was generated
  (for two modalities "modality 0 gets 0.2" and "modality 1 gets 0.8" are one candidate).
* **Oracle** (:func:`search_oracle`): the candidate with the best mean objective over the
  *tuning* seeds. The benchmark then scores it on *evaluation* seeds that never overlap the
  tuning seeds (:func:`check_disjoint_seeds`), so the oracle's reported accuracy is not
  inflated by picking the luckiest candidate on the same seeds (the winner's curse).
  Ties go to the earlier candidate: uniform before constants before schedules.
* **Tuned constant** (:func:`tuned_constant`): one ``(modality j, share s)`` for a whole
  train set, chosen by the mean over train instances of the mean gain over uniform on the
  tuning seeds: the honest non-learning baseline that an agent must beat. It knows nothing
  about an instance (not which modality is strong), as a policy that ignores its
  observation cannot.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from mmenv.agents.schedule import share_vector

from mmenv.errors import InvalidArgumentError, MMEnvError

__all__ = ["Candidate", "candidate_grid", "constant_candidate", "search_oracle", "OracleResult", "tuned_constant",
           "TunedConstant", "check_disjoint_seeds", "SeedOverlapError", "SearchError"]


class SearchError(MMEnvError, ValueError):
    """A search cannot choose: no candidate, no seed or train instance, or every candidate failed."""


class SeedOverlapError(MMEnvError, ValueError):
    """Tuning and evaluation seeds overlap: a choice made on seeds would be scored on the same seeds."""


def check_disjoint_seeds(tuning: Sequence[int], evaluation: Sequence[int], what: str = "") -> None:
    """Raise :class:`SeedOverlapError` when the two seed lists share a seed (or either is empty)."""
    if not tuning or not evaluation:
        raise SeedOverlapError(f"{what}tuning and evaluation seeds must both be non-empty, got {list(tuning)} and "
                               f"{list(evaluation)}")
    common = sorted(set(int(s) for s in tuning) & set(int(s) for s in evaluation))
    if common:
        raise SeedOverlapError(f"{what}tuning seeds {list(tuning)} and evaluation seeds {list(evaluation)} share "
                               f"{common}: choose disjoint lists (e.g. tuning 100-104, evaluation 0-4)")


def _fmt(x: float) -> str:
    return f"{x:.3g}"


@dataclass(frozen=True)
class Candidate:
    """One open-loop share schedule: proportion vectors per phase and the switch points."""

    label: str
    kind: str                                    # "uniform", "constant", "two-phase", "three-phase"
    phases: tuple[tuple[float, ...], ...]
    switch: tuple[float, ...] = ()

    @property
    def policy(self) -> str:
        return "uniform" if self.kind == "uniform" else "schedule"

    @property
    def policy_kwargs(self) -> dict[str, Any]:
        if self.kind == "uniform":
            return {}
        return {"phases": [list(p) for p in self.phases], "switch": list(self.switch)}

    @property
    def vector_key(self) -> tuple:
        return (self.phases, self.switch)


def _vec(m: int, j: int, s: float) -> tuple[float, ...]:
    return tuple(round(float(x), 6) for x in share_vector(m, j, s))


def constant_candidate(m: int, modality: int, share: float) -> Candidate:
    """Modality ``modality`` gets ``share`` for the whole run (uniform when ``share == 1/m``)."""
    v = _vec(m, modality, share)
    if np.allclose(v, 1.0 / m, atol=1e-6):
        return Candidate("uniform", "uniform", (tuple([round(1.0 / m, 6)] * m),))
    return Candidate(f"m{modality}={_fmt(share)}", "constant", (v,))


def candidate_grid(m: int, shares: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9),
                   phase_shares: Sequence[float] = (0.2, 0.5, 0.8), switches: Sequence[float] = (1 / 3, 2 / 3),
                   three_phase_switches: Sequence[float] | None = None) -> list[Candidate]:
    """The oracle's search space for ``m`` modalities, without duplicates (see the module docstring).

    ``shares`` and ``phase_shares`` are shares of one modality ``j`` (each ``j`` in turn).
    A phase share equal to ``1/m`` is the uniform split. ``three_phase_switches`` (two
    fractions) adds every three-phase schedule of ``phase_shares`` whose consecutive phases differ.
    """
    if m < 2:
        raise InvalidArgumentError(f"an oracle grid needs at least 2 modalities, got {m}")
    for name, vals in (("shares", shares), ("phase_shares", phase_shares)):
        if any(not 0.0 <= s <= 1.0 for s in vals):
            raise InvalidArgumentError(f"{name} must lie in [0, 1], got {list(vals)}")
    if any(not 0.0 < x < 1.0 for x in switches):
        raise InvalidArgumentError(f"switches must be fractions in (0, 1), got {list(switches)}")
    out: list[Candidate] = [constant_candidate(m, 0, 1.0 / m)]
    seen = {out[0].vector_key}

    def add(c: Candidate) -> None:
        if c.vector_key not in seen:
            seen.add(c.vector_key)
            out.append(c)

    for j in range(m):
        for s in shares:
            add(constant_candidate(m, j, s))
    for j in range(m):
        for s1, s2 in itertools.permutations(phase_shares, 2):
            for x in switches:
                add(Candidate(f"m{j}={_fmt(s1)}>{_fmt(s2)}@{_fmt(x)}", "two-phase",
                              (_vec(m, j, s1), _vec(m, j, s2)), (round(float(x), 6),)))
    if three_phase_switches is not None:
        x1, x2 = sorted(float(x) for x in three_phase_switches)
        if not 0.0 < x1 < x2 < 1.0:
            raise InvalidArgumentError(f"three_phase_switches must be two increasing fractions in (0, 1), got "
                             f"{list(three_phase_switches)}")
        for j in range(m):
            for s1, s2, s3 in itertools.product(phase_shares, repeat=3):
                if s1 == s2 or s2 == s3:
                    continue
                add(Candidate(f"m{j}={_fmt(s1)}>{_fmt(s2)}>{_fmt(s3)}@{_fmt(x1)},{_fmt(x2)}", "three-phase",
                              (_vec(m, j, s1), _vec(m, j, s2), _vec(m, j, s3)),
                              (round(x1, 6), round(x2, 6))))
    return out


@dataclass
class OracleResult:
    """The chosen candidate and every candidate's mean objective on the tuning seeds."""

    best: Candidate
    tuning_mean: dict[str, float] = field(default_factory=dict)
    tuning_seeds: list[int] = field(default_factory=list)


def search_oracle(candidates: Sequence[Candidate], objective: Callable[[Candidate, int], float],
                  tuning_seeds: Sequence[int]) -> OracleResult:
    """The candidate with the highest mean ``objective(candidate, seed)`` over ``tuning_seeds``.

    A candidate whose objective is NaN on any seed (a failed or diverged run) is not chosen.
    Ties keep the earlier candidate.
    """
    if not candidates:
        raise SearchError("search_oracle needs at least one candidate")
    if not tuning_seeds:
        raise SearchError("search_oracle needs at least one tuning seed")
    means: dict[str, float] = {}
    best: Candidate | None = None
    for c in candidates:
        vals = [float(objective(c, int(s))) for s in tuning_seeds]
        mean = float(np.mean(vals)) if all(np.isfinite(vals)) else float("nan")
        means[c.label] = mean
        if np.isfinite(mean) and (best is None or mean > means[best.label]):
            best = c
    if best is None:
        raise SearchError("every oracle candidate failed on some tuning seed: no oracle can be chosen")
    return OracleResult(best, means, [int(s) for s in tuning_seeds])


@dataclass
class TunedConstant:
    """One ``(modality, share)`` for a train set and its mean gain over uniform on tuning seeds."""

    modality: int
    share: float
    gain: float
    gains: dict[str, float] = field(default_factory=dict)   # "m<j>=<s>" -> mean gain over the train set

    @property
    def label(self) -> str:
        return f"m{self.modality}={_fmt(self.share)}"

    def candidate(self, m: int) -> Candidate:
        """The constant for an instance with ``m`` modalities."""
        if self.modality >= m:
            raise InvalidArgumentError(f"the tuned constant gives modality {self.modality} a share, but the instance has "
                             f"only {m} modalities")
        return constant_candidate(m, self.modality, self.share)


def tuned_constant(instances: Sequence[Any], num_modalities: Mapping[Any, int],
                   gain: Callable[[Any, Candidate, int], float], tuning_seeds: Sequence[int],
                   shares: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)) -> TunedConstant:
    """The ``(j, s)`` maximising the mean over ``instances`` of the mean ``gain(instance, candidate, seed)``.

    ``gain`` is the candidate's accuracy minus uniform's on that instance and seed;
    ``j`` runs over the modality indices every instance has. The share 1/m (uniform on an
    instance with m modalities) is a candidate with gain 0, so the tuned constant is never
    worse than uniform on the tuning seeds.
    """
    if not instances:
        raise SearchError("tuned_constant needs at least one train instance")
    m_min = min(num_modalities[i] for i in instances)
    best: TunedConstant | None = None
    gains: dict[str, float] = {}
    for j in range(m_min):
        for s in shares:
            per_instance = []
            for inst in instances:
                c = constant_candidate(num_modalities[inst], j, s)
                vals = [float(gain(inst, c, int(seed))) for seed in tuning_seeds]
                per_instance.append(float(np.mean(vals)) if all(np.isfinite(vals)) else float("nan"))
            g = float(np.mean(per_instance)) if all(np.isfinite(per_instance)) else float("nan")
            label = f"m{j}={_fmt(s)}"
            if label in gains:
                continue
            gains[label] = g
            if np.isfinite(g) and (best is None or g > best.gain):
                best = TunedConstant(j, float(s), g)
    if best is None:
        raise SearchError("every constant share failed on some train instance: no tuned constant can be chosen")
    best.gains = gains
    return best
