"""The CLI's error convention and the one summary convention of every table."""

from __future__ import annotations

import json
import math

import pytest

from mmenv import cli
from mmenv.results import std_note, summarise

TINY = ["--epochs", "1", "--batch-budget", "32", "--dataset-kwargs", '{"n_train": 120, "n_val": 40, "n_test": 120}']


def test_package_error_is_one_line(tmp_path, capsys):
    rc = cli.main(["evaluate", "--policy", "uniform", "--learner", "mlaa", "--out", str(tmp_path), "--no-progress",
                   *TINY])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.count("\n") == 0 and "Traceback" not in err
    assert err.startswith("mmenv evaluate: error: unknown learner 'mlaa' (did you mean 'mla'?)")
    rc = cli.main(["evaluate", "--policy", "uniform", "--learner-kwargs", '{"lrr": 0.1}', "--out", str(tmp_path),
                   "--no-progress", *TINY])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "'lrr'" in err and "did you mean 'lr'" in err


def test_genuine_bug_keeps_its_traceback(tmp_path, monkeypatch):
    def buggy(args):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    monkeypatch.setattr(cli, "cmd_evaluate", buggy)
    with pytest.raises(TypeError, match="unsupported operand"):
        cli.main(["evaluate", "--policy", "uniform", "--out", str(tmp_path)])


def test_summary_is_sample_std():
    s = summarise([0.80, 0.90])
    assert s.n == 2 and s.mean == pytest.approx(0.85)
    assert s.std == pytest.approx(abs(0.90 - 0.80) / math.sqrt(2))       # ddof=1, not |a-b|/2
    assert s.format(scale=100.0) == "85.00 ± 7.07"
    assert math.isnan(summarise([0.5]).std) and summarise([0.5]).format() == "0.50"
    assert summarise([]).format() == "–"
    assert std_note(3) == "± = sample std over 3 seeds"


def test_evaluate_and_compare_give_the_same_plus_minus(tmp_path, capsys):
    from mmenv.experiments.compare import run_comparison
    from mmenv.experiments.config import config_from_dict

    rc = cli.main(["evaluate", "--policy", "uniform", "--episodes", "2", "--seed", "0", "--out", str(tmp_path / "ev"),
                   "--no-progress", *TINY])
    out = capsys.readouterr().out
    assert rc == 0 and "± = sample std over 2 seeds" in out
    payload = json.loads((tmp_path / "ev" / "results.json").read_text())
    acc = [e["test"]["fused"]["accuracy"] for e in payload["episodes"]]
    ev = payload["summary"]["test_fused_accuracy"]
    assert ev["n"] == 2 and ev["std"] == pytest.approx(abs(acc[0] - acc[1]) / math.sqrt(2))

    cfg = config_from_dict({
        "policies": ["uniform"], "learners": ["baseline"], "datasets": ["synthetic"], "seeds": [0, 1],
        "env": {"epochs": 1, "batch_budget": 32},
        "dataset_kwargs": {"synthetic": {"n_train": 120, "n_val": 40, "n_test": 120}},
        "workers": 1, "plots": False, "tensorboard": False, "out": str(tmp_path / "cmp"),
    })
    summary = run_comparison(cfg, progress=False)
    compare_acc = sorted(r["test"]["fused"]["accuracy"] for r in summary.results)
    assert compare_acc == pytest.approx(sorted(acc))               # the same runs ...
    cell = f"{100 * ev['mean']:.2f} ± {100 * ev['std']:.2f}"
    assert f"| baseline | uniform | 2/2 | {cell} |" in summary.table   # ... the same ±
    assert "± = sample std over N seeds" in summary.table
