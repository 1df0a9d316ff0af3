"""``mmenv bench`` presets and instance sets: one case per hostile input of the reliability
report (each a package error naming the culprit before any run, or documented success),
the output-folder lock, refused agent files, relative paths, progress and failed sweeps."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mmenv.experiments.bench_config import BenchConfigError, bench_config_from_dict, load_bench_config
from mmenv.experiments.config import ConfigError, load_config
from mmenv.experiments.instances import InstanceSetError, instance_set_from_dict, load_instance_set

from mmenv.errors import LockError, MMEnvError
from tests.bench_fixtures import TINY_SET, FakeExecutor, fake_run_specs, tiny_preset


def _set(**changes):
    data = yaml.safe_load(yaml.safe_dump(TINY_SET))
    data.update(changes)
    return data


def _preset(tmp_path, text: str) -> Path:
    tiny_preset(tmp_path)           # writes the instance set the preset names
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


# ---------------------------------------------------------------- valid-looking presets that crashed late
def test_tuned_constant_shares_without_one_over_m_runs_uniform_on_the_train_instances(tmp_path):
    """Documented success: uniform on every train instance x tuning seed is part of the
    tuned constant's search, whatever shares the preset lists (``[0.8]`` crashed after the search)."""
    from mmenv.experiments.bench import run_bench

    cfg = load_bench_config(tiny_preset(tmp_path, tuned_constant_shares=[0.8], headroom_splits=["test"]))
    summary = run_bench(cfg, progress=False, executor=FakeExecutor())
    tc = summary.data.tuned["tiny-synthetic"]
    assert tc.share == 0.8 and set(tc.gains) == {"m0=0.8", "m1=0.8"}
    train = summary.data.sets[0].train
    assert all(set(summary.data.acc[(i.label(), "uniform")]) >= {100, 101} for i in train)


def test_three_modality_train_instances_are_benchmarked(tmp_path):
    """Documented success: a custom set with a three-modality train instance (no share of the
    preset is 1/3) gets its uniform runs, a tuned constant over the shared modality indices
    and one agent per number of modalities."""
    from mmenv.experiments.bench import run_bench
    from mmenv.experiments.bench_stages import agent_jobs, plan_bench

    data = _set()
    data["train"].append({"name": "tr-3", "dataset_kwargs": {"seed": 5, "num_modalities": 3}})
    data["test"].append({"name": "te-3", "dataset_kwargs": {"seed": 6, "num_modalities": 3}})
    (tmp_path / "set3.yaml").write_text(yaml.safe_dump(data))
    cfg = load_bench_config(tiny_preset(tmp_path, instance_sets=["set3.yaml"], headroom_splits=["test"],
                                        agents=[{"algo": "reinforce", "runs": 2}]))
    assert [job.m for job in agent_jobs(plan_bench(cfg))] == [2, 3]
    cfg.agents = []
    summary = run_bench(cfg, progress=False, executor=FakeExecutor())
    assert summary.data.modalities["tiny-synthetic/te-3"] == ("strong", "weak1", "weak2")
    assert summary.data.tuned["tiny-synthetic"].modality in (0, 1)
    assert set(summary.data.acc[("tiny-synthetic/te-3", "tuned-constant")]) == {0, 1}


@pytest.mark.parametrize("field, value, match", [
    ("reward", "foo", r"agents\[0\]\.reward.*val-acc-gain"),
    ("observation", "foo", r"agents\[0\]\.observation.*extended"),
    ("seed", -1, r"agents\[0\]\.seed"),
    ("seed", "abc", r"agents\[0\]\.seed"),
    ("algo", "dqn", r"agents\[0\]\.algo"),
    ("workers", 0, r"agents\[0\]\.workers"),
    ("options", {"lrr": 0.1}, r"agents\[0\]\.options\.lrr.*did you mean 'lr'"),
    ("options", {"lr": "fast"}, r"agents\[0\]\.options\.lr.*float"),
    ("rewrd", "dus", r"agents\[0\].*did you mean 'reward'"),
])
def test_every_agent_field_is_checked_when_the_preset_is_read(tmp_path, field, value, match):
    agent = {"algo": "reinforce", "runs": 2, field: value}
    with pytest.raises(BenchConfigError, match=match):
        load_bench_config(tiny_preset(tmp_path, agents=[agent]))


