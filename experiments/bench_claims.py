"""The benchmark's claims: agent rows over agent seeds, the best heuristic, directions, RESULT lines.

The learned policy is judged against the hand-written rules at their best, on held-out test
instances, with every agent seed counted:

* **Row scores** (:func:`row_table`): a policy's normalised scores on the test instances with
  headroom as ``table[agent seed][instance][evaluation seed]`` (a non-learning policy is one
  "seed", 0). An agent row is aggregated over agent seeds x instances x evaluation seeds with
  :func:`mmenv.experiments.stats.aggregate_agent_seeds` (stratified bootstrap, one stratum per
  instance), and each agent seed's own IQM is kept.
* **Best heuristic** (:data:`HEURISTICS`): the untuned fixed ratio, DUS-H, discrepancy and
  val-gain rules and the tuned fixed ratio, DUS-H and val-gain; the one with the highest IQM
  is named.
* **Agent minus best heuristic**: paired by instance and evaluation seed
  (:func:`mmenv.experiments.stats.paired_seed_difference`).
* **Direction of a test instance** (:func:`instance_direction`): does the oracle (chosen on
  the tuning seeds) give the modality that is *ahead* under uniform (largest cumulative
  discrepancy at the end of the uniform runs on the evaluation seeds) less than ``1/m`` (``up``:
  the modalities behind get more) or more (``down``), averaged over the schedule's phases
  (:func:`mmenv.experiments.direction_study.direction_of`'s rule).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .bench_data import BenchData
from .direction_study import direction_of
from .instances import Instance
from .oracle import Candidate
from .stats import AgentSeedAggregate, aggregate_agent_seeds, paired_seed_difference, stratified_bootstrap_ci

__all__ = ["HEURISTICS", "DIRECTIONS", "row_table", "agent_aggregate", "best_heuristic", "agent_minus_heuristic",
           "mean_share", "instance_direction", "claim_lines"]

#: The hand-written rules a learned policy must beat (their labels in the tables): untuned and tuned.
HEURISTICS: tuple[str, ...] = ("fixed-ratio", "dus-h", "discrepancy", "val-gain", "fixed-ratio-tuned", "dus-h-tuned",
                               "val-gain-tuned")
DIRECTIONS: tuple[str, ...] = ("up", "down", "none")

Table = dict[int, dict[str, dict[int, float]]]


def row_table(data: BenchData, row: str, instances: Sequence[Instance], headroom: Mapping[str, float]) -> Table:
    """``row``'s normalised scores: agent seed -> instance label -> evaluation seed -> score.

    Only instances with headroom (``headroom[label] > 0``) and finite cells (the run and its
    uniform pair finished) are kept; a non-learning row is agent seed 0.
    """
    seeds = data.agent_seeds.get(row) or [0]
    out: Table = {}
    for seed, member in zip(seeds, data.seed_rows(row)):
        cells: dict[str, dict[int, float]] = {}
        for inst in instances:
            h = headroom.get(inst.label())
            if h is None:
                continue
            acc = data.acc.get((inst.label(), member), {})
            uni = data.acc.get((inst.label(), "uniform"), {})
            got = {s: (acc[s] - uni[s]) / h for s in data.cfg.eval_seeds
                   if s in acc and s in uni and math.isfinite(acc[s]) and math.isfinite(uni[s])}
            if got:
                cells[inst.label()] = got
        out[int(seed)] = cells
    return out


def _complete(table: Table) -> bool:
    keys = [set(c) for c in table.values()]
    if not keys or not keys[0] or any(k != keys[0] for k in keys):
        return False
    cells = [set(v) for c in table.values() for v in c.values()]
    return all(c == cells[0] for c in cells)


def _strata(table: Table) -> list[list[float]]:
    insts = sorted({i for c in table.values() for i in c})
    return [[v for c in table.values() for v in c.get(i, {}).values()] for i in insts]


def agent_aggregate(table: Table, n_resamples: int) -> AgentSeedAggregate | None:
    """The row over agent seeds x instances x evaluation seeds (``None``: nothing scored).

    A complete table goes through :func:`~mmenv.experiments.stats.aggregate_agent_seeds`; one
    with missing cells (a crashed run) pools the finite cells per instance the same way.
    """
    if not any(table.values()):
        return None
    if _complete(table):
        return aggregate_agent_seeds(table, n_resamples)
    from .stats import iqm

    strata = _strata(table)
    per_iqm = {a: iqm([v for i in c.values() for v in i.values()]) for a, c in table.items() if c}
    per_mean = {a: float(np.mean([v for i in c.values() for v in i.values()])) for a, c in table.items() if c}
    return AgentSeedAggregate(stratified_bootstrap_ci(strata, iqm, n_resamples),
                              stratified_bootstrap_ci(strata, lambda x: float(np.mean(x)), n_resamples),
                              per_iqm, per_mean, sorted(table), sorted({i for c in table.values() for i in c}),
                              list(sorted({s for c in table.values() for i in c.values() for s in i})))


def best_heuristic(aggregates: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The heuristic row (:data:`HEURISTICS`) with the highest finite IQM."""
    rows = [a for a in aggregates if a["policy"] in HEURISTICS and math.isfinite(a["iqm"])]
    return max(rows, key=lambda a: a["iqm"]) if rows else None


