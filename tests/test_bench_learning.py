"""The learning claims in ``mmenv bench``: tuned heuristics, agent seeds, per-modality agents, RESULT lines."""

from __future__ import annotations

import csv
import math
import re
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from bench_fixtures import FakeExecutor, fake_accuracy, tiny_preset

CLAIMS_RE = [r"RESULT agent_iqm {}", r"RESULT best_heuristic_iqm (none|{} \((fixed-ratio|dus-h|discrepancy)(-tuned)?\))",
             r"RESULT tuned_constant_iqm {}", r"RESULT agent_minus_best_heuristic {}",
             r"RESULT direction_instances \d+ up / \d+ down( \(\d+ none\))?"]
CI = r"(none|-?\d+\.\d{3} \[-?\d+\.\d{3}, -?\d+\.\d{3}\])"


def _claims_match(lines: list[str]) -> None:
    assert len(lines) >= 5
    for line, pattern in zip(lines[-5:], CLAIMS_RE):
        assert re.fullmatch(pattern.replace("{}", CI), line), line


# ---------------------------------------------------------------------- tuned heuristics
class _SpyRunner:
    """A runner that records every spec a stage reads back."""

    def __init__(self, runner: Any) -> None:
        self.runner, self.read = runner, []
        self.runs_dir = runner.runs_dir

    def run(self, specs: Any, stage: str) -> None:
        self.runner.run(specs, stage)

    def get(self, spec: Any) -> Any:
        self.read.append(spec)
        return self.runner.get(spec)


def test_tuned_heuristics_read_train_instances_on_tuning_seeds_only(tmp_path):
    from mmenv.experiments.bench_config import load_bench_config
    from mmenv.experiments.bench_runner import Runner
    from mmenv.experiments.bench_stages import TUNED_BASELINES, plan_bench, run_tuned
    from mmenv.experiments.tuning import heuristic_grid

    cfg = load_bench_config(tiny_preset(tmp_path))
    plan = plan_bench(cfg)
    executor = FakeExecutor()
    spy = _SpyRunner(Runner(plan.out, executor, progress=False))
    tuned = run_tuned(plan, spy)
    assert [b.label for b in TUNED_BASELINES] == ["tuned-constant", "fixed-ratio-tuned", "dus-h-tuned",
                                                  "val-gain-tuned"]
    train = {i.label() for i in plan.sets[0].train}
    assert spy.read and all(s.seed in cfg.tuning_seeds for s in spy.read)
    assert {(s.dataset_kwargs["seed"], s.learner) for s in spy.read} == \
        {(i.dataset_kwargs["seed"], i.learner) for i in plan.sets[0].train}
    assert len(train) == 2
    # the choice is the argmax of the mean gain over uniform on train x tuning seeds, by hand
    from mmenv.experiments.bench_data import run_spec

    for rule, label in (("fixed", "fixed-ratio-tuned"), ("dus-h", "dus-h-tuned"), ("val-gain", "val-gain-tuned")):
        def gain(c: Any) -> float:
            return float(np.mean([fake_accuracy(run_spec(i, c.policy, c.policy_kwargs, s))
                                  - fake_accuracy(run_spec(i, "uniform", {}, s))
                                  for i in plan.sets[0].train for s in cfg.tuning_seeds]))
        best = max(heuristic_grid()[rule], key=gain)
        assert tuned.choices[plan.sets[0].name][label].best == best
    # no evaluation seed was played in the tuning stage
    assert executor.played and all(re.search(r"seed(\d+)", k) is None or int(re.search(r"seed(\d+)", k).group(1)) in cfg.tuning_seeds
               for k in executor.played)


