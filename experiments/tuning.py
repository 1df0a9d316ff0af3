"""Tuned heuristics: the fixed ratio, DUS-H and val-gain with their parameters chosen on the train instances.

A learned sampling policy must beat the hand-written rules *at their best*, not only at the
paper's defaults. Each rule has a strength (the fixed ratio's ``ratio``, DUS-H's start ratio
``beta``; val-gain's ``share``, :class:`mmenv.agents.heuristics.ValGainPolicy`) and, for the
first two, a direction (``"less"``: the modality that is ahead gets less, the paper's
reading; ``"more"``: it gets more, which wins where the modalities behind are noisy rather
than slow). :func:`tune_heuristics` picks, per rule, the candidate of :func:`heuristic_grid`
with the best mean gain over uniform across the *train* instances on the *tuning* seeds:
the same protocol as the tuned constant (:func:`mmenv.experiments.oracle.tuned_constant`).
The paper's default setting is in the grid, so the tuned rule is never worse than the
untuned one on the tuning seeds; uniform (``ratio = 1``) is not, so a rule whose every
setting loses to uniform keeps its (negative) gain rather than becoming uniform.

The evaluation seeds never reach the tuning: :func:`tuning_specs` lists exactly the runs the
tuning needs (train instances x candidates and uniform x tuning seeds), and
:func:`tune_heuristics` refuses tuning seeds that overlap the evaluation seeds
(:class:`~mmenv.experiments.oracle.SeedOverlapError`) and asks its accuracy callback for
tuning seeds only.

Typical use inside a benchmark (``run_spec`` builds a run of a policy on an instance with a
seed, ``acc`` reads a finished run's fused test accuracy)::

    grid = heuristic_grid()
    runner.run(tuning_specs(train, grid, cfg.tuning_seeds, run_spec))
    tuned = tune_heuristics(train, lambda i, p, kw, s: acc(runner.get(run_spec(i, p, kw, s))),
                            cfg.tuning_seeds, cfg.eval_seeds, grid)
    for name, t in tuned.heuristics.items():     # then score t.policy / t.policy_kwargs on the test
        print(t.label, t.gain)                   # instances x evaluation seeds, as the references

:class:`TunedHeuristicBaseline` wraps one rule in the benchmark's tuned-baseline protocol
(``label``, ``search_specs(plan, iset)``, ``choose(plan, iset, runner)``,
``candidate(choice, m)``), so a staged benchmark adds the tuned rules with
``run_tuned(plan, runner, TUNED_BASELINES + tuned_heuristic_baselines())``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmenv.errors import MMEnvError

from .oracle import check_disjoint_seeds

__all__ = ["HeuristicCandidate", "heuristic_grid", "tuning_specs", "tune_heuristics", "TunedHeuristic",
           "TuningResult", "TuningError", "TunedHeuristicBaseline", "tuned_heuristic_baselines", "run_accuracy",
           "DEFAULT_RATIOS", "DEFAULT_BETAS", "UNIFORM"]

#: The fixed ratio's candidate strengths (smaller-to-larger batch ratio; 0.5 is the paper's).
DEFAULT_RATIOS: tuple[float, ...] = (0.25, 0.5, 0.75)
#: DUS-H's candidate start ratios (0.5 is the paper's).
DEFAULT_BETAS: tuple[float, ...] = (0.25, 0.5, 0.75)
#: The val-gain rule's candidate shares for the modality that rose most (0.75 is its default).
DEFAULT_GAIN_SHARES: tuple[float, ...] = (0.6, 0.75, 0.9)
#: The reference every gain is measured against: the policy name and its (empty) kwargs.
UNIFORM: tuple[str, dict[str, Any]] = ("uniform", {})

_TUNABLE = {"fixed": ("ratio", "fixed-ratio"), "dus-h": ("beta", "dus-h"), "val-gain": ("share", "val-gain")}


class TuningError(MMEnvError, ValueError):
    """The heuristics cannot be tuned as asked (no train instance, an empty grid, every candidate failed)."""


@dataclass(frozen=True)
class HeuristicCandidate:
    """One setting of a rule: the registered policy name and its keyword arguments."""

    policy: str                      # "fixed" or "dus-h"
    kwargs: tuple[tuple[str, Any], ...]

    @property
    def policy_kwargs(self) -> dict[str, Any]:
        return dict(self.kwargs)

    @property
    def label(self) -> str:
        """``fixed-ratio(ratio=0.25,more)``: the rule, its strength and its direction."""
        param, name = _TUNABLE.get(self.policy, ("", self.policy))
        kw = self.policy_kwargs
        if not param:
            return name
        direction = f",{kw.get('direction', 'less')}" if self.policy in ("fixed", "dus-h") else ""
        return f"{name}({param}={kw.get(param)}{direction})"


def heuristic_grid(ratios: Sequence[float] = DEFAULT_RATIOS, betas: Sequence[float] = DEFAULT_BETAS,
                   directions: Sequence[str] = ("less", "more"),
                   gain_shares: Sequence[float] = DEFAULT_GAIN_SHARES) -> dict[str, list[HeuristicCandidate]]:
    """The candidates per rule: ``{"fixed": [...], "dus-h": [...], "val-gain": [...]}``: strength x
    direction for the two direction rules, the rising modality's share for val-gain.

    The paper's defaults (``ratio = 0.5`` / ``beta = 0.5``, ``"less"``) and val-gain's (``share =
    0.75``) are in the default grid, so tuning can only improve on them on the tuning seeds.
    Strengths and shares must lie in ``(0, 1)`` (a ratio of 1 would be the uniform split).
    """
    from mmenv.agents.heuristics import DIRECTIONS

    for what, vals in (("ratios", ratios), ("betas", betas), ("gain_shares", gain_shares)):
        if not vals or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < float(v) < 1.0
                           for v in vals):
            raise TuningError(f"heuristic_grid: {what} must be a non-empty list of numbers in (0, 1), got {list(vals)}")
    if not directions or any(d not in DIRECTIONS for d in directions):
        raise TuningError(f"heuristic_grid: directions must be a non-empty subset of {list(DIRECTIONS)}, "
                          f"got {list(directions)}")
    return {
        "fixed": [HeuristicCandidate("fixed", (("ratio", float(r)), ("direction", d)))
                  for r, d in itertools.product(ratios, directions)],
        "dus-h": [HeuristicCandidate("dus-h", (("beta", float(b)), ("direction", d)))
                  for b, d in itertools.product(betas, directions)],
        "val-gain": [HeuristicCandidate("val-gain", (("share", float(x)),)) for x in gain_shares],
    }


def tuning_specs(instances: Sequence[Any], grid: Mapping[str, Sequence[HeuristicCandidate]],
                 tuning_seeds: Sequence[int], run_spec: Callable[[Any, str, dict[str, Any], int], Any]) -> list[Any]:
    """Every run the tuning needs: each train instance x (uniform + each candidate) x each tuning seed.

    ``run_spec(instance, policy, policy_kwargs, seed)`` builds one run (the benchmark's
    ``RunSpec``); the list holds no evaluation seed by construction.
    """
    out = []
    for inst in instances:
        for policy, kwargs in [UNIFORM] + [(c.policy, c.policy_kwargs) for cands in grid.values() for c in cands]:
            out += [run_spec(inst, policy, dict(kwargs), int(seed)) for seed in tuning_seeds]
    return out


@dataclass
class TunedHeuristic:
    """A rule's chosen setting and its mean gain over uniform (points of accuracy as a fraction)."""

    name: str                          # "fixed" or "dus-h"
    best: HeuristicCandidate
    gain: float                        # mean over train instances of the mean gain on the tuning seeds
    gains: dict[str, float] = field(default_factory=dict)          # candidate label -> mean gain
    per_instance: dict[str, float] = field(default_factory=dict)   # instance label -> the best's mean gain

    @property
    def policy(self) -> str:
        return self.best.policy

    @property
    def policy_kwargs(self) -> dict[str, Any]:
        return self.best.policy_kwargs

    @property
    def label(self) -> str:
        """The report's row label: ``fixed-ratio tuned (ratio=0.25,more)``."""
        inner = self.best.label
        return inner.replace("(", " tuned (", 1) if "(" in inner else f"{inner} tuned"


