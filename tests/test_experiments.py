"""Tests for the comparison pipeline (``mmenv compare``, :mod:`experiments`).

Every grid here is tiny (200 synthetic training samples, 1-2 epochs, N_B = 16) and runs
in this process except the one test of the worker-process backend.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import yaml
from mmenv.experiments.compare import run_comparison
from mmenv.experiments.config import ConfigError, config_from_dict, list_presets, load_config
from mmenv.experiments.grid import RunSpec, build_grid, execute_run, split_policy
from mmenv.experiments.report import load_results, markdown_tables

from mmenv.learners import BaselineLearner, register_learner
from mmenv.learners.base import StepOutput

PNG_MAGIC = b"\x89PNG"
TINY_DATA = {"synthetic": {"n_train": 200, "n_val": 40, "n_test": 100}}


def tiny_raw(out: Path, **changes) -> dict:
    raw = {
        "name": "test",
        "seeds": [0, 1],
        "policies": ["uniform", "reinforce"],
        "learners": ["baseline"],
        "datasets": ["synthetic"],
        "env": {"epochs": 2, "batch_budget": 16},
        "dataset_kwargs": TINY_DATA,
        "workers": 1,
        "out": str(out),
    }
    raw.update(changes)
    return raw


# ---------------------------------------------------------------------- test learners
class ExplodingLearner(BaselineLearner):
    """Raises in train_step: stands for a user's learner with a bug."""

    name = "exploding"

    def train_step(self, batch):
        raise RuntimeError("boom in train_step")


class NaNLearner(BaselineLearner):
    """Trains normally but reports a NaN loss: the environment truncates with diverged."""

    name = "nan-loss"

    def train_step(self, batch):
        out = super().train_step(batch)
        losses = dict(out.losses)
        losses["total"] = losses["total"] * float("nan")
        return StepOutput(out.logits, losses, out.extras)


register_learner("exploding", ExplodingLearner)
register_learner("nan-loss", NaNLearner)


# ---------------------------------------------------------------------- the full pipeline
@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    """The tiny grid run once through the command line; later tests reuse its output."""
    from mmenv.cli import main

    out = tmp_path_factory.mktemp("sweep")
    cfg_path = out / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_raw(out / "result")))
    return cfg_path, out / "result", main


