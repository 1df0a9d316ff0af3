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


# ---------------------------------------------------------------------- bad input and Ctrl-C
def _usage_error(capsys, argv) -> str:
    """Run ``argv``; it must stop at parse time (argparse's exit status 2); return the last stderr line."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err)
    return err[-1]


def test_out_naming_a_file_is_one_line(tmp_path, capsys):
    afile = tmp_path / "results.txt"
    afile.write_text("keep me")
    for argv in (["compare", "--out", str(afile)], ["evaluate", "--policy", "uniform", "--out", str(afile)],
                 ["train", "--agent", "ppo", "--out", str(afile / "sub")]):
        line = _usage_error(capsys, argv)
        assert "--out" in line and "existing file" in line and str(afile) in line, line
    assert afile.read_text() == "keep me"
    # from Python the same check is a ConfigError, before anything is written
    from mmenv.experiments.compare import run_comparison
    from mmenv.experiments.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="existing file"):
        run_comparison(load_config("tiny", overrides={"out": str(afile)}), progress=False)


def test_negative_seeds_are_refused_at_parse_time(capsys):
    line = _usage_error(capsys, ["compare", "--seeds", "0,-3"])
    assert "--seeds" in line and "seeds must be >= 0" in line and "[-3]" in line
    assert "seed must be >= 0" in _usage_error(capsys, ["evaluate", "--policy", "uniform", "--seed", "-1",
                                                        "--out", "unused"])
    from mmenv.experiments.config import ConfigError, parse_seeds

    with pytest.raises(ConfigError, match="seeds must be >= 0"):
        parse_seeds([1, -2])                                    # a config file's seeds too


def test_dataset_without_root_names_data_root(tmp_path, capsys):
    code = main(["compare", "--datasets", "crema-d", "--learners", "baseline", "--policies", "uniform",
                 "--seeds", "1", "--out", str(tmp_path / "c"), "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--data-root crema-d=" in err[0] and "dataset_kwargs.crema-d.root" in err[0], err
    assert not (tmp_path / "c" / "runs").exists()             # refused before any run


@pytest.mark.parametrize("command", ["compare", "train", "evaluate"])
def test_ctrl_c_prints_one_line_and_exits_130(command, tmp_path, capsys, monkeypatch):
    import mmenv.agents
    import mmenv.agents.assembly
    import mmenv.experiments.compare

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mmenv.experiments.compare, "run_comparison", interrupt)
    monkeypatch.setattr(mmenv.agents.assembly, "run_resumable", interrupt)
    monkeypatch.setattr(mmenv.agents, "run_policy", interrupt)
    out = str(tmp_path / "o")
    argv = {"compare": ["compare", "--config", "tiny", "--out", out],
            "train": ["train", "--agent", "reinforce", "--out", out, *TINY],
            "evaluate": ["evaluate", "--policy", "uniform", "--out", out, *TINY]}[command]
    assert main(argv) == 130
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(f"mmenv {command}: interrupted; "), err
    if command != "evaluate":
        assert "re-run" in err[0] and "resume" in err[0]
    if command == "train":
        assert "--resume" in err[0] and "train.ckpt" in err[0]


def test_help_lists_the_registries_including_code_registrations(capsys):
    from mmenv.agents import POLICIES, UniformPolicy

    from mmenv.learners import LEARNERS, BaselineLearner

    LEARNERS.register("help-probe-learner", BaselineLearner)
    POLICIES.register("help-probe-policy", UniformPolicy)
    try:
        with pytest.raises(SystemExit):
            main(["--help"])
        top = capsys.readouterr().out
        with pytest.raises(SystemExit):
            main(["compare", "--help"])
        compare = " ".join(capsys.readouterr().out.split())
    finally:
        LEARNERS.unregister("help-probe-learner")
        POLICIES.unregister("help-probe-policy")
    for name in ("help-probe-learner", "di-mml", "uci-mfeat", "av-digits", "bss-curriculum", "remix",
                 "help-probe-policy", "dus-h"):
        assert name in top and name in compare, name
    assert "learners:" in top and "sample orders:" in top and "policies:" in top


@pytest.mark.subprocess
def test_ctrl_c_in_compare_with_workers_is_one_line_and_resumes(tmp_path):
    """SIGINT to the whole process group, as a terminal's Ctrl-C: workers stay quiet, the
    driver prints one line and exits 130; a re-run finishes only the missing runs."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    out = tmp_path / "int"
    # 16 runs: on a loaded machine the last of 8 could finish before the signal lands (CI saw rc 0)
    cmd = [sys.executable, "-m", "mmenv", "compare", "--config", "tiny", "--seeds", "8", "--workers", "2",
           "--no-plots", "--no-progress", "--no-tensorboard", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    def as_a_terminal_starts_it():
        # A shell starts a command with SIGINT handled and unblocked. The test process may have
        # inherited or set another state (a library loaded by an earlier test), and a child
        # inherits an ignored or blocked SIGINT across exec: the full suite saw Ctrl-C do nothing.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=as_a_terminal_starts_it)
    end = time.monotonic() + 300
    while not (out / "runs").exists() or not list((out / "runs").glob("*.json")):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < end, "no run finished in time"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "interrupted" in lines[0] and "resume" in lines[0], err[-2000:]
    finished = len(list((out / "runs").glob("*.json")))
    assert 1 <= finished < 16
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{16 - finished} run(s) executed, {finished} reused" in again.stdout
