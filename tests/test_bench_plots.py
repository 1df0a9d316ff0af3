"""The benchmark's figures: one colour per modality role and per policy, human labels, rho printed,
per-seed learning curves, PNG at 200 dpi + PDF; and the local leaderboard of a bench folder."""

from __future__ import annotations

import csv
import json
import math
from types import SimpleNamespace

import matplotlib.colors as mcolors
import numpy as np
import pytest
from mmenv.experiments import bench_plots, palette
from mmenv.experiments.leaderboard import LeaderboardError, leaderboard, leaderboard_markdown


def _inst(name, learner="ogm-ge", split="test"):
    return SimpleNamespace(name=name, learner=learner, split=split, set_name="s", label=lambda n=name: f"s/{n}")


@pytest.fixture
def captured(monkeypatch):
    """The figures the plot functions build, instead of files."""
    figs = []

    def keep(fig, path, tight=True):
        figs.append(fig)
        return path

    monkeypatch.setattr(bench_plots, "save_figure", keep)
    return figs


def _data():
    a, b = _inst("p0"), _inst("p1", learner="mla")
    # the strong modality first on one instance, second on the other
    modalities = {"s/p0": ("strong", "weak"), "s/p1": ("weak", "strong")}
    sched = {(i.label(), who): {s: [[0.3, 0.7], [0.4, 0.6]] for s in (0, 1)}
             for i in (a, b) for who in ("agent:rf", "oracle")}
    rng = np.random.default_rng(0)
    acc = {(i.label(), p): {s: float(rng.uniform(0.6, 0.9)) for s in (0, 1)}
           for i in (a, b) for p in ("uniform", "oracle", "dus-h", "agent:rf")}
    eq5 = {k: {s: float(rng.uniform(-1, 0)) for s in (0, 1)} for k in acc}
    agents = {f"s/rf-s{k}/m2": {"set": "s", "algo": "reinforce", "observation": "paper", "reward": "val-acc-gain",
                                "m": 2, "runs": 4, "seed": k, "curve": [[0, 0.1 * k], [2, 0.2 + 0.1 * k], [4, 0.5]]}
              for k in range(3)}
    data = SimpleNamespace(sets=[SimpleNamespace(test=[a, b])], modalities=modalities, schedules=sched, acc=acc,
                           eq5=eq5, agents=agents, policies=["oracle", "dus-h"], agent_labels=["agent:rf"], seed_rows=lambda label: [label],
                           cfg=SimpleNamespace(eval_seeds=[0, 1], curve_seeds=[200]))

    def values(inst, label, seeds):
        d = acc.get((inst.label(), label), {})
        return np.asarray([d.get(s, math.nan) for s in seeds])

    data.values = values
    return data


def test_schedules_keep_each_modality_role_in_its_colour(captured):
    bench_plots.plot_schedules(_data(), "agent:rf", "x.png")
    fig = captured[0]
    axes = [ax for ax in fig.axes if ax.lines]
    assert len(axes) == 2
    for ax, mods in zip(axes, (("strong", "weak"), ("weak", "strong"))):
        solid = [ln for ln in ax.lines if ln.get_linestyle() == "-"]
        # the agent's line of modality j has modality j's role colour, whatever its position
        for ln, mod, share in zip(solid, mods, (0.3, 0.7)):
            assert mcolors.to_hex(ln.get_color()) == palette.ROLE_COLORS[mod]
            assert ln.get_ydata()[0] == pytest.approx(share)
    assert "Across-run agent (rf)" in fig._suptitle.get_text()


def test_alignment_prints_spearman_and_draws_translucent_points(captured):
    bench_plots.plot_alignment(_data(), "x.png", rho=-0.07)
    ax = captured[0].axes[0]
    assert any("Spearman ρ = -0.07 (pooled, 16 runs)" in t.get_text() for t in ax.texts)
    alphas = {c.get_alpha() for c in ax.collections}
    assert min(a for a in alphas if a is not None) < 0.5
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["Uniform (4)", "Oracle (4)", "DUS-H (4)", "Across-run agent (rf) (4)"]


def test_curves_draw_every_seed_their_mean_and_a_band(captured):
    bench_plots.plot_curves(_data(), "x.png")
    ax = captured[0].axes[0]
    thick = [ln for ln in ax.lines if ln.get_linewidth() > 2]
    thin = [ln for ln in ax.lines if ln.get_linewidth() < 1]
    assert len(thin) == 3 and len(thick) == 1
    assert list(thick[0].get_ydata()) == pytest.approx([0.1, 0.3, 0.5])      # mean over the 3 seeds
    assert len(ax.collections) == 1                                          # the min-max band
    assert "seeds 0, 1, 2" in thick[0].get_label()


def test_headroom_title_names_only_the_splits_drawn(captured):
    row = {"set": "s", "instance": "p0", "split": "test", "headroom": 0.02, "ci_lo": 0.01, "ci_hi": 0.03,
           "has_headroom": True}
    bench_plots.plot_headroom(SimpleNamespace(headroom=[row]), "x.png")
    assert captured[0].axes[0].get_title() == "Headroom per test instance"


