"""Paper-style figures of a sweep: every policy drawn, honest axes, fixed colours, PNG + vector."""

from __future__ import annotations

import numpy as np
import pytest
from mmenv.experiments import plots


def _run(policy: str, seed: int, batch_sizes, discrepancy, acc=(0.9, 0.8, 0.7), dataset="synthetic",
         learner="baseline", modalities=("strong", "weak")):
    return {
        "key": f"{dataset}__{learner}__{policy}__seed{seed}", "dataset": dataset, "learner": learner,
        "policy": policy, "seed": seed, "status": "ok", "modalities": list(modalities),
        "batch_sizes": batch_sizes, "discrepancy": discrepancy, "initial_discrepancy": [0.1, 0.1],
        "test": {"fused": {"accuracy": acc[0]}, modalities[0]: {"accuracy": acc[1]},
                 modalities[1]: {"accuracy": acc[2]}},
    }


@pytest.fixture
def results():
    out = []
    for seed in range(3):
        out.append(_run("uniform", seed, [[32, 32]] * 3, [[0.2, 0.1], [0.3, 0.15], [0.35, 0.2]],
                        acc=(0.90 + 0.01 * seed, 0.8, 0.7)))
        # DUS-H switches its dominant modality between steps: seed 1 switches the other way.
        dush = [[21, 43], [43, 21], [25, 39]] if seed != 1 else [[43, 21], [21, 43], [39, 25]]
        out.append(_run("dus-h", seed, dush, [[0.1, 0.2], [0.3, 0.2], [0.3, 0.28]], acc=(0.91, 0.81, 0.72)))
        out.append(_run("reinforce", seed, [[30, 34]] * 3, [[0.2, 0.1], [0.3, 0.2], [0.3, 0.25]],
                        acc=(0.92, 0.8, 0.74)))
    return out


@pytest.fixture
def captured(monkeypatch):
    """The figure each plot function saves (kept open so its artists can be read)."""
    figs = []
    real = plots._save

    def spy(fig, path):
        figs.append(fig)
        fig.savefig = lambda *a, **k: None   # type: ignore[method-assign]
        return real(fig, path)

    monkeypatch.setattr(plots, "_save", spy)
    monkeypatch.setattr(plots.plt, "close", lambda fig=None: None)
    return figs


def _visible_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible()]


def test_batch_sizes_draw_every_policy_each_seed_and_the_uniform_share(results, captured, tmp_path):
    plots.plot_batch_sizes(results, "synthetic", "baseline", tmp_path / "b.png")
    (fig,) = captured
    axes = _visible_axes(fig)
    assert [ax.get_title().split(" (")[0] for ax in axes] == ["Uniform", "DUS-H", "Online REINFORCE"]   # human labels
    dush = axes[1]
    # N_B / m = 32 as a horizontal line.
    hlines = [ln for ln in dush.get_lines() if np.allclose(ln.get_ydata(), 32) and ln.get_linestyle() == "--"]
    assert hlines
    # Per-seed curves: seed 1's switch in the other direction is drawn, not averaged away.
    curves = [tuple(ln.get_ydata()) for ln in dush.get_lines()]
    assert (43.0, 21.0, 39.0) in curves and (21.0, 43.0, 25.0) in curves
    assert dush.get_ylim()[0] == 0
    text = " ".join(t.get_text() for t in fig.texts)
    assert "min–max over seeds" in text and "N_B" in text


def test_discrepancy_puts_all_modalities_on_one_axis_with_the_gap_for_every_policy(results, captured, tmp_path):
    plots.plot_discrepancy(results, "synthetic", "baseline", tmp_path / "d.png")
    (fig,) = captured
    axes = _visible_axes(fig)
    assert [ax.get_title().split(" (")[0] for ax in axes] == ["Uniform", "DUS-H", "Online REINFORCE"]   # human labels
    colors = plots.modality_colors(results)
    for ax in axes:
        labels = [ln.get_label() for ln in ax.get_lines()]
        assert "strong" in labels and "weak" in labels          # both modalities, same axis
        by = {ln.get_label(): ln for ln in ax.get_lines()}
        assert by["strong"].get_color() == colors["strong"] and by["weak"].get_color() == colors["weak"]
        assert any(c.get_hatch() == "///" for c in ax.collections)   # the shaded gap
    assert axes[0].get_ylim()[0] == 0
    assert "final gap" in axes[1].get_title()


def test_accuracy_bars_start_at_zero_with_per_modality_panels_and_stated_whiskers(results, captured, tmp_path):
    plots.plot_accuracy_bars(results, "synthetic", tmp_path / "a.png",
                             policies=["uniform", "dus-h", "reinforce"])
    (fig,) = captured
    axes = _visible_axes(fig)
    assert [ax.get_title() for ax in axes] == ["fused prediction", "modality: strong", "modality: weak"]
    colors = plots.policy_colors(["uniform", "dus-h", "reinforce"])
    for ax in axes:
        assert ax.get_ylim() == (0, 100)
        assert {p.get_facecolor()[:3] for p in ax.patches} == {
            tuple(int(colors[p][i:i + 2], 16) / 255 for i in (1, 3, 5)) for p in colors}
    # Fused uniform: mean 91 of (90, 91, 92), whisker to min 90 and max 92.
    assert any(t.get_text() == "91.0" for t in axes[0].texts)
    assert "whisker: min–max over seeds" in " ".join(t.get_text() for t in fig.texts)


def test_colours_keep_one_meaning_and_palettes_are_disjoint(results):
    mods = plots.modality_colors(results)
    pols = plots.policy_colors(["uniform", "dus-h", "reinforce", "fixed"])
    assert pols["uniform"] == plots.UNIFORM_COLOR and len(set(pols.values())) == 4
    assert not set(mods.values()) & set(pols.values())


def test_make_plots_writes_png_and_vector_for_each_figure(results, tmp_path):
    written = plots.make_plots(results, tmp_path, {"datasets": ["synthetic"], "learners": ["baseline"],
                                                   "policies": ["uniform", "dus-h", "reinforce"]})
    names = sorted(p.name for p in written)
    assert names == sorted(f"{stem}.{ext}" for stem in ("batch_sizes_synthetic_baseline",
                                                         "discrepancy_synthetic_baseline", "accuracy_synthetic")
                           for ext in ("png", "pdf"))
    for p in written:
        data = p.read_bytes()
        assert data[:4] in (b"\x89PNG", b"%PDF")
