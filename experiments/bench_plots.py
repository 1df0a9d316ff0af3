"""Figures of ``mmenv bench`` (matplotlib, Agg backend, PNG).

* ``headroom.png``: oracle − uniform per instance with its paired 95% CI (train and test).
* ``scores.png``: IQM and mean normalised score per policy with stratified bootstrap CIs.
* ``curves.png``: agents' held-out score against training runs consumed.
* ``schedules_<agent>.png``: the proportions an agent chose per step on each test instance
  (mean over evaluation seeds), with the oracle's schedule dashed.
* ``reward_alignment.png``: each evaluation run's Eq. 5 return against its accuracy gain over uniform.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .grid import slugify  # noqa: E402

if TYPE_CHECKING:
    from .bench import BenchData
    from .bench_report import Report

__all__ = ["make_bench_plots"]


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_headroom(rep: "Report", path: Path) -> Path | None:
    rows = rep.headroom
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(rows) + 1.4))
    y = np.arange(len(rows))[::-1]
    for yy, r in zip(y, rows):
        color = "tab:blue" if r["split"] == "train" else "tab:orange"
        mean, lo, hi = (100 * r[k] for k in ("headroom", "ci_lo", "ci_hi"))
        if math.isfinite(lo):
            ax.errorbar(mean, yy, xerr=[[mean - lo], [hi - mean]], fmt="o", color=color, capsize=3)
        else:
            ax.plot(mean, yy, "o", color=color)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{r['set']}/{r['instance']} ({r['split']})" for r in rows], fontsize=7)
    ax.set_xlabel("oracle − uniform, accuracy points (evaluation seeds, 95% CI)")
    ax.set_title("Headroom per instance (blue: train, orange: test)")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_scores(rep: "Report", path: Path) -> Path | None:
    aggs = [a for a in rep.aggregates if math.isfinite(a["iqm"])]
    if not aggs:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.4 * len(aggs) + 1.5), sharey=True)
    y = np.arange(len(aggs))[::-1]
    for ax, key, title in ((axes[0], "iqm", "IQM"), (axes[1], "mean", "mean")):
        for yy, a in zip(y, aggs):
            point, lo, hi = a[key], a[f"{key}_lo"], a[f"{key}_hi"]
            ax.errorbar(point, yy, xerr=[[point - lo], [hi - point]], fmt="o", capsize=3,
                        color="tab:green" if a["policy"].startswith("agent:") else "tab:gray")
        ax.axvline(0.0, color="black", lw=0.8)
        ax.axvline(1.0, color="black", lw=0.8, ls="--")
        ax.set_xlabel(f"{title} normalised score (0 uniform, 1 oracle)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y)
    axes[0].set_yticklabels([a["policy"] for a in aggs])
    fig.suptitle("Held-out test instances with headroom (stratified bootstrap 95% CI)", fontsize=10)
    return _save(fig, path)


def plot_curves(data: "BenchData", path: Path) -> Path | None:
    curves = {k: v["curve"] for k, v in data.agents.items() if v.get("curve")}
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for k, curve in curves.items():
        c = np.asarray(curve, dtype=float)
        ax.plot(c[:, 0], c[:, 1], marker="o", ms=3, label=k)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.axhline(1.0, color="black", lw=0.8, ls="--")
    ax.set_xlabel("training runs consumed")
    ax.set_ylabel(f"held-out normalised score (curve seeds {data.cfg.curve_seeds})")
    ax.set_title("Learning curves of the agents trained across runs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_schedules(data: "BenchData", agent: str, path: Path) -> Path | None:
    insts = [i for s in data.sets for i in s.test if (i.label(), agent) in data.schedules]
    if not insts:
        return None
    cols = min(4, len(insts))
    rows = math.ceil(len(insts) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False, sharey=True)
    for ax, inst in zip(axes.flat, insts):
        mods = data.modalities[inst.label()]
        for who, style in ((agent, "-"), ("oracle", "--")):
            sched = data.schedules.get((inst.label(), who), {})
            arrs = [np.asarray(sched[s], dtype=float) for s in data.cfg.eval_seeds if s in sched]
            if not arrs or len({a.shape for a in arrs}) != 1:
                continue
            mean = np.mean(arrs, axis=0)
            x = np.arange(mean.shape[0])
            for j, name in enumerate(mods):
                ax.plot(x, mean[:, j], style, color=f"C{j}", label=f"{name} ({'agent' if who == agent else 'oracle'})")
        ax.set_title(f"{inst.set_name}/{inst.name}", fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_xlabel("step (epoch)", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(insts):]:
        ax.axis("off")
    axes[0][0].set_ylabel("share of the batch budget")
    fig.suptitle(f"Schedules of {agent} (solid) and the oracle (dashed), mean over evaluation seeds", fontsize=10)
    return _save(fig, path)


def plot_alignment(data: "BenchData", path: Path) -> Path | None:
    points: dict[str, list[tuple[float, float]]] = {}
    for iset in data.sets:
        for inst in iset.test:
            u = data.values(inst, "uniform", data.cfg.eval_seeds)
            u_mean = float(np.nanmean(u)) if np.isfinite(u).any() else float("nan")
            for (label, pol), accs in data.acc.items():
                if label != inst.label():
                    continue
                eq5 = data.eq5.get((label, pol), {})
                for seed in data.cfg.eval_seeds:
                    a, r = accs.get(seed, float("nan")), eq5.get(seed, float("nan"))
                    if math.isfinite(a) and math.isfinite(r) and math.isfinite(u_mean):
                        points.setdefault(pol, []).append((r, 100 * (a - u_mean)))
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for pol, pts in sorted(points.items()):
        p = np.asarray(pts)
        ax.scatter(p[:, 0], p[:, 1], s=12, label=pol, alpha=0.7)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xlabel("episode's Eq. 5 return (the paper's reward)")
    ax.set_ylabel("test accuracy − instance's uniform mean, points")
    ax.set_title("Reward alignment on the test instances (evaluation seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    return _save(fig, path)


def make_bench_plots(rep: "Report", data: "BenchData", out: Path) -> list[Path]:
    """Every figure that has data; returns the written paths."""
    paths = [plot_headroom(rep, out / "headroom.png"), plot_scores(rep, out / "scores.png"),
             plot_curves(data, out / "curves.png"), plot_alignment(data, out / "reward_alignment.png")]
    from .bench_direction_plots import plot_direction_schedules

    for agent in data.agent_labels:
        # an agent row's first agent seed (its runs are recorded per seed)
        paths.append(plot_schedules(data, data.seed_rows(agent)[0],
                                    out / f"schedules_{slugify(agent.replace(':', '-'))}.png"))
        paths.append(plot_direction_schedules(rep, data, agent, out))
    return [p for p in paths if p is not None]
