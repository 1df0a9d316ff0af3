"""Figures of ``mmenv bench`` (matplotlib, Agg backend; PNG at 200 dpi and PDF side by side).

* ``headroom``: Oracle − Uniform per instance with its paired 95% CI (train and/or test
  instances, whichever the preset measured; filled markers: CI above 0).
* ``scores``: IQM and mean normalised score per policy with stratified bootstrap 95% CIs.
* ``curves``: the across-run agents' held-out score against training runs consumed; agents
  that differ only in their training seed are one curve: a thin line per seed, the mean
  as a thick line, the min–max over seeds as a band.
* ``schedules_<agent>``: the share of the batch budget an agent gave each modality per step
  on each test instance (mean over evaluation seeds), solid, with the Oracle's dashed;
  colours by modality role, the same in every panel.
* ``reward_alignment``: each evaluation run's Eq. 5 return against its accuracy gain over
  Uniform, translucent points per policy plus each policy's mean, with the pooled Spearman
  rho printed (a hexbin density instead of points when there are many runs).

Colours and labels come from :mod:`mmenv.experiments.palette`, the table that
``mmenv compare``'s figures use too.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .grid import slugify  # noqa: E402
from .palette import (
    SPLIT_COLORS,
    VECTOR_FORMAT,
    modality_color_map,
    policy_color_map,
    policy_label,
    save_figure,  # noqa: E402
)

if TYPE_CHECKING:
    from .bench_data import BenchData
    from .bench_report import Report

__all__ = ["make_bench_plots", "plot_headroom", "plot_scores", "plot_curves", "plot_schedules", "plot_alignment",
           "agent_curve_groups", "HEXBIN_MIN_POINTS"]

#: Marker shapes of the reference policies' means on the alignment figure (others: circles).
_MEAN_MARKERS = {"uniform": "s", "oracle": "*"}
#: Above this many evaluation runs the alignment figure draws a hexbin density instead of points.
HEXBIN_MIN_POINTS = 600


def _save(fig: Any, path: Path) -> Path:
    return save_figure(fig, path)


def _bench_policy_colors(rep: Report, data: BenchData) -> dict[str, str]:
    """One colour per benchmark row, fixed for every figure of this benchmark."""
    return policy_color_map(["uniform", "oracle", *data.policies, *data.agent_labels,
                             *(a["policy"] for a in rep.aggregates)])


def plot_headroom(rep: Report, path: Path) -> Path | None:
    """Oracle − Uniform per instance (points) with its paired 95% CI; one colour per split."""
    rows = rep.headroom
    if not rows:
        return None
    splits = [s for s in ("train", "test") if any(r["split"] == s for r in rows)]
    fig, ax = plt.subplots(figsize=(6.8, 0.3 * len(rows) + 1.6))
    y = np.arange(len(rows))[::-1]
    for yy, r in zip(y, rows):
        color = SPLIT_COLORS.get(r["split"], "black")
        mean, lo, hi = (100 * r[k] for k in ("headroom", "ci_lo", "ci_hi"))
        face = color if r.get("has_headroom") else "white"
        if math.isfinite(lo) and math.isfinite(hi):
            ax.errorbar(mean, yy, xerr=[[mean - lo], [hi - mean]], fmt="none", ecolor=color, capsize=3, lw=1.2)
        ax.plot(mean, yy, "o", color=color, mfc=face, ms=6)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(y)
    ax.set_yticklabels([f"{r['set']} / {r['instance']}" for r in rows], fontsize=8)
    ax.set_xlabel("Oracle − Uniform, test accuracy points\n(mean over evaluation seeds, paired 95% CI)")
    handles = [Line2D([], [], marker="o", ls="none", color=SPLIT_COLORS[s], label=f"{s} instance") for s in splits]
    handles.append(Line2D([], [], marker="o", ls="none", color="black", mfc="white", label="CI includes 0"))
    ax.legend(handles=handles, fontsize=8, loc="best")
    what = " and ".join(splits)
    ax.set_title(f"Headroom per {what} instance", fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path)


def plot_scores(rep: Report, path: Path, colors: dict[str, str] | None = None) -> Path | None:
    """IQM and mean normalised score per policy (0 = Uniform, 1 = Oracle) with bootstrap 95% CIs."""
    aggs = [a for a in rep.aggregates if math.isfinite(a["iqm"])]
    if not aggs:
        return None
    colors = colors or policy_color_map(a["policy"] for a in aggs)
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.42 * len(aggs) + 1.9), sharey=True)
    y = np.arange(len(aggs))[::-1]
    for ax, key, title in ((axes[0], "iqm", "IQM"), (axes[1], "mean", "Mean")):
        for yy, a in zip(y, aggs):
            point, lo, hi = a[key], a[f"{key}_lo"], a[f"{key}_hi"]
            ax.errorbar(point, yy, xerr=[[point - lo], [hi - point]], fmt="o", capsize=3, ms=6,
                        color=colors.get(a["policy"], "black"))
        ax.axvline(0.0, color=colors.get("uniform", "grey"), lw=1.0)
        ax.axvline(1.0, color=colors.get("oracle", "black"), lw=1.0, ls="--")
        ax.set_xlabel(f"{title} normalised score\n(0 = Uniform, 1 = Oracle)")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y)
    axes[0].set_yticklabels([policy_label(a["policy"]) for a in aggs])
    n_inst = max(a["instances"] for a in aggs)
    fig.suptitle(f"Held-out test instances with headroom ({n_inst}); stratified bootstrap 95% CI", fontsize=11)
    return _save(fig, path)


def agent_curve_groups(agents: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Agent summaries with a learning curve, grouped by everything but the training seed.

    Key: a display label ``"<set>: <ALGO>[, observation][, reward], <k> modalities, <n> runs"``; agents of one
    group differ only in ``seed`` (and their preset label), so their curves are seeds of one
    learning curve.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for summary in agents.values():
        if not summary.get("curve"):
            continue
        parts = [str(summary.get("algo", "?")).upper()]
        if summary.get("observation") not in (None, "paper"):
            parts.append(f"observation {summary['observation']}")
        if summary.get("reward") not in (None, "val-acc-gain"):
            parts.append(f"reward {summary['reward']}")
        options = summary.get("options")
        if options:
            parts.append(", ".join(f"{k}={v}" for k, v in sorted(options.items())))
        m = summary.get("m", "?")
        # m = 0 marks an agent that runs on any number of modalities (bench_stages.any_m).
        modalities = "any number of modalities" if m == 0 else f"{m} modalities"
        key = f"{summary.get('set', '?')}: {', '.join(parts)}, {modalities}, {summary.get('runs')} runs"
        groups.setdefault(key, []).append(summary)
    return groups


def plot_curves(data: BenchData, path: Path) -> Path | None:
    """Learning curves: per seed (thin), mean over seeds (thick) and the min–max band."""
    groups = agent_curve_groups(data.agents)
    if not groups:
        return None
    colors = policy_color_map(f"agent:{k}" for k in groups)
    fig, ax = plt.subplots(figsize=(6.8, 4.2))
    max_seeds = 1
    for key, summaries in groups.items():
        color = colors[f"agent:{key}"]
        curves = [np.asarray(s["curve"], dtype=float) for s in summaries]
        xs = sorted(set.intersection(*(set(c[:, 0].tolist()) for c in curves)))
        n = len(curves)
        max_seeds = max(max_seeds, n)
        for c in curves:
            ax.plot(c[:, 0], c[:, 1], color=color, lw=0.8, alpha=0.45 if n > 1 else 1.0)
        if xs:
            stack = np.stack([[dict(zip(c[:, 0].tolist(), c[:, 1].tolist()))[x] for x in xs] for c in curves])
            mean = np.nanmean(stack, axis=0)
            if n > 1:
                ax.fill_between(xs, np.nanmin(stack, axis=0), np.nanmax(stack, axis=0), color=color, alpha=0.18,
                                lw=0)
            seeds = sorted(int(s.get("seed", 0)) for s in summaries)
            ax.plot(xs, mean, color=color, lw=2.2, marker="o", ms=3.5,
                    label=f"{key} (seed{'s' if n > 1 else ''} {', '.join(map(str, seeds))})")
    normalised = _has_headroom(data)
    ax.axhline(0.0, color="#8c8c8c", lw=1.0, label="Uniform (0)")
    if normalised:
        ax.axhline(1.0, color="black", lw=1.0, ls="--", label="Oracle (1)")
    ax.set_xlabel("training runs consumed")
    ax.set_ylabel("held-out normalised score" if normalised else "held-out accuracy − Uniform, points")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Across-run agents: held-out score during training", fontsize=11)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    note = (f"curve seeds {list(data.cfg.curve_seeds)} of the test instances; "
            + ("thick: mean over training seeds, thin: each seed, band: min–max" if max_seeds > 1
               else "one training seed per agent"))
    fig.text(0.5, 0.01, note, ha="center", fontsize=7)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return save_figure(fig, path, tight=False)


def _has_headroom(data: BenchData) -> bool:
    """Whether the curves are normalised scores: the held-out score divides by the headroom of the
    test instances whose Oracle mean beats Uniform's, and falls back to accuracy points without one."""
    for iset in data.sets:
        for inst in iset.test:
            o = data.values(inst, "oracle", data.cfg.eval_seeds)
            u = data.values(inst, "uniform", data.cfg.eval_seeds)
            if np.isfinite(o).any() and np.isfinite(u).any() and np.nanmean(o) - np.nanmean(u) > 0:
                return True
    return False


