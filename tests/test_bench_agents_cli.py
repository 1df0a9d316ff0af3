"""``mmenv bench --agent SPEC``: an agent of one's own (a Python path, a registered name, a saved
file) evaluated on a preset's test instances, reusing the preset's cached runs."""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest
from bench_fixtures import FakeExecutor, fake_run_specs, tiny_preset
from mmenv.experiments.bench_config import BenchConfigError, load_bench_config

MY_AGENTS = '''
"""Agents of one's own, as a user would write them (no mmenv-specific base class needed)."""
import numpy as np

from mmenv.agents import CallablePolicy
from mmenv.agents.saved import TrainedAgent

CALLS = []


def favour_second(m=2):
    """A policy factory: 70 % of the budget to the last modality."""
    p = np.full(m, 0.3 / (m - 1))
    p[-1] = 0.7
    return CallablePolicy(lambda obs, info: p, name="favour-second")


def my_trainer(instances, *, runs, seed, observation="paper", **kw):
    """A trainer of the trainer protocol: 'trains' by recording what it got."""
    CALLS.append({"data_seeds": [i.dataset_kwargs["seed"] for i in instances], "runs": runs, "seed": seed})
    return TrainedAgent(algo="mine", policy=favour_second(), observation=observation, reward=None, seed=seed,
                        runs=runs)


NOT_AN_AGENT = 42
'''


@pytest.fixture
def my_agents(tmp_path, monkeypatch):
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "my_agents_mod.py").write_text(textwrap.dedent(MY_AGENTS))
    monkeypatch.syspath_prepend(str(folder))
    yield "my_agents_mod"
    sys.modules.pop("my_agents_mod", None)


def _executed(out: str) -> int:
    match = re.search(r"^(\d+) run\(s\) executed", out, re.M)
    assert match, out
    return int(match.group(1))


def _csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path) as f:
        return list(csv.DictReader(f))


def test_a_python_path_agent_reuses_the_presets_cached_runs(tmp_path, monkeypatch, capsys, my_agents):
    from mmenv.agents import CallablePolicy, run_policy
    from mmenv.experiments import backends
    from mmenv.experiments.bench import run_bench

    from mmenv import DUSEnv
    from mmenv.cli import main

    preset = tiny_preset(tmp_path, agents=[])
    cfg = load_bench_config(preset)
    executor = FakeExecutor()
    first = run_bench(cfg, progress=False, executor=executor)
    assert first.data.runs_executed == len(executor.played) > 0
    # the command line, on the same folder: every search / reference / scoring run is reused
    fake = fake_run_specs()
    monkeypatch.setattr(backends, "run_specs", fake)
    args = ["bench", "--preset", str(preset), "--no-progress", "--no-plots", "--no-tensorboard"]
    assert main(args + ["--agent", f"{my_agents}:favour_second"]) == 0
    out = capsys.readouterr().out
    assert _executed(out) == 0 and f"{first.data.runs_executed} reused" in out
    # the agent's row is scored like the built-in rows, on every test instance x evaluation seed
    scores = [r for r in _csv_rows(tmp_path / "out" / "scores.csv") if r["policy"] == "agent:favour_second"]
    assert sorted((r["instance"], r["seed"]) for r in scores) == [("te-a", "0"), ("te-a", "1"), ("te-b", "0"),
                                                                  ("te-b", "1")]
    data = run_bench(cfg, progress=False, executor=FakeExecutor(), agents=[f"{my_agents}:favour_second"]).data
    iset = data.sets[0]
    (recorded,) = data.seed_rows("agent:favour_second")  # one agent seed: one recorded row
    for inst in iset.test:
        assert set(data.acc[(inst.label(), recorded)]) == {0, 1}
    # its accuracy is the policy's, played directly on the same task and seed
    inst = iset.test[0]
    rec = run_policy(DUSEnv(**inst.env_kwargs(), reward="dus"),
                     CallablePolicy(lambda obs, info: [0.3, 0.7]), seeds=[1])[0]
    assert data.acc[(inst.label(), recorded)][1] == pytest.approx(rec.test["fused"]["accuracy"])
    # a second call reuses the agent's own evaluation runs too (same module source)
    runs = sorted(p.name for p in (tmp_path / "out" / "runs").glob("*.json"))
    assert main(args + ["--agent", f"{my_agents}:favour_second"]) == 0
    assert _executed(capsys.readouterr().out) == 0
    assert sorted(p.name for p in (tmp_path / "out" / "runs").glob("*.json")) == runs