# ---------------------------------------------------------------- instance sets through the registries
def test_instance_set_learner_kwargs_are_typed_and_checked():
    data = _set()
    data["defaults"]["learner_kwargs"] = {"lr": 1e-3}
    assert instance_set_from_dict(data).train[0].learner_kwargs["lr"] == 1e-3
    data["defaults"]["learner_kwargs"] = {"lrr": 1e-3}
    with pytest.raises(InstanceSetError, match=r"tr-a.*'lrr'.*did you mean 'lr'"):
        instance_set_from_dict(data)
    data["defaults"]["learner_kwargs"] = {"lr": "fast"}
    with pytest.raises(InstanceSetError, match=r"tr-a.*lr"):
        instance_set_from_dict(data)
    data["defaults"]["learner_kwargs"] = {}
    data["defaults"]["dataset_kwargs"]["n_trian"] = 5
    with pytest.raises(InstanceSetError, match=r"'n_trian'.*did you mean 'n_train'"):
        instance_set_from_dict(data)


def test_instance_set_yaml_reads_1e_3_as_a_float(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(_set()).replace("learner: baseline", "learner: baseline\n  learner_kwargs: "
                                                                        "{lr: 1e-3}", 1))
    assert load_instance_set(path).train[0].learner_kwargs == {"lr": 1e-3}


@pytest.mark.parametrize("env, match", [({"epochs": True}, "env.epochs"), ({"epochs": 0}, "env.epochs"),
                                        ({"batch_budget": 2.5}, "env.batch_budget"),
                                        ({"step_every": "often"}, "env.step_every"),
                                        ({"reward": "dus"}, "not an instance setting")])
def test_instance_env_settings_follow_the_env_rules(env, match):
    data = _set()
    data["train"][0]["env"] = env
    with pytest.raises(InstanceSetError, match=match):
        instance_set_from_dict(data)


def test_train_test_disjointness_compares_normalised_values():
    data = _set()
    data["test"][0] = {"name": "te-a", "dataset_kwargs": {"seed": 1}, "learner": "Baseline"}   # = tr-a
    with pytest.raises(InstanceSetError, match="same task"):
        instance_set_from_dict(data)
    data["train"][0]["learner_kwargs"] = {"lr": 1.0}
    data["test"][0]["learner_kwargs"] = {"lr": 1}                                            # 1 == 1.0
    with pytest.raises(InstanceSetError, match="same task"):
        instance_set_from_dict(data)
    data["test"][0]["dataset_kwargs"] = {"seed": 9}
    assert instance_set_from_dict(data).test[0].learner == "baseline"     # the registered spelling


# ---------------------------------------------------------------- malformed files and values
@pytest.mark.parametrize("blob", [bytes(range(256)), b"\xff\xfe\x00\xd8garbage", b"\x00\x01name: x",
                                  b"a: [1, 2\n", b"\x80\x81\x82"])
def test_random_bytes_as_a_preset_instance_set_or_config_are_one_package_error(tmp_path, blob):
    path = tmp_path / "junk.yaml"
    path.write_bytes(blob)
    with pytest.raises(BenchConfigError, match="junk.yaml"):
        load_bench_config(path)
    with pytest.raises(InstanceSetError, match="junk.yaml"):
        load_instance_set(path)
    with pytest.raises(ConfigError, match="junk.yaml"):
        load_config(path)


