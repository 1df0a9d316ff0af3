"""Learned schedules per direction: what an agent gives the modality that is ahead, step by step.

One figure per agent row (``schedules_by_direction_<agent>.png``): a panel per direction of
the test instances (:func:`mmenv.experiments.bench_claims.instance_direction`), one line per
test instance, the share the agent gives the modality that is ahead under uniform minus
``1/m`` (0 = uniform; below 0: the modalities behind get more), mean over agent seeds and
evaluation seeds; the oracle's schedule dashed in the same colour. A policy that learned the
direction goes below 0 on ``up`` instances and above 0 on ``down`` ones.
Kept apart from :mod:`mmenv.experiments.bench_plots` (same matplotlib setup, Agg backend).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .grid import slugify
from .palette import save_figure as _save  # noqa: E402

if TYPE_CHECKING:
    from .bench_data import BenchData
    from .bench_report import Report

__all__ = ["ahead_share", "plot_direction_schedules"]


def ahead_share(data: BenchData, inst_label: str, rows: Sequence[str]) -> np.ndarray | None:
    """Per step, the share ``rows`` gave the modality ahead minus ``1/m`` (mean over runs)."""
    ahead = data.dominant.get((inst_label, "uniform"), {})
    votes = [ahead[s] for s in data.cfg.eval_seeds if s in ahead]
    if not votes:
        return None
    j = Counter(votes).most_common(1)[0][0]
    arrs = [np.asarray(sched[s], dtype=float) for row in rows
            for sched in [data.schedules.get((inst_label, row), {})] for s in data.cfg.eval_seeds if s in sched]
    arrs = [a for a in arrs if a.ndim == 2 and a.shape[1] > j]
    if not arrs or len({a.shape for a in arrs}) != 1:
        return None
    mean = np.mean(arrs, axis=0)
    return mean[:, j] - 1.0 / mean.shape[1]


def plot_direction_schedules(rep: Report, data: BenchData, agent: str, out: Path) -> Path | None:
    dirs = [d for d in ("up", "down", "none") if d in rep.directions.values()]
    if not dirs:
        return None
    fig, axes = plt.subplots(1, len(dirs), figsize=(4.2 * len(dirs), 3.2), squeeze=False, sharey=True)
    drew = False
    for ax, d in zip(axes[0], dirs):
        labels = [lab for lab, dd in rep.directions.items() if dd == d]
        for k, lab in enumerate(labels):
            for rows, style in ((data.seed_rows(agent), "-"), (["oracle"], "--")):
                y = ahead_share(data, lab, rows)
                if y is not None:
                    ax.plot(np.arange(len(y)), y, style, color=f"C{k}",
                            label=lab.split("/", 1)[-1] if style == "-" else None)
                    drew = True
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set_title(f"direction {d} ({len(labels)} test instances)", fontsize=9)
        ax.set_xlabel("step (epoch)", fontsize=8)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize=6)
    axes[0][0].set_ylabel("share of the modality ahead − 1/m")
    fig.suptitle(f"{agent} (solid, mean over agent and evaluation seeds) and the oracle (dashed)", fontsize=10)
    if not drew:
        plt.close(fig)
        return None
    return _save(fig, out / f"schedules_by_direction_{slugify(agent.replace(':', '-'))}.png")