def test_a_python_path_trainer_trains_on_the_train_instances(tmp_path, monkeypatch, capsys, my_agents):
    from mmenv.experiments import backends

    from mmenv.cli import main

    preset = tiny_preset(tmp_path, agents=[])
    monkeypatch.setattr(backends, "run_specs", fake_run_specs())
    args = ["bench", "--preset", str(preset), "--no-progress", "--no-plots", "--no-tensorboard"]
    assert main(args + ["--agent", f"mine={my_agents}:my_trainer", "--agent-runs", "3"]) == 0
    out = capsys.readouterr().out
    calls = sys.modules[my_agents].CALLS
    assert calls == [{"data_seeds": [1, 2], "runs": 3, "seed": 0}]     # tr-a and tr-b
    assert any("agent:mine" in line for line in out.splitlines())
    summary = json.loads(next((tmp_path / "out" / "agents").glob("*mine*.json")).read_text())
    assert summary["algo"] == f"{my_agents}:my_trainer" and summary["runs"] == 3
    # resumed: the trained agent's results are reused, it is not trained again
    assert main(args + ["--agent", f"mine={my_agents}:my_trainer", "--agent-runs", "3"]) == 0
    assert len(calls) == 1 and _executed(capsys.readouterr().out) == 0
    # an edited module is another agent: trained again (the preset's runs still reused)
    source = Path(sys.modules[my_agents].__file__)
    source.write_text(source.read_text() + "\n# edited\n")
    assert main(args + ["--agent", f"mine={my_agents}:my_trainer", "--agent-runs", "3"]) == 0
    assert len(calls) == 2 and _executed(capsys.readouterr().out) == 0
    assert len(list((tmp_path / "out" / "agents").glob("*mine*.json"))) == 2