def test_tuned_heuristics_are_rows_of_the_bench_scored_on_evaluation_seeds(tmp_path):
    from mmenv.experiments.bench import run_bench
    from mmenv.experiments.bench_config import load_bench_config

    cfg = load_bench_config(tiny_preset(tmp_path, plots=False))
    executor = FakeExecutor()
    summary = run_bench(cfg, progress=False, executor=executor)
    data, rep = summary.data, summary.report
    choices = data.tuned_heuristics[data.sets[0].name]
    for label in ("fixed-ratio-tuned", "dus-h-tuned"):
        assert label in data.policies
        for inst in data.sets[0].test:
            assert set(data.acc[(inst.label(), label)]) == set(cfg.eval_seeds)
        # on a test instance it plays its choice (made on train x tuning seeds) with the evaluation seeds
        inst = data.sets[0].test[0]
        from mmenv.experiments.bench_data import run_spec

        c = choices[label].best
        assert data.acc[(inst.label(), label)][0] == pytest.approx(
            fake_accuracy(run_spec(inst, c.policy, c.policy_kwargs, 0)))
    # an evaluation seed of a tuned rule's candidates ran only on test instances, only the chosen one
    test_names = {(i.dataset_kwargs["seed"]) for i in data.sets[0].test}
    chosen = {(c.best.policy, tuple(sorted(c.best.policy_kwargs.items()))) for c in choices.values()}
    from mmenv.experiments.report import load_results

    runs = load_results(tmp_path / "out" / "runs", [p.stem for p in (tmp_path / "out" / "runs").glob("*.json")])
    for r in runs.values():
        kw = r.get("policy_kwargs") or r.get("spec", {}).get("policy_kwargs") or {}
        if "direction" in kw and int(r.get("seed", -1)) in cfg.eval_seeds:
            assert (r["policy"], tuple(sorted(kw.items()))) in chosen
    assert {a["policy"] for a in rep.aggregates} >= {"fixed-ratio", "dus-h", "fixed-ratio-tuned", "dus-h-tuned",
                                                       "tuned-constant"}
    md = (tmp_path / "out" / "results.md").read_text()
    assert "Tuned heuristics" in md and "fixed-ratio-tuned" in md
    assert test_names


# ---------------------------------------------------------------------- agent seeds
@pytest.mark.parametrize("agent, match", [
    ({"algo": "reinforce", "runs": 2, "seed": 1, "seeds": [1, 2]}, "either seed"),
    ({"algo": "reinforce", "runs": 2, "seeds": 3}, "a seed list is a list"),
    ({"algo": "reinforce", "runs": 2, "seeds": [1, 1]}, "duplicate agent seeds"),
    ({"algo": "reinforce", "runs": 2, "seeds": []}, "non-empty list"),
    ({"algo": "reinforce", "runs": 2, "seeds": [-1]}, "non-empty list"),
])
def test_agent_seeds_are_checked_when_the_preset_is_read(tmp_path, agent, match):
    from mmenv.experiments.bench_config import BenchConfigError, load_bench_config

    with pytest.raises(BenchConfigError, match=match):
        load_bench_config(tiny_preset(tmp_path, agents=[agent]))


def test_one_agent_job_per_seed_and_one_for_every_m_with_the_equivariant_policy(tmp_path):
    from mmenv.experiments.bench_config import load_bench_config
    from mmenv.experiments.bench_stages import agent_jobs, plan_bench

    agents = [{"algo": "reinforce", "runs": 2, "seeds": [0, 1, 2], "label": "mlp"},
              {"algo": "reinforce", "runs": 2, "seeds": [0, 1], "observation": "modal", "label": "eq",
               "options": {"policy": "equivariant"}}]
    path = tiny_preset(tmp_path, agents=agents)
    # a third modality on one train and one test instance
    import yaml

    raw = yaml.safe_load((tmp_path / "tiny-set.yaml").read_text())
    raw["train"].append({"name": "tr-m3", "dataset_kwargs": {"seed": 5, "num_modalities": 3}})
    raw["test"].append({"name": "te-m3", "dataset_kwargs": {"seed": 6, "num_modalities": 3}})
    (tmp_path / "tiny-set.yaml").write_text(yaml.safe_dump(raw))
    jobs = agent_jobs(plan_bench(load_bench_config(path)))
    mlp = [j for j in jobs if j.spec.label == "mlp"]
    eq = [j for j in jobs if j.spec.label == "eq"]
    assert sorted((j.seed, j.m) for j in mlp) == [(s, m) for s in (0, 1, 2) for m in (2, 3)]
    assert [(j.seed, j.m, len(j.train), len(j.test)) for j in eq] == [(0, 0, 3, 3), (1, 0, 3, 3)]
    assert len({j.path for j in jobs}) == len(jobs) and len({j.digest for j in jobs}) == len(jobs)
    # adding a seed to the list leaves the other seeds' agents (digests, files) as they were
    agents[1]["seeds"] = [0, 1, 7]
    path = tiny_preset(tmp_path, agents=agents)
    (tmp_path / "tiny-set.yaml").write_text(yaml.safe_dump(raw))
    more = [j for j in agent_jobs(plan_bench(load_bench_config(path))) if j.spec.label == "eq"]
    assert {j.seed: j.digest for j in more if j.seed in (0, 1)} == {j.seed: j.digest for j in eq}


def _seeded_trainer(calls):
    """A stand-in trainer whose agent depends on its seed: a constant share 0.3 + 0.2 * seed for modality 1."""
    from mmenv.agents import make_policy

    def train(algo, train_instances, *, runs, seed, reward, observation, workers, log_dir, curve_every, curve_fn,
              **options):
        calls.append({"seed": seed, "train": train_instances})
        policy = make_policy("schedule", shares=[0.3 + 0.2 * seed], modality=1)
        return SimpleNamespace(policy=policy, observation=observation, algo=algo, runs=runs, curve=[])

    return train


