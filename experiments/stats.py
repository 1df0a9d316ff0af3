"""Statistics of the benchmark: paired t intervals, IQM, stratified bootstrap, normalised scores, Spearman.

Hand implementations in NumPy (the package does not depend on SciPy); the tests check each
against hand computations and, where SciPy is installed, against ``scipy.stats``.

* :func:`t_quantile`: Student-t quantile for an integer number of degrees of freedom, by
  bisection on the closed-form CDF (Abramowitz & Stegun 26.7.3-4).
* :func:`paired_ci`: mean of paired differences ``a_s - b_s`` over seeds with the two-sided
  t interval ``mean +- t_{(1+level)/2, n-1} * sd / sqrt(n)`` (sample sd, n - 1).
* :func:`iqm`: interquartile mean as rliable computes it (``scipy.stats.trim_mean(x, 0.25)``:
  sort, drop ``floor(0.25 n)`` values at each end, average the rest).
* :func:`stratified_bootstrap_ci`: percentile interval of a statistic over resamples in which
  every stratum (a benchmark instance) is resampled with replacement on its own, keeping its
  size (rliable's stratified bootstrap; equal to ``scipy.stats.bootstrap`` with one sample per
  stratum, ``method="percentile"``).
* :func:`normalised_scores`: ``(acc_s - uniform_s) / (mean(oracle) - mean(uniform))`` per
  evaluation seed ``s``; the numerator is paired by seed (same initialisation and sample
  order), the denominator is the instance's headroom measured on the evaluation seeds.
* :func:`spearman`: rank correlation with average ranks for ties.
* :func:`aggregate_agent_seeds`: an agent row over agent seeds x test instances x evaluation
  seeds: IQM and mean with stratified bootstrap CIs (one stratum per instance holding its
  agent-seed x evaluation-seed scores), each agent seed's own IQM and mean, and the paired
  difference ``agent - heuristic`` (:func:`paired_seed_difference`: each agent seed's score
  minus the heuristic's on the same instance and evaluation seed, resampled the same way),
  so one lucky agent seed cannot carry a row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mmenv.errors import InvalidArgumentError

__all__ = ["format_ci", "t_quantile", "student_t_cdf", "paired_ci", "iqm", "stratified_bootstrap_ci", "normalised_scores",
           "spearman", "rankdata", "SeedTable", "AgentSeedAggregate", "aggregate_agent_seeds",
           "paired_seed_difference"]


def _abs_t_prob(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer ``df`` (A&S 26.7.3 odd df, 26.7.4 even df)."""
    theta = math.atan(t / math.sqrt(df))
    c, s = math.cos(theta), math.sin(theta)
    if df % 2 == 1:
        if df == 1:
            return 2.0 * theta / math.pi
        term, total = c, c
        for k in range(3, df - 1, 2):      # c, (2/3) c^3, (2*4)/(3*5) c^5, ... up to c^(df-2)
            term *= (k - 1) / k * c * c
            total += term
        return 2.0 / math.pi * (theta + s * total)
    term, total = 1.0, 1.0
    for k in range(2, df - 1, 2):          # 1, (1/2) c^2, (1*3)/(2*4) c^4, ... up to c^(df-2)
        term *= (k - 1) / k * c * c
        total += term
    return s * total