def test_policy_labels_and_colours_are_one_table():
    assert [palette.policy_label(p) for p in ("dus-h", "fixed", "fixed-ratio", "uniform", "oracle",
                                              "tuned-constant", "agent:ppo", "runs/x/agent.zip")] == [
        "DUS-H", "Fixed ratio (MLA-HB)", "Fixed ratio (MLA-HB)", "Uniform", "Oracle", "Tuned constant",
        "Across-run agent (ppo)", "Agent (agent)"]
    a = palette.policy_color_map(["oracle", "dus-h", "agent:a", "mine"])
    b = palette.policy_color_map(["mine", "agent:a", "dus-h", "oracle", "uniform"])
    assert {k: a[k] for k in ("oracle", "dus-h", "agent:a")} == {k: b[k] for k in ("oracle", "dus-h", "agent:a")}
    assert not set(palette.policy_color_map(["uniform", "dus-h", "fixed", "agent:a"]).values()) & set(
        palette.modality_color_map(["strong", "weak", "x", "y"]).values())


def test_figures_are_png_at_200_dpi_and_pdf(tmp_path):
    from PIL import Image

    data = _data()
    row = {"set": "s", "instance": "p0", "split": "test", "headroom": 0.02, "ci_lo": 0.01, "ci_hi": 0.03,
           "has_headroom": True}
    agg = {"policy": "dus-h", "instances": 2, "iqm": 0.2, "iqm_lo": 0.1, "iqm_hi": 0.3, "mean": 0.2, "mean_lo": 0.1,
           "mean_hi": 0.3}
    rep = SimpleNamespace(headroom=[row], aggregates=[agg], pooled_spearman=0.1, directions={})
    written = bench_plots.make_bench_plots(rep, data, tmp_path)
    pngs = sorted(p.name for p in written if p.suffix == ".png")
    assert pngs == ["curves.png", "headroom.png", "reward_alignment.png", "schedules_agent-rf.png", "scores.png"]
    for p in written:
        assert p.is_file() and p.stat().st_size > 0
        if p.suffix == ".png":
            assert p.with_suffix(".pdf") in written
            assert Image.open(p).info["dpi"] == pytest.approx((200, 200), abs=0.1)


# ---------------------------------------------------------------------- leaderboard
def _write_csv(path, rows):
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def test_leaderboard_ranks_every_row_of_a_bench_folder(tmp_path, capsys):
    agg = [{"policy": p, "instances": 2, "raw_instances": 3, "iqm": i, "iqm_lo": i - 0.1, "iqm_hi": i + 0.1,
            "mean": i, "mean_lo": i - 0.2, "mean_hi": i + 0.2, "diff": 10 * i, "diff_lo": 0, "diff_hi": 20 * i}
           for p, i in (("oracle", 1.0), ("dus-h", 0.1), ("agent:rf", 0.4), ("fixed-ratio", float("nan")))]
    _write_csv(tmp_path / "aggregates.csv", agg)
    results = [{"instance": f"s/t{k}", "policy": p, "seed": s, "seed_role": role, "fused_accuracy": 0.5 + 0.1 * k,
                "eq5_return": -0.1}
               for p in ("uniform", "oracle", "dus-h", "agent:rf", "fixed-ratio") for k in range(3)
               for s, role in ((0, "evaluation"), (1, "evaluation"), (100, "tuning"))]
    _write_csv(tmp_path / "results.csv", results)
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "s__rf__m2__abc.json").write_text(json.dumps({"label": "rf", "algo": "reinforce",
                                                                         "runs": 40, "seed": 3}))
    rows = leaderboard(tmp_path)
    assert [r["policy"] for r in rows] == ["oracle", "agent:rf", "dus-h", "uniform", "fixed-ratio"]
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, ""]
    rf = rows[1]
    assert (rf["iqm"], rf["iqm_lo"], rf["iqm_hi"]) == pytest.approx((0.4, 0.3, 0.5))
    assert rf["eval_seeds"] == "0 1" and rf["test_instances"] == 3 and rf["training_runs"] == "40"
    assert rf["mean_accuracy"] == pytest.approx(0.6)
    text = leaderboard_markdown(rows)
    assert "| 2 | Across-run agent (rf) | 0.400 [0.300, 0.500] |" in text
    assert "| Fixed ratio (MLA-HB) | none |" in text
    from mmenv.cli import main

    assert main(["bench", "--leaderboard", str(tmp_path)]) == 0
    assert "Across-run agent (rf)" in capsys.readouterr().out
    with (tmp_path / "leaderboard.csv").open() as fh:
        assert [r["policy"] for r in csv.DictReader(fh)][:2] == ["oracle", "agent:rf"]
    with pytest.raises(LeaderboardError, match="not a benchmark output folder"):
        leaderboard(tmp_path / "agents")
