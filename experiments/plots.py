"""Figures of a sweep (matplotlib, Agg backend, PNG).

* :func:`plot_batch_sizes` — per-modality batch size over training, one panel per
  policy (the paper's Fig. 4): mean over seeds, shaded min–max.
* :func:`plot_discrepancy` — per-modality cumulative discrepancy over training, uniform
  vs DUS (the paper's Fig. 5), one panel per modality; step 0 is the observation the
  first action saw.
* :func:`plot_accuracy_bars` — fused test accuracy per learner and policy, error bars
  = sample std over seeds.

Trajectories are per environment step (one step per epoch by default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .grid import slugify, split_policy  # noqa: E402
from .report import group_results, mean_std  # noqa: E402

__all__ = ["plot_batch_sizes", "plot_discrepancy", "plot_accuracy_bars", "make_plots", "is_dus_policy"]


def is_dus_policy(policy: str) -> bool:
    """A learned DUS policy: online REINFORCE, or a saved agent (possibly behind a sample order)."""
    name = split_policy(policy)[1].lower()
    return name == "reinforce" or name.endswith((".pt", ".zip"))


def _finished(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in runs if r["status"] in ("ok", "diverged") and r.get("batch_sizes")]


def _stack(runs: Sequence[dict[str, Any]], field: str) -> np.ndarray | None:
    """Trajectories of equal length as an array ``[seeds, steps, m]`` (shorter diverged runs dropped)."""
    series = [np.asarray(r[field], dtype=float) for r in runs if r.get(field)]
    if not series:
        return None
    length = max(s.shape[0] for s in series)
    series = [s for s in series if s.shape[0] == length]
    return np.stack(series)


def _band(ax, x, arr, label, color=None, style="-"):
    mean = arr.mean(0)
    line, = ax.plot(x, mean, style, label=label, color=color)
    if arr.shape[0] > 1:
        ax.fill_between(x, arr.min(0), arr.max(0), alpha=0.2, color=line.get_color())


def plot_batch_sizes(results: Sequence[dict[str, Any]], dataset: str, learner: str, path: str | Path,
                     policies: Sequence[str] | None = None) -> Path | None:
    """Fig. 4: per-modality batch size a_j per step, one panel per policy (uniform left out if others exist)."""
    groups = {k[2]: _finished(v) for k, v in group_results(results).items() if k[0] == dataset and k[1] == learner}
    names = [p for p in (policies or list(groups)) if groups.get(p)]
    non_uniform = [p for p in names if split_policy(p)[1] != "uniform"]
    names = non_uniform or names
    if not names:
        return None
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False, sharey=True)
    for ax, policy in zip(axes[0], names):
        runs = groups[policy]
        arr = _stack(runs, "batch_sizes")
        if arr is None:
            continue
        modalities = runs[0]["modalities"]
        x = np.arange(1, arr.shape[1] + 1)
        for j, mod in enumerate(modalities):
            _band(ax, x, arr[:, :, j], mod)
        ax.set_title(f"{policy} ({arr.shape[0]} seed{'s' if arr.shape[0] > 1 else ''})", fontsize=10)
        ax.set_xlabel("environment step (epoch)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("batch size per modality")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"Batch size over training — {dataset} / {learner}", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def plot_discrepancy(results: Sequence[dict[str, Any]], dataset: str, learner: str, path: str | Path,
                     policies: Sequence[str] | None = None) -> Path | None:
    """Fig. 5: cumulative discrepancy per modality over training, uniform vs DUS policies.

    Without a uniform or DUS policy in the grid, every policy is drawn.
    """
    groups = {k[2]: _finished(v) for k, v in group_results(results).items() if k[0] == dataset and k[1] == learner}
    names = [p for p in (policies or list(groups)) if groups.get(p)]
    chosen = [p for p in names if split_policy(p)[1] == "uniform" or is_dus_policy(p)]
    names = chosen if len(chosen) >= 1 else names
    if not names:
        return None
    modalities = groups[names[0]][0]["modalities"]
    fig, axes = plt.subplots(1, len(modalities), figsize=(4.2 * len(modalities), 3.4), squeeze=False)
    for policy in names:
        runs = groups[policy]
        traj = [[r["initial_discrepancy"], *r["discrepancy"]] if r.get("initial_discrepancy") else r["discrepancy"]
                for r in runs]
        arr = _stack([{"d": t} for t in traj], "d")
        if arr is None:
            continue
        x = np.arange(arr.shape[1]) if runs[0].get("initial_discrepancy") else np.arange(1, arr.shape[1] + 1)
        style = "--" if split_policy(policy)[1] == "uniform" else "-"
        for j in range(len(modalities)):
            _band(axes[0][j], x, arr[:, :, j], policy, style=style)
    for j, mod in enumerate(modalities):
        ax = axes[0][j]
        ax.set_title(mod, fontsize=10)
        ax.set_xlabel("environment step (epoch)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("cumulative discrepancy ŝ")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"Cumulative discrepancy — {dataset} / {learner}", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def plot_accuracy_bars(results: Sequence[dict[str, Any]], dataset: str, path: str | Path,
                       learners: Sequence[str] | None = None, policies: Sequence[str] | None = None,
                       metric: str = "accuracy") -> Path | None:
    """Fused test ``metric`` (percent) per learner (groups) and policy (bars); error bars = std over seeds."""
    groups = {(k[1], k[2]): [r for r in v if r["status"] == "ok" and r.get("test")]
              for k, v in group_results(results).items() if k[0] == dataset}
    if not any(groups.values()):
        return None
    learners = [l for l in (learners or sorted({k[0] for k in groups})) if any(k[0] == l for k in groups)]
    policies = [p for p in (policies or sorted({k[1] for k in groups})) if any(k[1] == p for k in groups)]
    width = 0.8 / max(1, len(policies))
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 * len(learners) * max(1, len(policies)) * 0.6 + 2), 3.6))
    x = np.arange(len(learners))
    tops = []
    for i, policy in enumerate(policies):
        means, stds = [], []
        for learner in learners:
            vals = [100 * r["test"]["fused"][metric] for r in groups.get((learner, policy), [])]
            m, s = mean_std(vals)
            means.append(m)
            stds.append(0.0 if np.isnan(s) else s)
        means_arr = np.asarray(means, dtype=float)
        ax.bar(x + (i - (len(policies) - 1) / 2) * width, np.nan_to_num(means_arr), width, yerr=stds,
               capsize=3, label=policy)
        tops += [m for m in means if not np.isnan(m)]
    ax.set_xticks(x, learners)
    ax.set_ylabel(f"fused test {metric} (%)")
    if tops:
        low = max(0.0, min(tops) - 10)
        ax.set_ylim(low, min(100.0, max(tops) + 5))
    ax.legend(fontsize=8, ncol=min(4, len(policies)))
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"{dataset}: fused test {metric} by learner and policy", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def make_plots(results: Sequence[dict[str, Any]], plots_dir: str | Path, order: Mapping[str, Sequence[str]]
               ) -> list[Path]:
    """Every figure of a sweep into ``plots_dir``; returns the written paths."""
    plots_dir = Path(plots_dir)
    written: list[Path] = []
    for dataset in order["datasets"]:
        for learner in order["learners"]:
            tag = f"{slugify(dataset)}_{slugify(learner)}"
            for fn, stem in ((plot_batch_sizes, "batch_sizes"), (plot_discrepancy, "discrepancy")):
                p = fn(results, dataset, learner, plots_dir / f"{stem}_{tag}.png", policies=order["policies"])
                if p is not None:
                    written.append(p)
        p = plot_accuracy_bars(results, dataset, plots_dir / f"accuracy_{slugify(dataset)}.png",
                               learners=order["learners"], policies=order["policies"])
        if p is not None:
            written.append(p)
    return written