@pytest.mark.parametrize("text, match", [
    ("instance_sets: [{name: tiny-set.yaml, train: []}]", r"instance_sets\[0\]\.train"),
    ("instance_sets: [{name: tiny-set.yaml, train: 1.5}]", r"instance_sets\[0\]\.train"),
    ("instance_sets: [{name: tiny-set.yaml, train: [nope]}]", r"instance_sets\[0\].*nope"),
    ("instance_sets: [tiny-set.yaml]\nagents: [{seed: abc}]", r"agents\[0\]"),
    ("instance_sets: [tiny-set.yaml]\nagents: [{algo: reinforce, runs: 2, seed: abc}]", r"agents\[0\]\.seed"),
    ("instance_sets: [tiny-set.yaml]\nout: ''", "'out'"),
    ("instance_sets: [tiny-set.yaml]\neval_seeds: 5", r"'eval_seeds'.*write \[5\]"),
    ("instance_sets: [tiny-set.yaml]\nreference_kwargs: {reinforce: {lr: 0.1}}\nreferences: [uniform, dus-h]",
     r"reference_kwargs\.reinforce.*not in references"),
    ("instance_sets: [tiny-set.yaml]\nreference_kwargs: {reinforce: {lrr: 0.1}}", r"reference_kwargs\.reinforce.*lrr"),
    ("instance_sets: [tiny-set.yaml]\nworkers: 2\nworkers: 3", "duplicate key 'workers'"),
    ("instance_sets: [tiny-set.yaml]\ngrid: {shares: [0.5], phase_shares: [0.5], switches: [0.5]}", "'grid'"),
    ("instance_sets: [tiny-set.yaml, tiny-set.yaml]", "listed twice"),
    ("instance_sets: [tiny-set.yaml]\nbootstrap_resamples: 1.5", "'bootstrap_resamples'"),
    ("instance_sets: [missing.yaml]", "missing.yaml"),
])
def test_malformed_presets_are_one_package_error_naming_the_key(tmp_path, text, match):
    path = _preset(tmp_path, text)
    with pytest.raises(BenchConfigError, match=match):
        from mmenv.experiments.bench_stages import plan_bench

        plan_bench(load_bench_config(path))     # the grid rule needs the modalities: checked at plan


