"""The benchmark's report: headroom, normalised scores, aggregates, reward alignment, files and plots.

* **Headroom** per instance: oracle minus uniform on the evaluation seeds, mean of the paired
  differences with a 95% t interval (:func:`mmenv.experiments.stats.paired_ci`). An
  instance *has headroom* when the interval's lower bound is above 0.
* **Normalised score** of a policy on a test instance with headroom, per evaluation seed:
  ``(acc_s - uniform_s) / (mean oracle - mean uniform)`` (0 = uniform, 1 = the oracle).
  Aggregates over test instances x seeds: IQM and mean, each with a stratified bootstrap
  95% interval (instances are the strata; ``bootstrap_resamples`` resamples, seed 0).
* **Raw accuracy difference** (points) to uniform on every test instance, paired by seed.
* **Reward alignment**: Spearman's rank correlation between a run's Eq. 5 return and its fused
  test accuracy over every policy's evaluation runs, per test instance and pooled (accuracy
  taken relative to the instance's mean uniform accuracy).

The RESULT lines (:attr:`Report.result_lines`) close ``mmenv bench``'s output: ``RESULT <name>
<IQM> [<lo>, <hi>]``, or ``RESULT <name> none`` where nothing could be scored (no test
instance with headroom, or no such policy in the preset).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmenv.atomic import atomic_write_text

from .bench_claims import (
    DIRECTIONS,
    agent_aggregate,
    agent_minus_heuristic,
    best_heuristic,
    claim_lines,
    instance_direction,
    row_table,
)
from .bench_data import BenchData
from .instances import Instance
from .report import write_csv
from .stats import format_ci, paired_ci, spearman, stratified_bootstrap_ci

__all__ = ["Report", "build_report", "write_outputs", "format_ci"]


@dataclass
class Report:
    """Computed tables (lists of row dicts) and the text around them."""

    headroom: list[dict[str, Any]] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)          # per policy, instance, seed
    aggregates: list[dict[str, Any]] = field(default_factory=list)      # per policy
    per_instance: list[dict[str, Any]] = field(default_factory=list)    # per policy, instance
    alignment: list[dict[str, Any]] = field(default_factory=list)       # per test instance
    alignment_policies: list[dict[str, Any]] = field(default_factory=list)
    pooled_spearman: float = float("nan")
    result_lines: list[str] = field(default_factory=list)
    directions: dict[str, str] = field(default_factory=dict)            # test instance label -> up/down/none
    by_direction: list[dict[str, Any]] = field(default_factory=list)    # aggregates per direction
    agent_seeds: list[dict[str, Any]] = field(default_factory=list)     # per agent row and agent seed
    best_heuristic: str = ""
    markdown: str = ""
    console: str = ""


def _nanmean(x: Sequence[float] | np.ndarray) -> float:
    a = np.asarray(x, dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else float("nan")


def _score_row(data: BenchData, rep: Report, pol: str, instances: Sequence[Instance],
               headroom: dict[str, float], record: bool = False) -> dict[str, Any]:
    """One row of the held-out table over ``instances``: IQM / mean normalised score (instances
    with headroom) and accuracy - uniform in points (every instance), stratified bootstrap CIs.

    An agent row pools its agent seeds (strata: instances; units: agent seed x evaluation seed,
    :func:`~mmenv.experiments.bench_claims.agent_aggregate`); with ``record`` its per-run scores,
    per-instance means and per-seed IQMs are added to ``rep``.
    """
    evals, b = data.cfg.eval_seeds, data.cfg.bootstrap_resamples
    members = data.seed_rows(pol)
    seeds: list[int | None] = [None]
    if pol in data.agent_seeds:
        seeds = list(data.agent_seeds[pol])
    strata_raw = []
    for inst in instances:
        u = data.values(inst, "uniform", evals)
        h = headroom.get(inst.label())
        diffs, norms, accs = [], [], []
        for seed, member in zip(seeds, members):
            a = data.values(inst, member, evals)
            ok = np.isfinite(a) & np.isfinite(u)
            diffs += list((a - u)[ok])
            accs += list(a[ok])
            if h is not None:
                norms += list((a - u)[ok] / h)
            if record:
                for s, aa, uu, okk in zip(evals, a, u, ok):
                    if okk:
                        rep.scores.append({"policy": pol, "agent_seed": "" if seed is None else seed,
                                           "set": inst.set_name, "instance": inst.name, "seed": s, "acc": aa,
                                           "uniform_acc": uu, "diff_points": 100.0 * (aa - uu),
                                           "normalised": (aa - uu) / h if h is not None else float("nan")})
        if not diffs:
            continue
        strata_raw.append(100.0 * np.asarray(diffs))
        if record:
            rep.per_instance.append({"policy": pol, "set": inst.set_name, "instance": inst.name,
                                     "acc": _nanmean(accs), "diff_points": float(100.0 * np.mean(diffs)),
                                     "normalised": float(np.mean(norms)) if norms else float("nan")})
    table = row_table(data, pol, instances, headroom)
    agg_seeds = agent_aggregate(table, b)
    nan3 = (float("nan"),) * 3
    agg: dict[str, Any] = {"policy": pol, "instances": len({i for c in table.values() for i in c}),
                           "raw_instances": len(strata_raw)}
    agg["iqm"], agg["iqm_lo"], agg["iqm_hi"] = agg_seeds.iqm if agg_seeds else nan3
    agg["mean"], agg["mean_lo"], agg["mean_hi"] = agg_seeds.mean if agg_seeds else nan3
    agg["diff"], agg["diff_lo"], agg["diff_hi"] = stratified_bootstrap_ci(strata_raw, np.mean, b) \
        if strata_raw else nan3
    if record and pol in data.agent_seeds:
        per = agg_seeds.per_seed_iqm if agg_seeds else {}
        per_mean = agg_seeds.per_seed_mean if agg_seeds else {}
        for seed in data.agent_seeds[pol]:
            rep.agent_seeds.append({"policy": pol, "agent_seed": seed, "iqm": per.get(seed, float("nan")),
                                    "mean": per_mean.get(seed, float("nan"))})
    return agg


def build_report(data: BenchData) -> Report:
    cfg = data.cfg
    evals = cfg.eval_seeds
    rep = Report()
    test_instances = [i for s in data.sets for i in s.test]

    # headroom
    has_headroom: dict[str, float] = {}
    for iset in data.sets:
        for inst in ([*iset.train] if "train" in cfg.headroom_splits else []) + iset.test:
            u, o = data.values(inst, "uniform", evals), data.values(inst, "oracle", evals)
            ok = np.isfinite(u) & np.isfinite(o)
            mean, lo, hi = paired_ci(o[ok], u[ok]) if ok.sum() else (float("nan"),) * 3
            oracle = data.oracles[inst.label()].best
            row = {"set": iset.name, "instance": inst.name, "split": inst.split, "learner": inst.learner,
                   "modalities": ",".join(data.modalities[inst.label()]), "seeds": int(ok.sum()),
                   "uniform_acc": _nanmean(u), "oracle": oracle.label, "oracle_acc": _nanmean(o),
                   "headroom": mean, "ci_lo": lo, "ci_hi": hi, "has_headroom": bool(math.isfinite(lo) and lo > 0),
                   "tags": " ".join(f"{k}={v}" for k, v in inst.tags.items())}
            rep.headroom.append(row)
            if inst.split == "test" and row["has_headroom"]:
                has_headroom[inst.label()] = _nanmean(o) - _nanmean(u)

    # scores per policy (an agent row: every agent seed's runs, bench_claims)
    policies = list(data.policies) + list(data.agent_labels)
    rep.directions = {inst.label(): instance_direction(data, inst) for inst in test_instances}
    for pol in policies:
        rep.aggregates.append(_score_row(data, rep, pol, test_instances, has_headroom, record=True))
        for d in DIRECTIONS:
            subset = [i for i in test_instances if rep.directions[i.label()] == d]
            if subset:
                rep.by_direction.append({"direction": d, **_score_row(data, rep, pol, subset, has_headroom)})

    # reward alignment
    pooled_x: list[float] = []
    pooled_y: list[float] = []
    per_policy: dict[str, list[tuple[float, float]]] = {}
    for inst in test_instances:
        xs: list[float] = []
        ys: list[float] = []
        u_mean = _nanmean(data.values(inst, "uniform", evals))
        for pol in ["uniform"] + [m for p in policies for m in data.seed_rows(p)]:
            acc = data.acc.get((inst.label(), pol), {})
            eq5 = data.eq5.get((inst.label(), pol), {})
            for seed in evals:
                acc_s, eq5_s = float(acc.get(seed, float("nan"))), float(eq5.get(seed, float("nan")))
                if math.isfinite(acc_s) and math.isfinite(eq5_s):
                    xs.append(eq5_s)
                    ys.append(acc_s)
                    per_policy.setdefault(pol, []).append((eq5_s, 100.0 * (acc_s - u_mean)))
        rho = spearman(xs, ys) if len(xs) >= 3 else float("nan")
        rep.alignment.append({"set": inst.set_name, "instance": inst.name, "runs": len(xs), "spearman": rho})
        pooled_x += xs
        pooled_y += [y - u_mean for y in ys]
    rep.pooled_spearman = spearman(pooled_x, pooled_y) if len(pooled_x) >= 3 else float("nan")
    for pol, pairs in per_policy.items():
        arr = np.asarray(pairs)
        rep.alignment_policies.append({"policy": pol, "runs": len(pairs), "eq5_return": float(arr[:, 0].mean()),
                                       "diff_points": float(arr[:, 1].mean())})

    # RESULT lines
    by_pol = {a["policy"]: a for a in rep.aggregates}
    n_test = len(test_instances)

    def line(name: str, agg: dict[str, Any] | None) -> str:
        # "none": no test instance with headroom (or no such policy) to score it on
        if agg is None or not math.isfinite(agg["iqm"]):
            return f"RESULT {name} none"
        return f"RESULT {name} {format_ci(agg['iqm'], agg['iqm_lo'], agg['iqm_hi'])}"

    agents = [by_pol[a] for a in data.agent_labels if a in by_pol and math.isfinite(by_pol[a]["iqm"])]
    best_agent = max(agents, key=lambda a: a["iqm"]) if agents else None
    heuristic = best_heuristic(rep.aggregates)
    rep.best_heuristic = heuristic["policy"] if heuristic else ""
    difference = None
    if best_agent is not None and heuristic is not None:
        difference = agent_minus_heuristic(row_table(data, best_agent["policy"], test_instances, has_headroom),
                                           row_table(data, heuristic["policy"], test_instances, has_headroom),
                                           cfg.bootstrap_resamples)
    rep.result_lines = [f"RESULT headroom_instances {len(has_headroom)} of {n_test}",
                        line("dus_h_iqm", by_pol.get("dus-h")),
                        line("paper_online_iqm", by_pol.get("paper-online"))]
    # the claims' lines close the output (bench_claims)
    rep.result_lines += claim_lines(best_agent, heuristic, by_pol.get("tuned-constant"), difference, rep.directions)
    rep.markdown, rep.console = _markdown(data, rep, best_agent)
    return rep


# ---------------------------------------------------------------------- text
def _pct(x: float) -> str:
    return f"{100 * x:.1f}" if math.isfinite(x) else "–"


def _num(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}" if math.isfinite(x) else "–"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _markdown(data: BenchData, rep: Report, best_agent: dict[str, Any] | None) -> tuple[str, str]:
    cfg = data.cfg
    parts: list[str] = []
    sets = ", ".join(f"`{s.name}` ({len(s.train)} train / {len(s.test)} test)" for s in data.sets)
    setup = (f"Instance sets: {sets}. Tuning seeds {cfg.tuning_seeds} (oracle and tuned constant chosen here); "
             f"evaluation seeds {cfg.eval_seeds} (every number below); curve seeds {cfg.curve_seeds}. "
             f"Oracle grid: constant shares {cfg.grid['shares']}, phase shares {cfg.grid['phase_shares']}, "
             f"switches {[round(x, 3) for x in cfg.grid['switches']]}, three-phase switches "
             f"{cfg.grid.get('three_phase_switches')}.")
    n_h = sum(r["has_headroom"] for r in rep.headroom if r["split"] == "test")
    n_t = sum(r["split"] == "test" for r in rep.headroom)
    headroom_rows = [[r["set"], r["instance"], r["split"], r["learner"], r["tags"], _pct(r["uniform_acc"]),
                      r["oracle"], _pct(r["oracle_acc"]),
                      f"{_num(100 * r['headroom'], 1)} [{_num(100 * r['ci_lo'], 1)}, {_num(100 * r['ci_hi'], 1)}]",
                      "yes" if r["has_headroom"] else "**no**"] for r in rep.headroom]
    headroom = _table(["set", "instance", "split", "learner", "tags", "uniform %", "oracle (tuning seeds)",
                       "oracle %", "headroom, points [95% CI]", "CI > 0"], headroom_rows)
    agg_rows = [[a["policy"], str(a["instances"]), format_ci(a["iqm"], a["iqm_lo"], a["iqm_hi"]),
                 format_ci(a["mean"], a["mean_lo"], a["mean_hi"]),
                 f"{format_ci(a['diff'], a['diff_lo'], a['diff_hi'], 2)} ({a['raw_instances']})"]
                for a in rep.aggregates]
    aggregates = _table(["policy", "instances with headroom", "IQM normalised [95% CI]", "mean normalised [95% CI]",
                         "accuracy − uniform, points [95% CI] (instances)"], agg_rows)
    tests = [(i.set_name, i.name) for s in data.sets for i in s.test]
    cell = {(r["policy"], r["set"], r["instance"]): r for r in rep.per_instance}
    pol_names = [a["policy"] for a in rep.aggregates]
    inst_rows = []
    for set_name, name in tests:
        row = [f"{set_name}/{name}"]
        for pol in pol_names:
            r = cell.get((pol, set_name, name))
            row.append("–" if r is None else f"{r['diff_points']:+.1f}"
                       + (f" ({r['normalised']:.2f})" if math.isfinite(r["normalised"]) else ""))
        inst_rows.append(row)
    per_inst = _table(["test instance"] + pol_names, inst_rows)
    tuned = _table(["set", "tuned constant", "mean gain on train (tuning seeds), points"],
                   [[s, t.label, _num(100 * t.gain, 2)] for s, t in data.tuned.items()])
    tuned_h = _table(["set", "row", "chosen setting", "mean gain on train (tuning seeds), points"],
                     [[s, label, str(getattr(c, "label", c)), _num(100 * float(getattr(c, "gain", float("nan"))), 2)]
                      for s, rows in data.tuned_heuristics.items() for label, c in rows.items()])
    dir_rows = [[r["direction"], r["policy"], str(r["instances"]), format_ci(r["iqm"], r["iqm_lo"], r["iqm_hi"]),
                 format_ci(r["mean"], r["mean_lo"], r["mean_hi"]),
                 f"{format_ci(r['diff'], r['diff_lo'], r['diff_hi'], 2)} ({r['raw_instances']})"]
                for r in rep.by_direction]
    by_dir = _table(["direction", "policy", "instances with headroom", "IQM normalised [95% CI]",
                     "mean normalised [95% CI]", "accuracy − uniform, points [95% CI] (instances)"], dir_rows)
    directions = ", ".join(f"{lab.split('/', 1)[-1]}: {d}" for lab, d in rep.directions.items())
    seed_rows = [[r["policy"], str(r["agent_seed"]), _num(r["iqm"], 3), _num(r["mean"], 3)] for r in rep.agent_seeds]
    seeds_table = _table(["agent row", "agent seed", "IQM normalised", "mean normalised"], seed_rows) \
        if seed_rows else ""
    align_rows = [[r["set"], r["instance"], str(r["runs"]), _num(r["spearman"], 2)] for r in rep.alignment]
    align = _table(["set", "test instance", "runs", "Spearman(Eq. 5 return, test accuracy)"], align_rows)
    align_pol = _table(["policy", "runs", "mean Eq. 5 return", "accuracy − uniform, points"],
                       [[r["policy"], str(r["runs"]), _num(r["eq5_return"], 3), _num(r["diff_points"], 2)]
                        for r in rep.alignment_policies])
    agent_rows = [[k, str(v.get("algo")), str(v.get("observation")), str(v.get("reward")), str(v.get("runs")),
                   _num(float(v.get("train_wall_time_s", float("nan"))), 1),
                   _num(v["curve"][-1][1], 3) if v.get("curve") else "–"] for k, v in data.agents.items()]
    agents = _table(["agent (set/label/modalities/seed)", "algo", "observation", "reward", "training runs",
                     "training wall time, s", "last curve point"], agent_rows) if agent_rows else "No agents trained."
    parts += [f"# Benchmark `{cfg.name}`", "", setup, "",
              "## Headroom: oracle − uniform (evaluation seeds, paired 95% t CI)", "",
              f"{n_h} of {n_t} test instances have headroom (CI above 0).", "", headroom, "",
              "## Tuned constant (one share for the whole train set)", "", tuned, "",
              "## Tuned heuristics (ratio / beta and direction chosen on the train instances x tuning seeds)", "",
              tuned_h, "",
              "## Held-out test instances: normalised score (0 = uniform, 1 = oracle)", "",
              "Normalised scores over test instances with headroom × evaluation seeds; stratified bootstrap "
              f"95% CIs ({cfg.bootstrap_resamples} resamples). Raw differences over every test instance.", "",
              aggregates, "", "Per test instance: accuracy − uniform in points (normalised score).", "", per_inst, "",
              "## Per direction of the oracle", "",
              "Up: the oracle gives the modality that is ahead under uniform (largest cumulative discrepancy) less "
              "than 1/m, so the modalities behind get more; down: it gives it more. Directions: "
              f"{directions or 'none'}.", "", by_dir, "",
              "## Agent seeds", "",
              "Agent rows pool every agent seed (stratified bootstrap over agent seed × evaluation seed cells per "
              "instance); each seed's own score over the test instances with headroom:", "",
              seeds_table or "No agents trained.", "",
              "## Reward alignment: the paper's Eq. 5 return against test accuracy", "",
              f"Pooled Spearman over all evaluation runs (accuracy relative to the instance's uniform mean): "
              f"{_num(rep.pooled_spearman, 2)}.", "", align, "", align_pol, "",
              "## Agents trained across runs", "", agents, ""]
    if data.failed or data.tuning_errors:
        parts += ["## Failed or diverged runs", ""] + [f"- {f}" for f in data.tuning_errors + data.failed[:50]] + [""]
    parts += ["## Result", "", "```"] + rep.result_lines + ["```", ""]
    markdown = "\n".join(parts)
    console = "\n".join([f"Headroom ({n_h} of {n_t} test instances with CI above 0):", headroom, "",
                         "Held-out test instances:", aggregates, "", "Per direction:", by_dir, "", tuned, "",
                         tuned_h] + (["", "Agent seeds:", seeds_table] if seeds_table else []))
    return markdown, console


# ---------------------------------------------------------------------- files
def write_outputs(rep: Report, data: BenchData, out: Path) -> list[Path]:
    """results.md, results.csv (every recorded run), headroom.csv, scores.csv, aggregates.csv, plots."""
    files = []
    path = out / "results.md"
    atomic_write_text(path, rep.markdown)
    files.append(path)
    role = {**{s: "tuning" for s in data.cfg.tuning_seeds}, **{s: "evaluation" for s in data.cfg.eval_seeds},
            **{s: "curve" for s in data.cfg.curve_seeds}}
    rows = []
    for (inst_label, pol), seeds in sorted(data.acc.items()):
        for seed, acc in sorted(seeds.items()):
            rows.append({"instance": inst_label, "policy": pol, "seed": seed, "seed_role": role.get(seed, ""),
                         "fused_accuracy": acc, "eq5_return": data.eq5.get((inst_label, pol), {}).get(seed)})
    files.append(write_csv(out / "results.csv", rows))
    files.append(write_csv(out / "headroom.csv", rep.headroom))
    files.append(write_csv(out / "scores.csv", rep.scores))
    files.append(write_csv(out / "aggregates.csv", rep.aggregates))
    if rep.by_direction:
        files.append(write_csv(out / "directions.csv", rep.by_direction))
    if rep.agent_seeds:
        files.append(write_csv(out / "agent_seeds.csv", rep.agent_seeds))
    if data.cfg.plots:
        from .bench_plots import make_bench_plots

        files += make_bench_plots(rep, data, out / "plots")
    return files