def _dus_env(instance, observation, reward):
    from mmenv import DUSEnv

    return DUSEnv(**instance, reward=reward)


def test_agent_rows_aggregate_over_agent_seeds_and_show_each_seed(tmp_path):
    from mmenv.experiments.bench import run_bench
    from mmenv.experiments.bench_claims import agent_minus_heuristic, row_table
    from mmenv.experiments.bench_config import load_bench_config
    from mmenv.experiments.stats import aggregate_agent_seeds, iqm

    cfg = load_bench_config(tiny_preset(tmp_path, agents=[{"algo": "reinforce", "runs": 2, "seeds": [0, 1],
                                                           "label": "const"}], plots=False))
    calls: list = []
    summary = run_bench(cfg, progress=False, trainer=_seeded_trainer(calls), env_factory=_dus_env,
                        executor=FakeExecutor())
    data, rep = summary.data, summary.report
    assert sorted(c["seed"] for c in calls) == [0, 1]
    assert data.agent_seeds == {"agent:const": [0, 1]}
    # the two seeds' agents play different shares, recorded apart
    inst = data.sets[0].test[0]
    a0, a1 = data.acc[(inst.label(), "agent:const@seed0")], data.acc[(inst.label(), "agent:const@seed1")]
    assert set(a0) == set(a1) == set(cfg.eval_seeds)
    # per-seed IQM and the row's aggregate against a hand computation from the recorded accuracies
    headroom = {}
    for i in data.sets[0].test:
        u, o = data.values(i, "uniform", cfg.eval_seeds), data.values(i, "oracle", cfg.eval_seeds)
        row = next(r for r in rep.headroom if r["instance"] == i.name and r["split"] == "test")
        if row["has_headroom"]:
            headroom[i.label()] = float(o.mean() - u.mean())
    table = {s: {lab: {e: (data.acc[(lab, f"agent:const@seed{s}")][e] - data.acc[(lab, "uniform")][e]) / h
                       for e in cfg.eval_seeds} for lab, h in headroom.items()} for s in (0, 1)}
    got = row_table(data, "agent:const", data.sets[0].test, headroom)

    def flat(t: Any) -> dict:
        return {(a, i, e): v for a, c in t.items() for i, cells in c.items() for e, v in cells.items()}

    assert flat(got) == pytest.approx(flat(table))
    agg = next(a for a in rep.aggregates if a["policy"] == "agent:const")
    if headroom:
        want = aggregate_agent_seeds(table, cfg.bootstrap_resamples)
        assert (agg["iqm"], agg["iqm_lo"], agg["iqm_hi"]) == pytest.approx(want.iqm)
        for r in rep.agent_seeds:
            assert r["iqm"] == pytest.approx(iqm([v for c in table[r["agent_seed"]].values() for v in c.values()]))
        h = {lab: {e: (data.acc[(lab, rep.best_heuristic)][e] - data.acc[(lab, "uniform")][e]) / hh
                   for e in cfg.eval_seeds} for lab, hh in headroom.items()}
        diff = agent_minus_heuristic(table, {0: h}, cfg.bootstrap_resamples)
        mean = np.mean([table[s][lab][e] - h[lab][e] for s in (0, 1) for lab in headroom for e in cfg.eval_seeds])
        assert diff[0] == pytest.approx(mean)
        assert re.search(rf"RESULT agent_minus_best_heuristic {diff[0]:.3f} ", "\n".join(summary.result_lines))
    assert [r["agent_seed"] for r in rep.agent_seeds] == [0, 1]
    # scores.csv and results.csv carry every seed's runs
    with open(tmp_path / "out" / "scores.csv") as f:
        seeds = {r["agent_seed"] for r in csv.DictReader(f) if r["policy"] == "agent:const"}
    assert seeds == {"0", "1"}
    md = (tmp_path / "out" / "results.md").read_text()
    assert "## Agent seeds" in md and "## Per direction of the oracle" in md
    _claims_match(summary.result_lines)