def test_out_naming_a_file_is_refused_when_the_preset_is_read(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(BenchConfigError, match="'out'.*existing file"):
        load_bench_config(_preset(tmp_path, f"instance_sets: [tiny-set.yaml]\nout: {tmp_path / 'afile'}"))


def test_an_alias_bomb_is_refused_before_it_is_expanded(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
              f"*a{i - 1}, *a{i - 1}]" for i in range(1, 9)]
    text = "\n".join(lines) + "\n"
    assert len(text) < 1200       # 10**9 values once expanded
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    for load, error in ((load_bench_config, BenchConfigError), (load_config, ConfigError),
                        (load_instance_set, InstanceSetError)):
        with pytest.raises(error, match="aliases"):
            load(path)


def test_yaml_1_2_numbers_and_merge_keys():
    from mmenv.yamlio import parse_yaml

    assert parse_yaml("a: 1e-3\nb: 012\nc: 0x1F\nd: 1:20\ne: 1_000\nf: .inf\ng: 5E+2") == {
        "a": 1e-3, "b": 12, "c": 31, "d": "1:20", "e": "1_000", "f": float("inf"), "g": 500.0}
    assert parse_yaml("base: &b {x: 1, y: 2}\nuse: {<<: *b, y: 3}")["use"] == {"x": 1, "y": 3}


def test_instance_set_paths_resolve_relative_to_the_preset(tmp_path, monkeypatch):
    path = tiny_preset(tmp_path / "deep" / "folder")
    monkeypatch.chdir(tmp_path)          # not the preset's folder
    cfg = load_bench_config(path)
    from mmenv.experiments.bench_stages import plan_bench

    assert plan_bench(cfg).sets[0].name == "tiny-synthetic"


# ---------------------------------------------------------------- the output folder
_HOLD = """
import sys, time
from mmenv.locks import FolderLock
lock = FolderLock(sys.argv[1], "mmenv bench").acquire()
print("locked", flush=True)
time.sleep(60)
"""


@pytest.mark.subprocess
def test_a_second_bench_on_one_folder_refuses_with_the_holders_pid(tmp_path):
    from mmenv.experiments.bench import run_bench

    cfg = load_bench_config(tiny_preset(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, cfg.out], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        executor = FakeExecutor()
        with pytest.raises(LockError, match=rf"mmenv bench.*pid {proc.pid}"):
            run_bench(cfg, progress=False, executor=executor)
        assert executor.played == []         # refused before any run
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_a_compare_and_a_bench_share_the_lock(tmp_path):
    from mmenv.experiments.bench import run_bench

    from mmenv.locks import FolderLock

    cfg = load_bench_config(tiny_preset(tmp_path))
    with FolderLock(cfg.out, "mmenv compare"):
        with pytest.raises(LockError, match=f"pid {os.getpid()}"):
            run_bench(cfg, progress=False, executor=FakeExecutor())


def test_a_planted_agent_file_is_an_error_on_resume_not_a_retrain(tmp_path):
    from mmenv.experiments.bench import run_bench
    from mmenv.experiments.bench_stages import BenchAgentError

    from tests.test_bench import _dus_env, _stand_in_trainer

    cfg = load_bench_config(tiny_preset(tmp_path, agents=[{"algo": "reinforce", "runs": 2, "label": "const"}]))
    calls: list = []

    def loader(path):
        from mmenv.agents.across_runs import TrainedAgent

        return TrainedAgent.load(path)

    run_bench(cfg, progress=False, executor=FakeExecutor(), trainer=_stand_in_trainer(calls), env_factory=_dus_env,
              agent_loader=loader)
    assert len(calls) == 1
    summary = next((Path(cfg.out) / "agents").glob("*.json"))
    planted = summary.with_suffix(".pt")
    planted.write_bytes(b"PK\x03\x04 not an agent")
    for run in (Path(cfg.out) / "runs").glob("*agent-const*"):
        run.unlink()                       # the evaluation must be redone: the agent is loaded
    with pytest.raises(BenchAgentError, match=rf"{planted.name}.*refused.*--force"):
        run_bench(cfg, progress=False, executor=FakeExecutor(), trainer=_stand_in_trainer(calls),
                  env_factory=_dus_env, agent_loader=loader)
    assert len(calls) == 1                 # not trained over
    summary.write_text("{not json")
    with pytest.raises(BenchAgentError, match=summary.name):
        run_bench(cfg, progress=False, executor=FakeExecutor(), trainer=_stand_in_trainer(calls),
                  env_factory=_dus_env, agent_loader=loader)


# ---------------------------------------------------------------- progress and failed sweeps
def test_every_phase_shows_a_progress_bar_on_stderr(tmp_path, capsys):
    from mmenv.experiments.bench import run_bench

    from tests.test_bench import _dus_env, _stand_in_trainer

    cfg = load_bench_config(tiny_preset(tmp_path, agents=[{"algo": "reinforce", "runs": 3, "label": "const"}]))
    cfg.plots = False
    run_bench(cfg, progress=True, executor=FakeExecutor(), trainer=_stand_in_trainer([]), env_factory=_dus_env)
    err = capsys.readouterr().err
    for phase in ("bench plan", "bench search", "bench tuning", "bench references", "bench scoring",
                  "bench train tiny-synthetic/const-m2", "bench evaluate tiny-synthetic/const-m2", "bench report"):
        assert phase in err, phase
    assert "run/s" in err and "3/3" in err and "4/4" in err     # rates; 3 training runs; 2 x 2 evaluation runs


def test_training_progress_counts_every_run_and_keeps_the_agent_and_its_curve(tmp_path):
    """The curve_fn seam counts REINFORCE's training runs exactly, and the agent trained with
    the counter is the agent trained without it (same weights, same curve)."""
    import torch
    from mmenv.agents.across_runs import train_across_runs
    from mmenv.experiments.bench_progress import Bar, TrainingProgress
    from mmenv.experiments.instances import instance_set_from_dict

    iset = instance_set_from_dict(TINY_SET)
    train = [i.env_kwargs() for i in iset.train]
    scored: list = []

    def score(policy):
        scored.append(1)
        return float(len(scored))

    plain = train_across_runs("reinforce", train, runs=5, seed=3, curve_every=2, curve_fn=score)
    scored.clear()
    bar = Bar(None)
    hook = TrainingProgress(bar, 5, 2, 2, score)
    counted = train_across_runs("reinforce", train, runs=5, seed=3, curve_every=1, curve_fn=hook)
    assert [r for r, _ in counted.curve] == [min(2 * k, 5) for k in range(hook.calls)]   # the counter's estimate
    assert bar.n == 5
    assert hook.curve(counted.curve) == plain.curve
    for a, b in zip(plain.policy.net.state_dict().values(), counted.policy.net.state_dict().values()):
        assert torch.equal(a, b)


def test_a_bench_with_crashed_runs_exits_1_with_a_one_line_summary(tmp_path, capsys, monkeypatch):
    import mmenv.experiments.backends as backends

    from mmenv.cli import main

    monkeypatch.setattr(backends, "run_specs", fake_run_specs(fail=["dus-h"]))
    path = tiny_preset(tmp_path)
    assert main(["bench", "--preset", str(path), "--no-progress", "--no-plots", "--executor", "single"]) == 1
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines()[-1].startswith("RESULT direction_instances")
    failed = [line for line in captured.err.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "4 run(s) crashed" in failed[0] and str(Path(cfg_out(path)) / "runs") in failed[0]


def cfg_out(path: Path) -> str:
    return load_bench_config(path).out


def test_a_compare_with_crashed_runs_exits_1_with_a_one_line_summary(tmp_path, capsys, monkeypatch):
    import mmenv.experiments.backends as backends

    from mmenv.cli import main

    monkeypatch.setattr(backends, "run_specs", fake_run_specs(fail=["dus-h"]))
    out = tmp_path / "c"
    assert main(["compare", "--config", "tiny", "--policies", "uniform,dus-h", "--seeds", "2", "--out", str(out),
                 "--no-progress", "--no-plots", "--no-tensorboard"]) == 1
    failed = [line for line in capsys.readouterr().err.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "crashed" in failed[0] and str(out / "runs") in failed[0]


def test_result_lines_say_none_for_empty_categories(tmp_path):
    from mmenv.experiments.bench import run_bench

    cfg = load_bench_config(tiny_preset(tmp_path, references=["uniform", "dus-h"]))
    cfg.plots = False
    lines = run_bench(cfg, progress=False, executor=FakeExecutor()).result_lines
    assert "RESULT agent_iqm none" in lines and "RESULT paper_online_iqm none" in lines
    assert not any("nan" in line for line in lines)


def test_package_errors_only(tmp_path):
    """Every refusal above derives from MMEnvError (the CLI prints it as one line)."""
    for cls in (BenchConfigError, InstanceSetError, ConfigError):
        assert issubclass(cls, MMEnvError)
    with pytest.raises(MMEnvError):
        bench_config_from_dict({"instance_sets": []})


_NO_GUARD = """
import sys
from mmenv.experiments.bench import run_bench
from mmenv.experiments.bench_config import load_bench_config
cfg = load_bench_config(sys.argv[1], {"workers": 2, "plots": False})
cfg.agents = []
run_bench(cfg, progress=False)
"""


@pytest.mark.subprocess
def test_a_script_without_the_main_guard_gets_a_clear_error(tmp_path):
    """Spawned workers import the script: without ``if __name__ == "__main__":`` every run's
    worker dies, which is one error naming the guard, not a sweep of crashed runs."""
    script = tmp_path / "bench_script.py"
    script.write_text(_NO_GUARD)
    proc = subprocess.run([sys.executable, str(script), str(tiny_preset(tmp_path / "p"))], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode != 0
    assert "PoolStartError" in proc.stderr and '__name__ == "__main__"' in proc.stderr