def student_t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with a positive integer number of degrees of freedom."""
    if not (isinstance(df, (int, np.integer)) and df >= 1):
        raise InvalidArgumentError(f"df must be a positive integer, got {df!r}")
    a = _abs_t_prob(abs(t), int(df))
    return 0.5 + 0.5 * a if t >= 0 else 0.5 - 0.5 * a


def t_quantile(q: float, df: int) -> float:
    """The ``q`` quantile of Student's t with integer ``df`` (e.g. ``t_quantile(0.975, 4) = 2.776``)."""
    if not 0.0 < q < 1.0:
        raise InvalidArgumentError(f"q must lie in (0, 1), got {q}")
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_quantile(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while student_t_cdf(hi, df) < q:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if student_t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def paired_ci(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray,
              level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, lo, hi)`` of the paired differences ``a - b`` (t interval; NaN bounds for n < 2)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise InvalidArgumentError(f"paired_ci needs two equal-length non-empty sequences, got shapes "
                         f"{np.shape(a)} and {np.shape(b)}")
    mean = float(d.mean())
    if d.size < 2:
        return mean, float("nan"), float("nan")
    half = t_quantile(0.5 + level / 2.0, d.size - 1) * float(d.std(ddof=1)) / math.sqrt(d.size)
    return mean, mean - half, mean + half


def iqm(x: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: drop ``floor(0.25 n)`` values at each end of the sorted data, average the rest."""
    v = np.sort(np.asarray(x, dtype=np.float64).reshape(-1))
    if v.size == 0:
        return float("nan")
    k = int(0.25 * v.size)
    return float(v[k:v.size - k].mean())


def stratified_bootstrap_ci(strata: Sequence[Sequence[float] | np.ndarray], statistic: Callable[[np.ndarray], float] = iqm,
                            n_resamples: int = 2000, level: float = 0.95, seed: int = 0
                            ) -> tuple[float, float, float]:
    """``(point, lo, hi)``: ``statistic`` of all values and its stratified percentile bootstrap interval.

    Each stratum (e.g. the evaluation seeds of one instance) is resampled with replacement
    to its own size; the statistic is computed on the concatenation of the resampled strata.
    """
    groups = [np.asarray(g, dtype=np.float64).reshape(-1) for g in strata]
    groups = [g for g in groups if g.size]
    if not groups:
        return float("nan"), float("nan"), float("nan")
    point = float(statistic(np.concatenate(groups)))
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples)
    for r in range(n_resamples):
        stats[r] = statistic(np.concatenate([g[rng.integers(0, g.size, g.size)] for g in groups]))
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return point, float(lo), float(hi)


def normalised_scores(acc: Sequence[float], uniform: Sequence[float], oracle: Sequence[float]) -> np.ndarray:
    """Per seed ``(acc_s - uniform_s) / (mean(oracle) - mean(uniform))`` (seeds aligned by position)."""
    a, u, o = (np.asarray(v, dtype=np.float64) for v in (acc, uniform, oracle))
    if a.shape != u.shape:
        raise InvalidArgumentError(f"acc and uniform must be paired by seed, got shapes {a.shape} and {u.shape}")
    headroom = float(o.mean() - u.mean())
    if not headroom > 0:
        raise InvalidArgumentError(f"the oracle is not above uniform (headroom {headroom:.4g}): a normalised score is "
                         "undefined; report raw accuracy differences for this instance")
    return (a - u) / headroom


def rankdata(x: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties get the average of the ranks they span."""
    v = np.asarray(x, dtype=np.float64)
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(v.size)
    sorted_v = v[order]
    i = 0
    while i < v.size:
        j = i
        while j + 1 < v.size and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i:j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (NaN when fewer than 3 pairs or a constant input)."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise InvalidArgumentError(f"spearman needs two equal-length 1-d sequences, got {a.shape} and {b.shape}")
    if a.size < 3:
        return float("nan")
    ra, rb = rankdata(a), rankdata(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


# ---------------------------------------------------------------------- agent seeds
#: ``table[agent_seed][instance][eval_seed] -> score``: an agent row's scores by agent seed.
SeedTable = Mapping[int, Mapping[str, Mapping[int, float]]]


def _grid(table: SeedTable) -> tuple[list[int], list[str], list[int], np.ndarray]:
    """The table as an array ``[agent seed, instance, eval seed]`` (sorted keys; every cell required)."""
    agents = sorted(int(a) for a in table)
    if not agents:
        raise ValueError("the agent-seed table is empty: it needs at least one agent seed")
    instances = sorted({str(i) for a in table.values() for i in a})
    evals = sorted({int(s) for a in table.values() for i in a.values() for s in i})
    if not instances or not evals:
        raise ValueError("the agent-seed table has no instance or no evaluation seed")
    out = np.empty((len(agents), len(instances), len(evals)))
    for ai, a in enumerate(agents):
        row = table[a]
        for ii, inst in enumerate(instances):
            cells = row.get(inst, {})
            for si, s in enumerate(evals):
                if s not in cells:
                    raise ValueError(f"agent seed {a}, instance {inst!r} has no score for evaluation seed {s}: "
                                     "every agent seed needs every instance x evaluation seed (paired design)")
                out[ai, ii, si] = float(cells[s])
    return agents, instances, evals, out


@dataclass
class AgentSeedAggregate:
    """An agent row: ``(point, lo, hi)`` of the IQM and the mean, and each agent seed's scores."""

    iqm: tuple[float, float, float]
    mean: tuple[float, float, float]
    per_seed_iqm: dict[int, float] = field(default_factory=dict)
    per_seed_mean: dict[int, float] = field(default_factory=dict)
    agent_seeds: list[int] = field(default_factory=list)
    instances: list[str] = field(default_factory=list)
    eval_seeds: list[int] = field(default_factory=list)


def _strata(values: np.ndarray) -> list[np.ndarray]:
    """One stratum per instance: its agent-seed x evaluation-seed values (axis 1 is the instance)."""
    return [values[:, i, :].reshape(-1) for i in range(values.shape[1])]


def aggregate_agent_seeds(table: SeedTable, n_resamples: int = 2000, level: float = 0.95,
                          seed: int = 0) -> AgentSeedAggregate:
    """IQM and mean of an agent row over agent seeds x instances x evaluation seeds, with CIs.

    The stratified bootstrap resamples, within each instance, the (agent seed, evaluation
    seed) cells with replacement, so the interval carries the spread between agent seeds as
    well as between evaluation seeds; ``per_seed_*`` are each agent seed's IQM and mean over
    its instances x evaluation seeds (no interval), to show whether one seed carries the row.
    """
    agents, instances, evals, values = _grid(table)
    strata = _strata(values)
    iqm_ci = stratified_bootstrap_ci(strata, iqm, n_resamples, level, seed)
    mean_ci = stratified_bootstrap_ci(strata, lambda x: float(np.mean(x)), n_resamples, level, seed)
    return AgentSeedAggregate(iqm_ci, mean_ci,
                              {a: iqm(values[k]) for k, a in enumerate(agents)},
                              {a: float(values[k].mean()) for k, a in enumerate(agents)},
                              agents, instances, evals)


def paired_seed_difference(agent: SeedTable, heuristic: Mapping[str, Mapping[int, float]],
                           n_resamples: int = 2000, level: float = 0.95, seed: int = 0
                           ) -> tuple[float, float, float]:
    """``(mean, lo, hi)`` of ``agent - heuristic`` paired by instance and evaluation seed.

    ``heuristic[instance][eval_seed]`` is the (best) heuristic's score. Each cell's difference
    is ``agent[a][i][s] - heuristic[i][s]``; the point is their mean, the interval a stratified
    percentile bootstrap (strata: instances; units: agent seed x evaluation seed cells, the
    same resampling as :func:`aggregate_agent_seeds`).
    """
    agents, instances, evals, values = _grid(agent)
    h = np.empty((len(instances), len(evals)))
    for ii, inst in enumerate(instances):
        cells = heuristic.get(inst)
        if cells is None:
            raise ValueError(f"the heuristic has no scores on instance {inst!r}: pair it on the agent's instances")
        for si, s in enumerate(evals):
            if s not in cells:
                raise ValueError(f"the heuristic has no score on instance {inst!r}, evaluation seed {s}")
            h[ii, si] = float(cells[s])
    diff = values - h[None, :, :]
    return stratified_bootstrap_ci(_strata(diff), lambda x: float(np.mean(x)), n_resamples, level, seed)


def format_ci(point: float, lo: float, hi: float, digits: int = 3) -> str:
    """``0.512 [0.301, 0.700]`` (``nan [nan, nan]`` when undefined)."""
    def f(x: float) -> str:
        return f"{x:.{digits}f}" if math.isfinite(x) else "nan"

    return f"{f(point)} [{f(lo)}, {f(hi)}]"