@dataclass
class TuningResult:
    """The tuned rules and what they were tuned on (train instance labels, tuning seeds)."""

    heuristics: dict[str, TunedHeuristic]
    tuning_seeds: list[int]
    instances: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"tuning_seeds": list(self.tuning_seeds), "instances": list(self.instances),
                "heuristics": {k: {"policy": v.policy, "policy_kwargs": v.policy_kwargs, "label": v.label,
                                   "gain": v.gain, "gains": dict(v.gains), "per_instance": dict(v.per_instance)}
                               for k, v in self.heuristics.items()}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)


def _label(inst: Any) -> str:
    label = getattr(inst, "label", None)
    return label() if callable(label) else str(inst)


def tune_heuristics(instances: Sequence[Any], accuracy: Callable[[Any, str, dict[str, Any], int], float],
                    tuning_seeds: Sequence[int], evaluation_seeds: Sequence[int],
                    grid: Mapping[str, Sequence[HeuristicCandidate]] | None = None) -> TuningResult:
    """Per rule, the candidate with the best mean gain over uniform on the train ``instances``.

    Args:
        instances: the train instances (never test ones: the caller passes ``iset.train``).
        accuracy: ``accuracy(instance, policy, policy_kwargs, seed)`` -> fused test accuracy of
            that finished run (NaN for a failed one). Called with tuning seeds only.
        tuning_seeds: the seeds the choice is made on.
        evaluation_seeds: the benchmark's evaluation seeds; only checked to be disjoint from
            ``tuning_seeds`` (:class:`~mmenv.experiments.oracle.SeedOverlapError` otherwise).
        grid: :func:`heuristic_grid` (its default when ``None``).

    Gain of a candidate on an instance = mean over tuning seeds of (its accuracy - uniform's),
    paired by seed; its score = the mean of those gains over the instances. A candidate that
    fails (NaN) on any instance and seed is not chosen; ties keep the earlier candidate.
    """
    if not instances:
        raise TuningError("tune_heuristics needs at least one train instance")
    check_disjoint_seeds(tuning_seeds, evaluation_seeds, "heuristic tuning: ")
    grid = heuristic_grid() if grid is None else grid
    seeds = [int(s) for s in tuning_seeds]
    uniform = {(_label(i), s): float(accuracy(i, UNIFORM[0], dict(UNIFORM[1]), s)) for i in instances for s in seeds}
    out: dict[str, TunedHeuristic] = {}
    for name, cands in grid.items():
        if not cands:
            raise TuningError(f"tune_heuristics: the grid of {name!r} is empty")
        best: TunedHeuristic | None = None
        gains: dict[str, float] = {}
        for c in cands:
            per_instance = {}
            for inst in instances:
                d = [float(accuracy(inst, c.policy, c.policy_kwargs, s)) - uniform[(_label(inst), s)] for s in seeds]
                per_instance[_label(inst)] = float(np.mean(d)) if all(np.isfinite(d)) else float("nan")
            vals = list(per_instance.values())
            g = float(np.mean(vals)) if all(np.isfinite(vals)) else float("nan")
            gains[c.label] = g
            if np.isfinite(g) and (best is None or g > best.gain):
                best = TunedHeuristic(name, c, g, per_instance=per_instance)
        if best is None:
            raise TuningError(f"tune_heuristics: every candidate of {name!r} failed on some train instance and "
                              "tuning seed; look at the failed runs (status 'failed' or 'diverged') first")
        best.gains = gains
        out[name] = best
    return TuningResult(out, seeds, [_label(i) for i in instances])


