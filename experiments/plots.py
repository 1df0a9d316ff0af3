"""Figures of a sweep, in the conventions of the paper's Fig. 4 and Fig. 5 (matplotlib, Agg).

* :func:`plot_batch_sizes` — Fig. 4 style: per-modality batch size ``a_j`` over training,
  one panel per policy (every policy of the sweep). Thick line = mean over seeds, thin
  lines = each seed (so a policy that switches its dominant modality, such as DUS-H,
  shows the switch instead of a flat mean), band = min–max over seeds, dashed line =
  ``N_B / m`` (the uniform share).
* :func:`plot_discrepancy` — Fig. 5 style: cumulative discrepancy ``ŝ`` of every
  modality on ONE axis per policy (every policy, DUS-H included), the gap between the
  modalities' mean curves shaded, band = min–max over seeds; panels share the y axis.
  Step 0 is the observation the first action saw.
* :func:`plot_accuracy_bars` — test accuracy in percent: one panel for the fused
  prediction and one per modality; groups = learners, bars = policies; the y axis starts
  at 0; bar = mean over seeds, whisker = min–max over seeds, the mean printed on the bar.

Colours keep one meaning across every figure of a sweep: each modality has its colour
(by role for the synthetic family's ``strong``/``weak``, else by order of first appearance)
and each policy its own colour from a disjoint palette (uniform always grey), both from the
one table of :mod:`mmenv.experiments.palette` that the benchmark's figures use too; panels
and legends use human policy labels (:func:`~mmenv.experiments.palette.policy_label`).
Every figure is written as PNG (200 dpi) and PDF (vector) side by side. Trajectories are per environment
step (one step per epoch by default).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .grid import slugify, split_policy  # noqa: E402
from .palette import (
    DPI,
    MODALITY_COLORS,
    POLICY_COLORS,
    UNIFORM_COLOR,
    VECTOR_FORMAT,
    modality_color_map,
    policy_color_map,  # noqa: E402
    policy_label,
    save_figure,
)
from .report import group_results  # noqa: E402

__all__ = ["plot_batch_sizes", "plot_discrepancy", "plot_accuracy_bars", "make_plots", "is_dus_policy",
           "modality_colors", "policy_colors", "MODALITY_COLORS", "POLICY_COLORS", "VECTOR_FORMAT", "DPI"]

def is_dus_policy(policy: str) -> bool:
    """A learned DUS policy: online REINFORCE, or a saved agent (possibly behind a sample order)."""
    name = split_policy(policy)[1].lower()
    return name == "reinforce" or name.endswith((".pt", ".zip"))


def modality_colors(results: Sequence[dict[str, Any]]) -> dict[str, str]:
    """One colour per modality name (:func:`mmenv.experiments.palette.modality_color_map`: by role
    for the synthetic family's ``strong``/``weak``, else in order of first appearance in ``results``)."""
    return modality_color_map(mod for r in results for mod in (r.get("modalities") or []))


def policy_colors(policies: Sequence[str]) -> dict[str, str]:
    """One colour per policy (:func:`mmenv.experiments.palette.policy_color_map`; uniform is grey)."""
    return policy_color_map(policies)


def _finished(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in runs if r["status"] in ("ok", "diverged") and r.get("batch_sizes")]


def _stack(series_list: Sequence[Sequence[Sequence[float]]]) -> np.ndarray | None:
    """Trajectories of equal length as an array ``[seeds, steps, m]`` (shorter diverged runs dropped)."""
    series = [np.asarray(s, dtype=float) for s in series_list if len(s)]
    if not series:
        return None
    length = max(s.shape[0] for s in series)
    return np.stack([s for s in series if s.shape[0] == length])


def _groups(results: Sequence[dict[str, Any]], dataset: str, learner: str,
            policies: Sequence[str] | None) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    groups = {k[2]: _finished(v) for k, v in group_results(results).items() if k[0] == dataset and k[1] == learner}
    # Without an explicit order, policies appear in the order the results list them.
    seen = list(dict.fromkeys(r["policy"] for r in results if r["dataset"] == dataset and r["learner"] == learner))
    names = [p for p in (policies or seen) if groups.get(p)]
    return groups, names


def _seeds_label(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def _panel_grid(n: int, width: float = 4.0, height: float = 3.2, sharey: bool = True):
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows + 0.9), squeeze=False, sharey=sharey)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def plot_batch_sizes(results: Sequence[dict[str, Any]], dataset: str, learner: str, path: str | Path,
                     policies: Sequence[str] | None = None, colors: Mapping[str, str] | None = None
                     ) -> Path | None:
    """Fig. 4: per-modality batch size ``a_j`` per step, one panel per policy (all of them)."""
    groups, names = _groups(results, dataset, learner, policies)
    if not names:
        return None
    colors = dict(colors or modality_colors(results))
    fig, axes = _panel_grid(len(names))
    budget, m = 0, 1
    for ax, policy in zip(axes, names):
        runs = groups[policy]
        arr = _stack([r["batch_sizes"] for r in runs])
        if arr is None:
            continue
        modalities = runs[0]["modalities"]
        budget, m = int(arr[0, 0].sum()), len(modalities)
        x = np.arange(1, arr.shape[1] + 1)
        ax.axhline(budget / len(modalities), color="black", lw=1, ls="--", zorder=1)
        for j, mod in enumerate(modalities):
            c = colors.get(mod, MODALITY_COLORS[j % len(MODALITY_COLORS)])
            if arr.shape[0] > 1:
                ax.fill_between(x, arr[:, :, j].min(0), arr[:, :, j].max(0), color=c, alpha=0.15, lw=0)
                for seed_curve in arr[:, :, j]:
                    ax.plot(x, seed_curve, color=c, lw=0.8, alpha=0.55)
            ax.plot(x, arr[:, :, j].mean(0), color=c, lw=2.2, marker="o", ms=3, label=mod)
        ax.set_title(f"{policy_label(policy)} ({_seeds_label(arr.shape[0])})", fontsize=10)
        ax.set_xlabel("environment step (epoch)")
        ax.set_ylim(0, budget)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.set_ylabel("batch size per modality")
    axes[0].plot([], [], color="black", lw=1, ls="--", label=f"$N_B/m$ = {budget / m:g}")
    axes[0].legend(fontsize=8, loc="upper right")
    fig.suptitle(f"Batch size per modality over training — {dataset} / {learner}", fontsize=11)
    fig.text(0.5, 0.01, "thick line: mean over seeds; thin lines: each seed; band: min–max over seeds; "
             f"dashed: uniform share $N_B/m$ ($N_B$ = {budget})", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return _save(fig, path)


def plot_discrepancy(results: Sequence[dict[str, Any]], dataset: str, learner: str, path: str | Path,
                     policies: Sequence[str] | None = None, colors: Mapping[str, str] | None = None
                     ) -> Path | None:
    """Fig. 5: every modality's cumulative discrepancy on one axis per policy, the gap shaded."""
    groups, names = _groups(results, dataset, learner, policies)
    if not names:
        return None
    colors = dict(colors or modality_colors(results))
    fig, axes = _panel_grid(len(names))
    for ax, policy in zip(axes, names):
        runs = groups[policy]
        with_init = all(r.get("initial_discrepancy") for r in runs)
        arr = _stack([[r["initial_discrepancy"], *r["discrepancy"]] if with_init else r["discrepancy"] for r in runs])
        if arr is None:
            continue
        modalities = runs[0]["modalities"]
        x = np.arange(arr.shape[1]) if with_init else np.arange(1, arr.shape[1] + 1)
        means = arr.mean(0)                                   # [steps, m]
        # The gap between the modalities (the largest minus the smallest mean at each step).
        ax.fill_between(x, means.min(1), means.max(1), color="#bdbdbd", alpha=0.45, lw=0, hatch="///",
                        edgecolor="#8c8c8c", label="gap between modalities")
        for j, mod in enumerate(modalities):
            c = colors.get(mod, MODALITY_COLORS[j % len(MODALITY_COLORS)])
            if arr.shape[0] > 1:
                ax.fill_between(x, arr[:, :, j].min(0), arr[:, :, j].max(0), color=c, alpha=0.18, lw=0)
            ax.plot(x, means[:, j], color=c, lw=2.2, marker="o", ms=3, label=mod)
        gap = float(means[-1].max() - means[-1].min())
        ax.set_title(f"{policy_label(policy)} ({_seeds_label(arr.shape[0])}); final gap {gap:.3f}", fontsize=10)
        ax.set_xlabel("environment step (epoch)")
        ax.set_ylabel("cumulative discrepancy ŝ")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].set_ylim(bottom=0)
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle(f"Cumulative discrepancy per modality — {dataset} / {learner}", fontsize=11)
    fig.text(0.5, 0.01, "line: mean over seeds; band: min–max over seeds; hatched: gap between the modalities' "
             "means; step 0: the observation the first action saw", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return _save(fig, path)


def plot_accuracy_bars(results: Sequence[dict[str, Any]], dataset: str, path: str | Path,
                       learners: Sequence[str] | None = None, policies: Sequence[str] | None = None,
                       metric: str = "accuracy", colors: Mapping[str, str] | None = None) -> Path | None:
    """Test ``metric`` (percent): fused and per-modality panels; bars = policies, groups = learners.

    The y axis starts at 0 (differences are read from the printed means, not from a cut
    axis); bar = mean over the seeds that finished, whisker = min–max over those seeds.
    """
    groups = {(k[1], k[2]): [r for r in v if r["status"] == "ok" and r.get("test")]
              for k, v in group_results(results).items() if k[0] == dataset}
    if not any(groups.values()):
        return None
    learners = [lr for lr in (learners or sorted({k[0] for k in groups})) if any(groups.get((lr, p)) for p in
                                                                               {k[1] for k in groups})]
    policies = [p for p in (policies or sorted({k[1] for k in groups})) if any(groups.get((lr, p)) for lr in learners)]
    colors = dict(colors or policy_colors(policies))
    modalities = next(r["modalities"] for v in groups.values() for r in v)
    targets = ["fused", *modalities]
    width = 0.8 / max(1, len(policies))
    panel_w = max(3.6, 0.55 * len(learners) * len(policies) + 1.2)
    fig, axes = plt.subplots(1, len(targets), figsize=(panel_w * len(targets), 3.9), squeeze=False, sharey=True)
    x = np.arange(len(learners))
    seeds_seen: set[int] = set()
    for ax, who in zip(axes[0], targets):
        for i, policy in enumerate(policies):
            offs = x + (i - (len(policies) - 1) / 2) * width
            for xi, learner in zip(offs, learners):
                vals = [100 * r["test"][who][metric] for r in groups.get((learner, policy), []) if who in r["test"]]
                if not vals:
                    continue
                seeds_seen.add(len(vals))
                mean = float(np.mean(vals))
                ax.bar(xi, mean, width, color=colors.get(policy, UNIFORM_COLOR), edgecolor="white", lw=0.5,
                       label=policy_label(policy) if (xi == offs[0]) else None)
                if len(vals) > 1:
                    ax.errorbar(xi, mean, yerr=[[mean - min(vals)], [max(vals) - mean]], color="black",
                                capsize=2.5, lw=1)
                ax.text(xi, mean / 2, f"{mean:.1f}", ha="center", va="center", rotation=90, fontsize=7,
                        color="white", fontweight="bold")
        ax.set_xticks(x, learners)
        ax.set_ylim(0, 100)
        ax.set_title("fused prediction" if who == "fused" else f"modality: {who}", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(f"test {metric} (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    fig.legend(uniq.values(), uniq.keys(), fontsize=8, ncol=min(6, len(uniq)), loc="upper center",
               bbox_to_anchor=(0.5, 0.94), frameon=False)
    n_seeds = "/".join(str(n) for n in sorted(seeds_seen)) or "0"
    fig.suptitle(f"{dataset}: test {metric} by learner and policy", fontsize=11)
    fig.text(0.5, 0.01, f"bar: mean over seeds ({n_seeds} per bar); whisker: min–max over seeds; "
             "y axis from 0; the number on each bar is its mean", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 0.9))
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    """Write ``path`` (PNG, DPI dots per inch) and the same figure as a vector file beside it."""
    return save_figure(fig, path, tight=False)


def make_plots(results: Sequence[dict[str, Any]], plots_dir: str | Path, order: Mapping[str, Sequence[str]]
               ) -> list[Path]:
    """Every figure of a sweep into ``plots_dir`` (PNG + vector); returns the written paths.

    Modality and policy colours are fixed once for the whole sweep, so a colour means the
    same thing in every figure.
    """
    plots_dir = Path(plots_dir)
    mod_colors = modality_colors(results)
    pol_colors = policy_colors(order["policies"])
    written: list[Path] = []

    def add(p: Path | None) -> None:
        if p is not None:
            written.extend([p, p.with_suffix(f".{VECTOR_FORMAT}")])

    for dataset in order["datasets"]:
        for learner in order["learners"]:
            tag = f"{slugify(dataset)}_{slugify(learner)}"
            for fn, stem in ((plot_batch_sizes, "batch_sizes"), (plot_discrepancy, "discrepancy")):
                add(fn(results, dataset, learner, plots_dir / f"{stem}_{tag}.png", policies=order["policies"],
                       colors=mod_colors))
        add(plot_accuracy_bars(results, dataset, plots_dir / f"accuracy_{slugify(dataset)}.png",
                               learners=order["learners"], policies=order["policies"], colors=pol_colors))
    return written