# ---------------------------------------------------------------------- directions
def test_direction_of_a_test_instance_by_hand():
    from mmenv.experiments.bench_claims import instance_direction, mean_share
    from mmenv.experiments.bench_config import bench_config_from_dict
    from mmenv.experiments.bench_data import BenchData
    from mmenv.experiments.instances import Instance
    from mmenv.experiments.oracle import Candidate, OracleResult, constant_candidate

    two_phase = Candidate("p", "two-phase", ((0.2, 0.8), (0.8, 0.2)), (0.25,))
    assert mean_share(two_phase, 0) == pytest.approx(0.25 * 0.2 + 0.75 * 0.8)
    cfg = bench_config_from_dict({"instance_sets": ["synthetic-imbalance"], "eval_seeds": [0, 1, 2]},
                                 check_sets=False)
    inst = Instance(name="x", dataset="synthetic", learner="baseline", split="test", set_name="s")
    data = BenchData(cfg, [])
    ok = {"status": "ok", "test": {"fused": {"accuracy": 0.5}}}
    # the modality ahead at the end of the uniform runs is modality 1 on two of three seeds
    for seed, disc in zip((0, 1, 2), ([0.1, 0.9], [0.7, 0.2], [0.3, 0.4])):
        data.record(inst, "uniform", seed, {**ok, "discrepancy": [[0.0, 0.0], disc]})
    assert data.dominant[(inst.label(), "uniform")] == {0: 1, 1: 0, 2: 1}
    data.oracles[inst.label()] = OracleResult(constant_candidate(2, 1, 0.2))
    assert instance_direction(data, inst) == "up"          # the modality ahead (1) gets less
    data.oracles[inst.label()] = OracleResult(constant_candidate(2, 1, 0.8))
    assert instance_direction(data, inst) == "down"
    data.oracles[inst.label()] = OracleResult(two_phase)    # modality 1 gets 0.4 on average
    assert instance_direction(data, inst) == "up"
    data.oracles[inst.label()] = OracleResult(constant_candidate(2, 0, 0.5))
    assert instance_direction(data, inst) == "none"


# ---------------------------------------------------------------------- end to end, real training
@pytest.mark.subprocess
def test_mmenv_bench_end_to_end_with_two_agent_seeds_and_one_equivariant_agent_for_2_and_3_modalities(
        tmp_path, capsys):
    """Real episodic REINFORCE (the per-modality network on the per-modality observation), two
    agent seeds, one agent for a two- and a three-modality test instance, through the command."""
    import yaml

    from mmenv.cli import main

    agents = [{"algo": "reinforce", "runs": 2, "seeds": [0, 1], "observation": "modal", "workers": 1,
               "label": "eq", "options": {"policy": "equivariant", "episodes_per_update": 1}},
              {"algo": "es", "runs": 4, "seeds": [0], "observation": "modal", "workers": 1, "label": "es",
               "options": {"population": 2}}]
    path = tiny_preset(tmp_path, agents=agents, references=["uniform", "dus-h", "fixed", "val-gain"],
                       curve_every=None,
                       tuning_seeds=[100], eval_seeds=[0, 1])
    raw = yaml.safe_load((tmp_path / "tiny-set.yaml").read_text())
    raw["test"][1] = {"name": "te-m3", "dataset_kwargs": {"seed": 6, "num_modalities": 3}}
    (tmp_path / "tiny-set.yaml").write_text(yaml.safe_dump(raw))
    assert main(["bench", "--preset", str(path), "--no-progress", "--no-plots"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    _claims_match(lines)
    out = tmp_path / "out"
    saved = sorted(p.name for p in (out / "agents").glob("*.pt"))
    assert len(saved) == 3 and all("__many__" in n for n in saved), saved     # eq x 2 seeds, es x 1
    with open(out / "results.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["policy"].startswith("agent:eq@seed")]
    # each agent seed played both test instances (2 and 3 modalities) on both evaluation seeds
    assert {(r["policy"], r["instance"].rsplit("/", 1)[-1], r["seed"]) for r in rows} == {
        (f"agent:eq@seed{a}", name, str(s)) for a in (0, 1) for name in ("te-a", "te-m3") for s in (0, 1)}
    assert all(math.isfinite(float(r["fused_accuracy"])) for r in rows)
    with open(out / "results.csv") as f:
        es_rows = [r for r in csv.DictReader(f) if r["policy"].startswith("agent:es@seed")]
    assert len(es_rows) == 4 and all(math.isfinite(float(r["fused_accuracy"])) for r in es_rows)
    md = (out / "results.md").read_text()
    assert "## Agent seeds" in md and "fixed-ratio-tuned" in md and "dus-h-tuned" in md
    assert "val-gain-tuned" in md and "| val-gain |" in md
    # resumed: nothing trains or runs again, the same RESULT lines
    assert main(["bench", "--preset", str(path), "--no-progress", "--no-plots"]) == 0
    again = capsys.readouterr().out.strip().splitlines()
    assert again[-5:] == lines[-5:]
    assert any(re.match(r"0 run\(s\) executed", x) for x in again)
