"""TensorBoard logs of ``mmenv compare`` and ``mmenv train``, read back from the event files:
what a compare run logs (proportions, validation accuracy, the step-0 discrepancy, hparams),
and that a re-run or a resumed run never writes a step twice."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from mmenv.cli import main

TINY_DATA = {"n_train": 120, "n_val": 40, "n_test": 120}


def _accumulator(run_dir: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()        # every event file of the folder, in order, with TensorBoard's purges applied
    return acc


def _steps(run_dir: Path) -> dict[str, list[int]]:
    acc = _accumulator(run_dir)
    return {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _assert_no_step_twice(run_dir: Path) -> dict[str, list[int]]:
    steps = _steps(run_dir)
    assert steps, f"no scalars under {run_dir}"
    for tag, seen in steps.items():
        twice = [s for s, n in Counter(seen).items() if n > 1]
        assert not twice, f"{run_dir.name}: {tag} has steps {twice} more than once ({sorted(seen)})"
    return steps


def _compare_cfg(out: Path, **extra):
    from mmenv.experiments.config import config_from_dict

    return config_from_dict({
        "policies": ["uniform", "dus-h"], "learners": ["baseline"], "datasets": ["synthetic"], "seeds": [0],
        "env": {"epochs": 2, "batch_budget": 32}, "dataset_kwargs": {"synthetic": TINY_DATA},
        "learner_kwargs": {"baseline": {"lr": 0.02}},
        "workers": 1, "plots": False, "tensorboard": True, "out": str(out), **extra,
    })


def test_compare_logs_proportions_val_accuracy_initial_discrepancy_and_hparams(tmp_path):
    from mmenv.experiments.compare import run_comparison
    from tensorboard.plugins.hparams import plugin_data_pb2

    summary = run_comparison(_compare_cfg(tmp_path / "out"), progress=False)
    assert summary.status_counts == {"ok": 2}
    for result in summary.results:
        run_dir = tmp_path / "out" / "tb" / "synthetic" / "baseline" / result["policy"] / "seed0"
        steps = _assert_no_step_twice(run_dir)
        for m in ("strong", "weak"):
            assert steps[f"proportion/{m}"] == [1, 2] and steps[f"batch_size/{m}"] == [1, 2]
            assert steps[f"discrepancy_initial/{m}"] == [0]          # the observation the first action saw
        assert steps["val_accuracy/fused"] == [1, 2] and steps["test/fused/accuracy"] == [2]
        acc = _accumulator(run_dir)
        # the logged values are the run's own numbers
        assert [e.value for e in acc.Scalars("discrepancy_initial/weak")] == pytest.approx(
            [result["initial_discrepancy"][1]])
        assert [e.value for e in acc.Scalars("proportion/weak")] == pytest.approx([p[1] for p in result["proportions"]])
        # hparams (TensorBoard's HPARAMS tab): the run's settings, and its metrics as scalars
        content = acc.PluginTagToContent("hparams")
        assert {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"} <= set(content)
        start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
        hp = {k: v.string_value or v.number_value for k, v in start.session_start_info.hparams.items()}
        assert hp["dataset"] == "synthetic" and hp["learner"] == "baseline" and hp["policy"] == result["policy"]
        assert hp["env.epochs"] == 2 and hp["env.batch_budget"] == 32 and hp["learner.lr"] == pytest.approx(0.02)
        experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
        metric_tags = {mi.name.tag for mi in experiment.metric_infos}
        assert {"hparam/test/fused/accuracy", "hparam/reward_sum", "hparam/mean_proportion/weak"} <= metric_tags
        assert [e.value for e in acc.Scalars("hparam/test/fused/accuracy")] == pytest.approx(
            [result["test"]["fused"]["accuracy"]])


def test_compare_rerun_does_not_write_steps_twice(tmp_path):
    from mmenv.experiments.compare import run_comparison

    cfg = _compare_cfg(tmp_path / "out", policies=["uniform"])
    first = run_comparison(cfg, progress=False)
    run_dir = tmp_path / "out" / "tb" / "synthetic" / "baseline" / "uniform" / "seed0"
    before = _assert_no_step_twice(run_dir)
    # a run that did not finish is run again: its result says failed (e.g. killed, or a fixed bug)
    result_file = tmp_path / "out" / "runs" / f"{first.results[0]['key']}.json"
    failed = json.loads(result_file.read_text())
    failed["status"] = "failed"
    result_file.write_text(json.dumps(failed))
    time.sleep(1.1)     # event file names carry the second they were opened
    again = run_comparison(cfg, progress=False)
    assert again.executed == [first.results[0]["key"]]
    assert _assert_no_step_twice(run_dir) == before
    run_comparison(cfg, force=True, progress=False)                   # --force re-runs everything
    assert _assert_no_step_twice(run_dir) == before


def test_train_resume_does_not_write_steps_twice(tmp_path, monkeypatch):
    """Interrupt ``mmenv train --agent reinforce`` in the middle of its second episode, resume it:
    every TensorBoard folder has each step once, and the same steps as an uninterrupted run."""
    from mmenv.agents import ReinforcePolicy

    argv = ["train", "--agent", "reinforce", "--episodes", "3", "--epochs", "3", "--batch-budget", "32",
            "--lr", "1e-2", "--no-progress", "--dataset-kwargs", json.dumps(TINY_DATA)]
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main([*argv, "--out", str(full)]) == 0

    update = ReinforcePolicy.update
    calls = {"n": 0}

    def interrupted_update(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:             # episode 2 (3 steps each), after its first update
            raise KeyboardInterrupt
        return update(self, *args, **kwargs)

    monkeypatch.setattr(ReinforcePolicy, "update", interrupted_update)
    assert main([*argv, "--out", str(cut)]) == 130
    monkeypatch.setattr(ReinforcePolicy, "update", update)
    interrupted = _steps(cut / "tb" / "env")
    assert max(interrupted["reward"]) >= 4       # the interrupted episode had logged steps past the checkpoint
    time.sleep(1.1)
    assert main([*argv, "--out", str(cut), "--resume"]) == 0
    for part in ("env", "reinforce", "episodes"):
        resumed = _assert_no_step_twice(cut / "tb" / part)
        assert resumed == _steps(full / "tb" / part), part
    # and the values: the resumed run equals the uninterrupted one, step by step
    a, b = _accumulator(full / "tb" / "env"), _accumulator(cut / "tb" / "env")
    for tag in ("reward", "proportion/weak", "discrepancy_initial/strong", "train_loss/total"):
        assert [e.value for e in a.Scalars(tag)] == pytest.approx([e.value for e in b.Scalars(tag)], rel=1e-5), tag
    # a second --resume of the finished run rewrites nothing twice either
    time.sleep(1.1)
    assert main([*argv, "--out", str(cut), "--resume"]) == 0
    for part in ("env", "reinforce", "episodes"):
        assert _assert_no_step_twice(cut / "tb" / part) == _steps(full / "tb" / part), part