def agent_minus_heuristic(agent: Table, heuristic: Table, n_resamples: int) -> tuple[float, float, float]:
    """``agent - heuristic`` paired by instance and evaluation seed, over every agent seed
    (NaN when no cell pairs). Cells missing on either side are left out of both."""
    h = heuristic.get(0, {})
    pairs: Table = {a: {i: {s: v for s, v in cells.items() if s in h.get(i, {})}
                        for i, cells in c.items() if i in h} for a, c in agent.items()}
    pairs = {a: {i: c for i, c in cells.items() if c} for a, cells in pairs.items()}
    if not any(pairs.values()):
        return float("nan"), float("nan"), float("nan")
    if _complete(pairs):
        return paired_seed_difference(pairs, h, n_resamples)
    diff = {a: {i: {s: v - h[i][s] for s, v in c.items()} for i, c in cells.items()} for a, cells in pairs.items()}
    return stratified_bootstrap_ci(_strata(diff), lambda x: float(np.mean(x)), n_resamples)


def mean_share(c: Candidate, modality: int) -> float:
    """The share ``c`` gives ``modality`` averaged over the run (phases weighted by their length)."""
    bounds = [0.0, *c.switch, 1.0]
    return float(sum((bounds[k + 1] - bounds[k]) * phase[modality] for k, phase in enumerate(c.phases)))


def instance_direction(data: BenchData, inst: Instance) -> str:
    """``"up"`` / ``"down"`` / ``"none"``: the oracle's direction on ``inst`` (module docstring)."""
    oracle = data.oracles.get(inst.label())
    ahead = data.dominant.get((inst.label(), "uniform"), {})
    seeds = [ahead[s] for s in data.cfg.eval_seeds if s in ahead]
    if oracle is None or not seeds:
        return "none"
    dominant = Counter(seeds).most_common(1)[0][0]
    m = len(oracle.best.phases[0])
    return direction_of(mean_share(oracle.best, dominant), m)


def claim_lines(agent: Mapping[str, Any] | None, heuristic: Mapping[str, Any] | None,
                tuned_constant: Mapping[str, Any] | None, difference: tuple[float, float, float] | None,
                directions: Mapping[str, str]) -> list[str]:
    """The claims' RESULT lines, in this order (``none`` where a row was not scored)."""
    from .stats import format_ci

    def ci(agg: Mapping[str, Any] | None) -> str:
        if agg is None or not math.isfinite(agg["iqm"]):
            return "none"
        return format_ci(agg["iqm"], agg["iqm_lo"], agg["iqm_hi"])

    best = "none" if heuristic is None else f"{ci(heuristic)} ({heuristic['policy']})"
    diff = "none" if difference is None or not math.isfinite(difference[0]) else format_ci(*difference)
    counts = Counter(directions.values())
    dirs = f"{counts['up']} up / {counts['down']} down" + (f" ({counts['none']} none)" if counts["none"] else "")
    return [f"RESULT agent_iqm {ci(agent)}", f"RESULT best_heuristic_iqm {best}",
            f"RESULT tuned_constant_iqm {ci(tuned_constant)}", f"RESULT agent_minus_best_heuristic {diff}",
            f"RESULT direction_instances {dirs}"]