# ---------------------------------------------------------------------- the benchmark's tuned-baseline stage
def run_accuracy(result: Mapping[str, Any] | None) -> float:
    """Fused test accuracy of a finished run's result; NaN for a missing, failed or diverged one."""
    if not result or result.get("status") != "ok":
        return float("nan")
    return float(((result.get("test") or {}).get("fused") or {}).get("accuracy", float("nan")))


class TunedHeuristicBaseline:
    """One rule (``"fixed"``, ``"dus-h"`` or ``"val-gain"``) tuned per instance set, as a benchmark tuned baseline.

    Duck-types the staged benchmark's ``TunedBaseline`` protocol: ``plan`` provides
    ``cfg.tuning_seeds``, ``cfg.eval_seeds`` and ``spec(instance, candidate, seed)`` (which reads
    the candidate's ``policy`` and ``policy_kwargs``); ``runner.get(spec)`` returns a finished
    run's result. The choice is a :class:`TunedHeuristic`; on a test instance it plays its
    :class:`HeuristicCandidate` (any number of modalities).
    """

    def __init__(self, rule: str, candidates: Sequence[HeuristicCandidate] | None = None) -> None:
        if rule not in _TUNABLE:
            raise TuningError(f"TunedHeuristicBaseline: rule must be one of {sorted(_TUNABLE)}, got {rule!r}")
        self.rule = rule
        self.candidates = list(candidates) if candidates is not None else heuristic_grid()[rule]
        if not self.candidates or any(c.policy != rule for c in self.candidates):
            raise TuningError(f"TunedHeuristicBaseline({rule!r}): candidates must be non-empty settings of {rule!r}")
        self.label = f"{_TUNABLE[rule][1]}-tuned"

    def _spec(self, plan: Any) -> Callable[[Any, str, dict[str, Any], int], Any]:
        return lambda inst, policy, kwargs, seed: plan.spec(inst, HeuristicCandidate(policy, tuple(kwargs.items())),
                                                            seed)

    def search_specs(self, plan: Any, iset: Any) -> list[Any]:
        """Uniform and every candidate on the set's train instances x tuning seeds."""
        return tuning_specs(iset.train, {self.rule: self.candidates}, plan.cfg.tuning_seeds, self._spec(plan))

    def choose(self, plan: Any, iset: Any, runner: Any) -> TunedHeuristic:
        spec = self._spec(plan)

        def accuracy(inst: Any, policy: str, kwargs: dict[str, Any], seed: int) -> float:
            return run_accuracy(runner.get(spec(inst, policy, kwargs, seed)))

        result = tune_heuristics(iset.train, accuracy, plan.cfg.tuning_seeds, plan.cfg.eval_seeds,
                                 {self.rule: self.candidates})
        return result.heuristics[self.rule]

    def candidate(self, choice: TunedHeuristic, m: int) -> HeuristicCandidate:
        return choice.best


def tuned_heuristic_baselines(grid: Mapping[str, Sequence[HeuristicCandidate]] | None = None
                              ) -> tuple[TunedHeuristicBaseline, ...]:
    """The tuned fixed ratio, DUS-H and val-gain, in report order (``grid``: :func:`heuristic_grid`)."""
    grid = heuristic_grid() if grid is None else grid
    return tuple(TunedHeuristicBaseline(rule, grid[rule]) for rule in ("fixed", "dus-h", "val-gain") if rule in grid)