def test_tiny_grid_writes_csv_table_plots_and_tensorboard(tiny_sweep, capsys):
    cfg_path, out, main = tiny_sweep
    code = main(["compare", "--config", str(cfg_path), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0

    with open(out / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4                                    # 2 policies x 1 learner x 2 seeds
    assert {(r["policy"], r["seed"]) for r in rows} == {(p, s) for p in ("uniform", "reinforce") for s in ("0", "1")}
    for r in rows:
        assert r["status"] == "ok" and r["error"] == ""
        for who in ("fused", "strong", "weak"):
            for metric in ("accuracy", "map", "macro_f1"):
                assert 0.0 <= float(r[f"{who}_{metric}"]) <= 1.0
        assert float(r["reward_sum"]) < 0                      # Eq. 5 sums logs of shares < 1
        assert int(r["steps"]) == 2                            # one step per epoch

    # The printed table holds the mean of the CSV's per-seed fused accuracies.
    for policy in ("uniform", "reinforce"):
        accs = [100 * float(r["fused_accuracy"]) for r in rows if r["policy"] == policy]
        assert f"| baseline | {policy} | 2/2 | {sum(accs) / 2:.2f} ± " in printed
    assert (out / "results.md").read_text().count("| baseline |") == 2

    plots = sorted((out / "plots").glob("*.png"))
    assert {p.name for p in plots} == {"batch_sizes_synthetic_baseline.png", "discrepancy_synthetic_baseline.png",
                                       "accuracy_synthetic.png"}
    for p in plots:
        assert p.stat().st_size > 1000 and p.read_bytes()[:4] == PNG_MAGIC
        assert str(p) in printed

    for policy in ("uniform", "reinforce"):
        for seed in (0, 1):
            events = list((out / "tb" / "synthetic" / "baseline" / policy / f"seed{seed}").glob("events.out.tfevents.*"))
            assert len(events) == 1 and events[0].stat().st_size > 0

    # Batch sizes recorded per step conserve the budget; uniform keeps N_B / m each.
    results = load_results(out / "runs")
    assert len(results) == 4
    for r in results.values():
        assert all(sum(b) == 16 for b in r["batch_sizes"])
        if r["policy"] == "uniform":
            assert r["batch_sizes"] == [[8, 8], [8, 8]]


def test_resume_runs_only_missing_and_reproduces_numbers(tiny_sweep, capsys):
    cfg_path, out, main = tiny_sweep
    if not (out / "runs").is_dir():
        assert main(["compare", "--config", str(cfg_path), "--no-progress", "--no-plots"]) == 0
    cfg = load_config(cfg_path, overrides={"plots": False})
    before = load_results(out / "runs")
    victim = next(k for k, r in before.items() if r["policy"] == "reinforce" and r["seed"] == 1)
    (out / "runs" / f"{victim}.json").unlink()

    summary = run_comparison(cfg, progress=False)
    assert summary.executed == [victim]
    assert len(summary.skipped) == 3
    after = load_results(out / "runs")
    # Same seed, same numbers: the re-run matches the deleted result exactly.
    assert after[victim]["test"] == before[victim]["test"]
    assert after[victim]["batch_sizes"] == before[victim]["batch_sizes"]

    again = run_comparison(cfg, progress=False)
    assert again.executed == [] and len(again.skipped) == 4
    # A changed setting is a different run (the key hashes the env config).
    changed = config_from_dict(tiny_raw(out, env={"epochs": 1, "batch_budget": 16}, seeds=[0],
                                        policies=["uniform"]))
    assert build_grid(changed)[0].key not in after


def test_failing_and_diverging_runs_are_recorded_and_the_sweep_goes_on(tmp_path):
    cfg = config_from_dict(tiny_raw(tmp_path, seeds=[0], env={"epochs": 1, "batch_budget": 16},
                                    policies=["uniform"],
                                    learners=["baseline", "exploding", "nan-loss"], plots=True))
    summary = run_comparison(cfg, progress=False)
    by = {(r["learner"], r["policy"]): r for r in summary.results}
    assert len(by) == 3
    assert by[("baseline", "uniform")]["status"] == "ok"
    assert by[("exploding", "uniform")]["status"] == "failed"
    assert "boom in train_step" in by[("exploding", "uniform")]["error"]
    assert "RuntimeError" in by[("exploding", "uniform")]["traceback"]
    assert by[("nan-loss", "uniform")]["status"] == "diverged"
    assert by[("nan-loss", "uniform")]["test"] is None
    assert summary.status_counts == {"ok": 1, "failed": 1, "diverged": 1}

    with open(summary.csv_path) as fh:
        rows = {(r["learner"], r["policy"]): r for r in csv.DictReader(fh)}
    assert rows[("exploding", "uniform")]["status"] == "failed"
    assert "boom" in rows[("exploding", "uniform")]["error"]
    assert rows[("exploding", "uniform")]["fused_accuracy"] == ""
    assert "0/1 (1 failed)" in summary.table and "0/1 (1 diverged)" in summary.table

    # Failed runs are tried again on resume; ok and diverged ones are not.
    again = run_comparison(cfg, progress=False)
    assert sorted(again.executed) == sorted(r["key"] for r in summary.results if r["status"] == "failed")


def test_strategy_combination_sets_the_sample_order(tmp_path):
    assert split_policy("bss-curriculum+reinforce") == ("bss-curriculum", "reinforce")
    assert split_policy("dus-h") == (None, "dus-h")
    with pytest.raises(ValueError, match="sample_order"):
        split_policy("+uniform")
    spec = RunSpec("synthetic", "baseline", "shuffle+uniform", 0, env={"epochs": 1, "batch_budget": 16},
                   dataset_kwargs=TINY_DATA["synthetic"])
    ok = execute_run(spec)
    assert ok["status"] == "ok" and ok["sample_order"] == "shuffle"
    bad = execute_run(RunSpec("synthetic", "baseline", "no-such-order+uniform", 0,
                              env={"epochs": 1, "batch_budget": 16}, dataset_kwargs=TINY_DATA["synthetic"]))
    assert bad["status"] == "failed" and "no-such-order" in bad["error"]


def test_worker_processes_give_the_same_numbers_as_serial(tmp_path):
    raw = tiny_raw(tmp_path / "serial", seeds=[0], env={"epochs": 1, "batch_budget": 16},
                   policies=["uniform", "reinforce"], plots=False, tensorboard=False)
    serial = run_comparison(config_from_dict(raw), progress=False)
    raw.update(out=str(tmp_path / "parallel"), workers=2)
    parallel = run_comparison(config_from_dict(raw), progress=False)
    assert sorted(parallel.executed) == sorted(serial.executed)
    for a, b in zip(serial.results, parallel.results):
        assert b["status"] == "ok" and a["test"] == b["test"] and a["batch_sizes"] == b["batch_sizes"]


# ---------------------------------------------------------------------- configs
@pytest.mark.parametrize("changes, key", [
    ({"polices": ["uniform"]}, "polices"),
    ({"env": {"epoch": 3}}, "env.epoch"),
    ({"env": {"epochs": "ten"}}, "env.epochs"),
    ({"env": {"log_dir": "x"}}, "env.log_dir"),
    ({"seeds": "three"}, "seeds"),
    ({"seeds": [0, 0]}, "seeds"),
    ({"learners": []}, "learners"),
    ({"workers": 0}, "workers"),
    ({"backend": "slurm"}, "backend"),
    ({"plots": "yes"}, "plots"),
    ({"dataset_kwargs": {"synthetic": [1, 2]}}, "dataset_kwargs.synthetic"),
])
def test_malformed_config_names_the_key(tmp_path, changes, key):
    with pytest.raises(ConfigError, match=f"'{key}'") as err:
        config_from_dict(tiny_raw(tmp_path, **changes))
    assert key in str(err.value)


def test_missing_key_and_bad_files(tmp_path, capsys):
    raw = tiny_raw(tmp_path)
    del raw["datasets"]
    with pytest.raises(ConfigError, match="missing key 'datasets'"):
        config_from_dict(raw)
    bad = tmp_path / "bad.yaml"
    bad.write_text("policies: [uniform\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="unknown config 'nope'"):
        load_config("nope")
    # The command line turns a config error into one line and exit status 2.
    from mmenv.cli import main

    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump({**tiny_raw(tmp_path), "seed": 3}))
    assert main(["compare", "--config", str(typo)]) == 2
    assert "unknown key 'seed'" in capsys.readouterr().err


def test_presets_load_and_resolve(monkeypatch, tmp_path):
    assert {"default", "tiny", "paper"} <= set(list_presets())
    default = load_config("default")
    assert default.policies == ["uniform", "dus-h", "reinforce"]
    assert default.learners == ["baseline", "mla"] and default.datasets == ["synthetic", "uci-mfeat"]
    assert default.seeds == [0, 1, 2] and default.workers == 2 and default.num_runs == 36
    monkeypatch.delenv("CREMA_D_ROOT", raising=False)
    with pytest.raises(ConfigError, match="CREMA_D_ROOT"):
        load_config("paper")
    monkeypatch.setenv("CREMA_D_ROOT", str(tmp_path / "crema"))
    monkeypatch.setenv("KINETICS_SOUNDS_ROOT", str(tmp_path / "ks"))
    paper = load_config("paper")
    assert paper.dataset_kwargs["crema-d"]["root"] == str(tmp_path / "crema")
    # --data-root replaces the variable; data sets left out need no variable at all.
    monkeypatch.delenv("KINETICS_SOUNDS_ROOT")
    sub = load_config("paper", overrides={"datasets": ["crema-d"], "data_roots": {"crema-d": "/d/c"},
                                          "seeds": [4, 7], "env.epochs": 3})
    assert sub.dataset_kwargs["crema-d"]["root"] == "/d/c" and sub.seeds == [4, 7] and sub.env["epochs"] == 3
    specs = build_grid(sub)
    assert len(specs) == 1 * 5 * 3 * 2 and len({s.key for s in specs}) == len(specs)


def test_markdown_table_statistics():
    def res(seed, acc, status="ok"):
        test = {"fused": {"accuracy": acc, "map": acc, "macro_f1": acc}} if status == "ok" else None
        return {"dataset": "d", "learner": "l", "policy": "p", "seed": seed, "status": status, "test": test,
                "modalities": [], "error": "" if status == "ok" else "x"}

    table = markdown_tables([res(0, 0.5), res(1, 0.7), res(2, 0.0, "failed")])
    std = math.sqrt(((50 - 60) ** 2 + (70 - 60) ** 2) / 1)
    assert f"| l | p | 2/3 (1 failed) | 60.00 ± {std:.2f} |" in table
    # the failed run is listed with its error, and the mean/std cover the finished runs only
    assert table.rstrip().endswith("- l / p seed 2: failed: x")
    assert table.count(f"60.00 ± {std:.2f}") == 3   # fused accuracy, MAP and macro-F1


def test_sample_order_kwargs_reach_the_runs():
    from mmenv.experiments.config import ConfigError, config_from_dict
    from mmenv.experiments.grid import build_grid

    cfg = config_from_dict({"policies": ["uniform", "bss-curriculum+uniform"], "learners": ["baseline"],
                       "datasets": ["synthetic"], "seeds": 1,
                       "sample_order_kwargs": {"bss-curriculum": {"t_grow": None}}})
    specs = {s.policy: s for s in build_grid(cfg)}
    assert specs["bss-curriculum+uniform"].sample_order_kwargs == {"t_grow": None}
    assert specs["uniform"].sample_order_kwargs == {}
    with pytest.raises(ConfigError, match="sample_order_kwargs"):
        config_from_dict({"policies": ["uniform"], "learners": ["baseline"], "datasets": ["synthetic"],
                     "sample_order_kwargs": ["t_grow"]})


@pytest.mark.parametrize("key, value, match", [
    ("policies", ["uniform", "no-such-policy"], "unknown policy 'no-such-policy'"),
    ("policies", ["remix"], "write 'remix\\+uniform'"),
    ("policies", ["bss+reinforce"], "unknown sample order 'bss'"),
    ("policies", ["runs/missing/agent.pt"], "saved agent 'runs/missing/agent.pt' not found"),
    ("learners", ["baselin"], "did you mean 'baseline'"),
    ("datasets", ["uci"], "unknown dataset 'uci'"),
])
def test_unknown_names_fail_before_any_run(tmp_path, key, value, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(tiny_raw(tmp_path, **{key: value}))