@pytest.mark.parametrize("spec, message", [
    ("nope-agent", "unknown agent"),
    ("dus_h", "did you mean 'dus-h'"),
    ("no_such_module_xyz:factory", "cannot import 'no_such_module_xyz'"),
    ("{mod}:missing", "has no attribute 'missing'"),
    ("{mod}:NOT_AN_AGENT", "neither a trainer, a policy factory nor a policy"),
    ("{tmp}/absent.zip", "no saved agent file"),
    ("{tmp}/garbage.zip", "not a saved agent"),
    ("{tmp}/notes.txt", "not a saved agent"),
    ("ppo", "how many training runs"),
    ("{tmp}/pickled.pt", "not a saved agent"),
])
def test_an_agent_that_is_not_one_is_one_line(tmp_path, capsys, my_agents, spec, message):
    from mmenv.cli import main

    (tmp_path / "garbage.zip").write_bytes(b"not a zip")
    (tmp_path / "notes.txt").write_text("hello")
    _write_malicious_pt(tmp_path / "pickled.pt", tmp_path / "pwned")
    preset = tiny_preset(tmp_path, agents=[])
    spec = spec.format(mod=my_agents, tmp=tmp_path)
    assert main(["bench", "--preset", str(preset), "--no-progress", "--agent", spec]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()        # refused before the first run
    assert not (tmp_path / "pwned").exists()      # nothing in a file is unpickled


class _Planted:
    """Unpickling this would create a file (a stand-in for code a file names)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def _write_malicious_pt(path: Path, marker: Path) -> None:
    import torch

    torch.save({"config": {"num_modalities": 2}, "agent": _Planted(marker)}, path)


def test_agent_labels_must_differ_from_the_presets(tmp_path):
    from mmenv.experiments.bench_agents_cli import BenchAgentSpecError, resolve_bench_agents

    cfg = load_bench_config(tiny_preset(tmp_path, agents=[{"algo": "reinforce", "runs": 2}]))
    with pytest.raises(BenchAgentSpecError, match="label 'reinforce' is taken"):
        resolve_bench_agents(["reinforce"], cfg)
    other = resolve_bench_agents(["mine=reinforce", "ppo"], cfg)
    assert [(a.label, a.kind, a.runs) for a in other] == [("mine", "trainer", 2), ("ppo", "trainer", 2)]


# ---------------------------------------------------------------------- the preset's agent fields
def test_agent_algo_is_checked_against_the_trainer_registry(tmp_path):
    from mmenv.agents.across_runs import TRAINERS, TrainedAgent, register_trainer
    from mmenv.agents.heuristics import UniformPolicy

    def trainer(instances, *, runs, seed, observation="paper", **kw):
        return TrainedAgent(algo="my-algo", policy=UniformPolicy(), observation=observation, reward=None, seed=seed,
                            runs=runs)

    with pytest.raises(BenchConfigError, match=r"agents\[0\]\.algo.*unknown across-run algorithm 'my-algo'"):
        load_bench_config(tiny_preset(tmp_path, agents=[{"algo": "my-algo", "runs": 2}]))
    register_trainer("my-algo", trainer)
    try:
        cfg = load_bench_config(tiny_preset(tmp_path, agents=[{"algo": "my-algo", "runs": 2,
                                                                "options": {"anything": 1}}]))
        assert cfg.agents[0].algo == "my-algo" and cfg.agents[0].options == {"anything": 1}
    finally:
        TRAINERS.unregister("my-algo")


@pytest.mark.parametrize("algo", ["ppo", "sac", "reinforce"])
def test_equivariant_policy_option_is_accepted_where_it_exists(tmp_path, algo):
    cfg = load_bench_config(tiny_preset(tmp_path, agents=[{"algo": algo, "runs": 2,
                                                            "options": {"policy": "equivariant"}}]))
    assert cfg.agents[0].options == {"policy": "equivariant"}


def test_policy_option_values_are_checked(tmp_path):
    with pytest.raises(BenchConfigError, match=r"agents\[0\]\.options\.policy.*td3 takes policy mlp"):
        load_bench_config(tiny_preset(tmp_path, agents=[{"algo": "td3", "runs": 2,
                                                          "options": {"policy": "equivariant"}}]))
    with pytest.raises(BenchConfigError, match=r"ppo takes policy mlp or equivariant, got 'cnn'"):
        load_bench_config(tiny_preset(tmp_path, agents=[{"algo": "ppo", "runs": 2, "options": {"policy": "cnn"}}]))


def test_trainers_group_is_a_registry_group():
    from mmenv.agents.across_runs import TRAINERS

    from mmenv.registry import GROUPS

    assert GROUPS["across-run trainer"] == TRAINERS.group == "mmenv.trainers"


# ---------------------------------------------------------------------- plain SB3, real runs
def test_plain_sb3_ppo_on_the_cycling_env_is_benchmarked_from_its_zip(tmp_path, capsys):
    """Train PPO with plain SB3 code on the instance-cycling env, then ``mmenv bench --agent ppo.zip``
    on a tiny preset with real runs; the preset's runs, done before, are all reused."""
    import gymnasium as gym
    from stable_baselines3 import PPO

    import mmenv  # noqa: F401 - registers mmenv/DUSBench-v0
    from mmenv.cli import main

    preset = tiny_preset(tmp_path, agents=[], instance_sets=[{"name": "tiny-set.yaml", "train": 2, "test": 1}],
                         headroom_splits=["test"], references=["uniform", "dus-h"], tuning_seeds=[100],
                         grid={"shares": [0.7], "phase_shares": [0.7], "switches": [0.5]},
                         tuned_constant_shares=[0.7], curve_seeds=[200])
    env = gym.make("mmenv/DUSBench-v0", instances=str(tmp_path / "tiny-set.yaml"), split="train", seed=0)
    model = PPO("MlpPolicy", env, n_steps=20, batch_size=20, n_epochs=2, seed=0, device="cpu")
    model.learn(total_timesteps=200)
    model.save(tmp_path / "ppo-across.zip")
    env.close()

    args = ["bench", "--preset", str(preset), "--no-progress", "--no-plots", "--no-tensorboard"]
    assert main(args) == 0
    first = _executed(capsys.readouterr().out)
    assert first > 0
    assert main(args + ["--agent", str(tmp_path / "ppo-across.zip"), "--agent", "dus-h-copy=dus-h"]) == 0
    out = capsys.readouterr().out
    assert _executed(out) == 0 and f"{first} reused" in out
    scores = _csv_rows(tmp_path / "out" / "scores.csv")
    rows = [r for r in scores if r["policy"] == "agent:ppo-across"]
    assert sorted((r["instance"], r["seed"]) for r in rows) == [("te-a", "0"), ("te-a", "1")]
    assert all(0.0 < float(r["acc"]) <= 1.0 for r in rows)
    # a registered policy played through the agent route scores exactly its reference runs
    acc = {(r["policy"], r["seed"]): float(r["acc"]) for r in scores if r["instance"] == "te-a"}
    for seed in ("0", "1"):
        assert acc[("agent:dus-h-copy", seed)] == acc[("dus-h", seed)]