def plot_schedules(data: BenchData, agent: str, path: Path) -> Path | None:
    """An agent's per-step shares (solid) beside the Oracle's (dashed); one colour per modality role."""
    insts = [i for s in data.sets for i in s.test if (i.label(), agent) in data.schedules]
    if not insts:
        return None
    colors = modality_color_map(m for i in insts for m in data.modalities[i.label()])
    cols = min(3, len(insts))
    rows = math.ceil(len(insts) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.7 * rows + 1.0), squeeze=False, sharey=True)
    for ax, inst in zip(axes.flat, insts):
        mods = data.modalities[inst.label()]
        for who, style in ((agent, "-"), ("oracle", "--")):
            sched = data.schedules.get((inst.label(), who), {})
            arrs = [np.asarray(sched[s], dtype=float) for s in data.cfg.eval_seeds if s in sched]
            if not arrs or len({a.shape for a in arrs}) != 1:
                continue
            mean = np.mean(arrs, axis=0)
            x = np.arange(1, mean.shape[0] + 1)
            for j, name in enumerate(mods):
                ax.plot(x, mean[:, j], style, color=colors[name], lw=2.0 if who == agent else 1.4,
                        marker="o" if who == agent else None, ms=3)
        ax.set_title(f"{inst.name} ({inst.learner})", fontsize=9)
        ax.set_ylim(0, 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("environment step (epoch)", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(insts):]:
        ax.axis("off")
    for r in range(rows):
        axes[r][0].set_ylabel("share of the batch budget", fontsize=8)
    handles = [Line2D([], [], color=c, lw=2, label=f"{name} modality") for name, c in colors.items()]
    handles += [Line2D([], [], color="black", lw=2, ls="-", label=policy_label(agent)),
                Line2D([], [], color="black", lw=1.4, ls="--", label="Oracle")]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
    fig.suptitle(f"Schedules on the test instances: {policy_label(agent)} vs Oracle\n"
                 f"(mean over evaluation seeds {list(data.cfg.eval_seeds)})", fontsize=10)
    fig.tight_layout(rect=(0, 0.1 if rows == 1 else 0.06, 1, 1))
    return save_figure(fig, path, tight=False)


def _alignment_points(data: BenchData) -> dict[str, list[tuple[float, float]]]:
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
    return points


def plot_alignment(data: BenchData, path: Path, rho: float | None = None,
                   colors: dict[str, str] | None = None) -> Path | None:
    """Eq. 5 return vs accuracy gain over Uniform per evaluation run, with the pooled Spearman rho."""
    points = _alignment_points(data)
    if not points:
        return None
    order = [p for p in dict.fromkeys(["uniform", "oracle", *data.policies, *data.agent_labels]) if p in points]
    order += sorted(p for p in points if p not in order)
    colors = colors or policy_color_map(order)
    allp = np.concatenate([np.asarray(points[p]) for p in order])
    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    if len(allp) >= HEXBIN_MIN_POINTS:
        hb = ax.hexbin(allp[:, 0], allp[:, 1], gridsize=35, cmap="Greys", mincnt=1, bins="log")
        fig.colorbar(hb, ax=ax, label="runs per cell")
    for pol in order:
        p = np.asarray(points[pol])
        if len(allp) < HEXBIN_MIN_POINTS:
            ax.scatter(p[:, 0], p[:, 1], s=14, color=colors.get(pol, "black"), alpha=0.4, lw=0)
    # Means on top, outlined, in reverse order so the references (Uniform, Oracle) stay visible;
    # the references get their own marker shapes.
    for pol in reversed(order):
        p = np.asarray(points[pol])
        ax.scatter(p[:, 0].mean(), p[:, 1].mean(), s=90 if pol in _MEAN_MARKERS else 70,
                   marker=_MEAN_MARKERS.get(pol, "o"), color=colors.get(pol, "black"), edgecolor="black", lw=0.8,
                   zorder=3, label=f"{policy_label(pol)} ({len(p)})")
    if rho is None:
        from .stats import spearman

        rho = spearman(allp[:, 0].tolist(), allp[:, 1].tolist()) if len(allp) >= 3 else float("nan")
    ax.axhline(0.0, color="#8c8c8c", lw=1.0)
    ax.set_xlabel("episode's Eq. 5 return (the paper's reward)")
    ax.set_ylabel("test accuracy − instance's Uniform mean, points")
    rho_text = f"{rho:+.2f}" if math.isfinite(rho) else "undefined"
    ax.text(0.02, 0.97, f"Spearman ρ = {rho_text} (pooled, {len(allp)} runs)", transform=ax.transAxes,
            va="top", fontsize=9, bbox={"boxstyle": "round", "fc": "white", "ec": "#bdbdbd"})
    ax.set_title("Reward alignment on the test instances (evaluation seeds)", fontsize=11)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5),
              title="policy mean (runs); points: runs", title_fontsize=7, frameon=False)
    return _save(fig, path)


def make_bench_plots(rep: Report, data: BenchData, out: Path) -> list[Path]:
    """Every figure that has data (PNG + PDF); returns the written paths."""
    colors = _bench_policy_colors(rep, data)
    paths = [plot_headroom(rep, out / "headroom.png"), plot_scores(rep, out / "scores.png", colors),
             plot_curves(data, out / "curves.png"),
             plot_alignment(data, out / "reward_alignment.png", rep.pooled_spearman, colors)]
    from .bench_direction_plots import plot_direction_schedules

    for agent in data.agent_labels:
        # an agent row's first agent seed (its runs are recorded per seed)
        paths.append(plot_schedules(data, data.seed_rows(agent)[0],
                                    out / f"schedules_{slugify(agent.replace(':', '-'))}.png"))
        paths.append(plot_direction_schedules(rep, data, agent, out))
    written: list[Path] = []
    for p in paths:
        if p is not None:
            written += [p, p.with_suffix(f".{VECTOR_FORMAT}")]
    return written

