"""The CLI runs in-process on a tiny configuration and writes what it promises."""

import csv
import json

import pytest

from mmenv.agents import ReinforcePolicy, make_policy
from mmenv.agents.sb3 import SB3Policy
from mmenv.cli import add_env_arguments, build_parser, env_kwargs_from_args, main

TINY = ["--dataset-kwargs", '{"n_train": 200, "n_val": 50, "n_test": 100}', "--epochs", "2",
        "--batch-budget", "16", "--no-progress"]


def test_evaluate_writes_json_and_csv(tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", "--policy", "dus-h", "--episodes", "2", "--seed", "5", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    assert "test_fused_accuracy" in printed and "mean" in printed
    payload = json.loads((out / "results.json").read_text())
    assert {"policy", "env", "seeds", "summary", "episodes", "learn"} <= set(payload)
    assert payload["seeds"] == [5, 6] and payload["env"]["epochs"] == 2 and payload["learn"] is False
    assert len(payload["episodes"]) == 2
    ep = payload["episodes"][0]
    assert ep["steps"] == 2 and len(ep["batch_sizes"]) == 2 and set(ep["test"]["fused"]) == {"accuracy", "map",
                                                                                                "macro_f1"}
    acc = [e["test"]["fused"]["accuracy"] for e in payload["episodes"]]
    assert payload["summary"]["test_fused_accuracy"]["mean"] == pytest.approx(sum(acc) / 2)
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 2 and rows[0]["seed"] == "5" and float(rows[1]["test_fused_accuracy"]) == pytest.approx(acc[1])


def test_train_reinforce_then_evaluate_the_saved_agent(tmp_path):
    out = tmp_path / "rf"
    assert main(["train", "--agent", "reinforce", "--episodes", "2", "--out", str(out), *TINY]) == 0
    assert (out / "agent.pt").exists()
    train = json.loads((out / "train.json").read_text())
    assert train["agent"] == "reinforce" and train["updates"] == 4 and len(train["episodes"]) == 2
    assert list((out / "tb" / "env").glob("events.out.tfevents.*"))
    assert list((out / "tb" / "reinforce").glob("events.out.tfevents.*"))
    assert isinstance(make_policy(str(out / "agent.pt")), ReinforcePolicy)

    ev = tmp_path / "ev"
    assert main(["evaluate", "--policy", str(out / "agent.pt"), "--frozen", "--out", str(ev), *TINY]) == 0
    payload = json.loads((ev / "results.json").read_text())
    assert payload["learn"] is False and payload["episodes"][0]["steps"] == 2


def test_train_sb3_then_evaluate(tmp_path):
    out = tmp_path / "a2c"
    assert main(["train", "--agent", "a2c", "--timesteps", "4", "--agent-kwargs", '{"n_steps": 2}',
                 "--out", str(out), *TINY]) == 0
    assert (out / "agent.zip").exists() and isinstance(make_policy(str(out / "agent.zip")), SB3Policy)
    assert json.loads((out / "train.json").read_text())["timesteps"] == 4
    assert list((out / "tb").rglob("events.out.tfevents.*"))
    ev = tmp_path / "ev"
    assert main(["evaluate", "--policy", str(out / "agent.zip"), "--out", str(ev), *TINY]) == 0
    assert json.loads((ev / "results.json").read_text())["episodes"][0]["test"] is not None


def test_help_and_bad_input(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for opt in ("--batch-budget", "--dataset-kwargs", "--step-every", "--reward", "--discrepancy", "--log-dir"):
        assert opt in text
    with pytest.raises(SystemExit):
        main(["evaluate", "--policy", "uniform", "--dataset-kwargs", "{oops", "--out", str(tmp_path)])
    assert "not valid JSON" in capsys.readouterr().err
    assert main(["evaluate", "--policy", "greedy", "--out", str(tmp_path), *TINY]) == 2
    assert "unknown policy" in capsys.readouterr().err
    assert main([]) == 2


def test_parser_is_extensible():
    parser = build_parser()
    assert {"train", "evaluate"} <= set(parser.subparsers.choices)
    extra = parser.subparsers.add_parser("extra")
    add_env_arguments(extra)
    args = parser.parse_args(["extra", "--epochs", "3", "--step-every", "4", "--learner-kwargs", '{"lr": 0.1}'])
    kw = env_kwargs_from_args(args)
    assert kw["epochs"] == 3 and kw["step_every"] == 4 and kw["learner_kwargs"] == {"lr": 0.1}
    assert kw["dataset"] == "synthetic" and kw["dataset_kwargs"] is None
