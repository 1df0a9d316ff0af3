"""A local leaderboard: every policy and agent row of a ``mmenv bench`` output folder, ranked.

``mmenv bench --leaderboard OUT`` (or :func:`leaderboard` from Python) reads what a finished
(or resumed) benchmark wrote under ``OUT`` and runs nothing:

* ``aggregates.csv``: per row the IQM and mean normalised score on the held-out test
  instances with headroom (0 = Uniform, 1 = Oracle) with their stratified bootstrap 95% CIs,
  and the accuracy difference to Uniform in points over every test instance;
* ``results.csv``: which evaluation seeds and test instances each row was measured on, and
  its mean fused test accuracy;
* ``agents/*.json``: for the agents trained across runs, the algorithm, training runs and
  training seed.

Rows are ranked by IQM (then mean); rows without a score (no test instance with headroom)
follow, unranked, ordered by their accuracy difference to Uniform. Uniform is listed as the
reference (score 0 by definition when any row is scored). Only test instances count. The table prints as Markdown and is written as
``OUT/leaderboard.csv``.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from mmenv.errors import MMEnvError

from .palette import policy_label
from .report import write_csv

__all__ = ["leaderboard", "leaderboard_markdown", "LeaderboardError", "main"]


class LeaderboardError(MMEnvError, ValueError):
    """The folder is not a benchmark output (no results.csv / aggregates.csv)."""


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def _agent_summaries(out: Path) -> dict[str, list[dict[str, Any]]]:
    """Agent label -> the saved training summaries (one per instance set and modality count)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((out / "agents").glob("*.json")) if (out / "agents").is_dir() else []:
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(summary, dict) and "label" in summary:
            found.setdefault(f"agent:{summary['label']}", []).append(summary)
    return found


def leaderboard(out: str | Path) -> list[dict[str, Any]]:
    """The ranked rows of the benchmark output folder ``out`` (one dict per policy or agent)."""
    out = Path(out)
    results_path, agg_path = out / "results.csv", out / "aggregates.csv"
    if not results_path.is_file() or not agg_path.is_file():
        raise LeaderboardError(f"{out} is not a benchmark output folder: it has no results.csv and aggregates.csv; "
                               "pass the --out folder of a finished 'mmenv bench' run")
    results = _read_csv(results_path)
    aggregates = {r["policy"]: r for r in _read_csv(agg_path)}
    # Only test instances count (uniform and the oracle also run on train instances with
    # headroom_splits [train, test]); headroom.csv names each instance's split.
    test_labels = None
    if (out / "headroom.csv").is_file():
        test_labels = {f"{r['set']}/{r['instance']}" for r in _read_csv(out / "headroom.csv") if r.get("split") == "test"}
    scored = any(math.isfinite(_float(a.get("iqm"))) for a in aggregates.values())
    agents = _agent_summaries(out)
    evals: dict[str, dict[str, Any]] = {}
    for r in results:
        if r.get("seed_role") != "evaluation" or (test_labels is not None and r["instance"] not in test_labels):
            continue
        e = evals.setdefault(r["policy"], {"seeds": set(), "instances": set(), "acc": []})
        e["seeds"].add(int(r["seed"]))
        e["instances"].add(r["instance"])
        acc = _float(r.get("fused_accuracy"))
        if math.isfinite(acc):
            e["acc"].append(acc)
    rows: list[dict[str, Any]] = []
    for policy in dict.fromkeys([*aggregates, *evals]):
        a = aggregates.get(policy, {})
        e = evals.get(policy, {"seeds": set(), "instances": set(), "acc": []})
        kind = "agent" if policy.startswith("agent:") else ("reference" if policy in ("uniform", "oracle")
                                                            else "policy")
        row: dict[str, Any] = {"policy": policy, "label": policy_label(policy), "kind": kind}
        if policy == "uniform":
            zero = 0.0 if scored else float("nan")     # 0 by definition, where anything is scored
            row.update(iqm=zero, iqm_lo=zero, iqm_hi=zero, mean=zero, mean_lo=zero, mean_hi=zero,
                       diff_points=0.0, diff_lo=0.0, diff_hi=0.0)
        else:
            row.update({k: _float(a.get(k)) for k in ("iqm", "iqm_lo", "iqm_hi", "mean", "mean_lo", "mean_hi")})
            row.update(diff_points=_float(a.get("diff")), diff_lo=_float(a.get("diff_lo")),
                       diff_hi=_float(a.get("diff_hi")))
        row["instances_with_headroom"] = int(_float(a.get("instances"))) if a.get("instances") else 0
        row["test_instances"] = len(e["instances"])
        row["eval_seeds"] = " ".join(str(s) for s in sorted(e["seeds"]))
        row["mean_accuracy"] = sum(e["acc"]) / len(e["acc"]) if e["acc"] else float("nan")
        summaries = agents.get(policy, [])
        row["algo"] = summaries[0].get("algo", "") if summaries else ""
        row["training_runs"] = " ".join(str(s.get("runs")) for s in summaries)
        row["training_seed"] = " ".join(str(s.get("seed")) for s in summaries)
        rows.append(row)

    def rank_key(r: dict[str, Any]) -> tuple[int, float, float]:
        """Scored rows by IQM then mean; the rest after them, by their accuracy difference to Uniform."""
        iqm, mean, diff = r["iqm"], r["mean"], r["diff_points"]
        if math.isfinite(iqm):
            return (0, -iqm, -mean if math.isfinite(mean) else 0.0)
        return (1, -diff if math.isfinite(diff) else math.inf, 0.0)

    rows.sort(key=rank_key)
    for position, ranked in enumerate(rows, 1):
        ranked["rank"] = position if math.isfinite(ranked["iqm"]) else ""
    return [{"rank": ranked.pop("rank"), **ranked} for ranked in rows]


def _ci(point: float, lo: float, hi: float, digits: int = 3) -> str:
    if not math.isfinite(point):
        return "none"
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return f"{point:.{digits}f}"
    return f"{point:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def leaderboard_markdown(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    header = ["rank", "policy", "IQM normalised [95% CI]", "mean normalised [95% CI]",
              "accuracy − Uniform, points [95% CI]", "test instances (with headroom)", "evaluation seeds",
              "training runs"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        lines.append("| " + " | ".join([
            str(r["rank"]), r["label"], _ci(r["iqm"], r["iqm_lo"], r["iqm_hi"]),
            _ci(r["mean"], r["mean_lo"], r["mean_hi"]), _ci(r["diff_points"], r["diff_lo"], r["diff_hi"], 2),
            f"{r['test_instances']} ({r['instances_with_headroom']})", r["eval_seeds"] or "–",
            r["training_runs"] or "–"]) + " |")
    return "\n".join(lines)


def main(out: str | Path) -> int:
    """Print the leaderboard of ``out`` and write ``out/leaderboard.csv``; 0 on success."""
    rows = leaderboard(out)
    print(leaderboard_markdown(rows))
    path = write_csv(Path(out) / "leaderboard.csv", rows)
    print(f"\nwrote {path}")
    return 0
