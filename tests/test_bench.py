"""The benchmark: instance sets, oracle search, statistics, seeds, and ``mmenv bench`` end to end."""

from __future__ import annotations

import math
import re
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from mmenv.experiments.bench_config import (
    BenchConfigError,
    bench_config_from_dict,
    list_bench_presets,
    load_bench_config,
)
from mmenv.experiments.instances import InstanceSetError, instance_set_from_dict, list_instance_sets, load_instance_set
from mmenv.experiments.oracle import (
    SeedOverlapError,
    candidate_grid,
    check_disjoint_seeds,
    constant_candidate,
    search_oracle,
    tuned_constant,
)
from mmenv.experiments.stats import (
    iqm,
    normalised_scores,
    paired_ci,
    rankdata,
    spearman,
    stratified_bootstrap_ci,
    student_t_cdf,
    t_quantile,
)

ENV_KEYS = {"dataset", "dataset_kwargs", "learner", "learner_kwargs", "epochs", "batch_budget", "step_every"}


# ---------------------------------------------------------------------- instance sets
@pytest.mark.parametrize("name", list_instance_sets())
def test_shipped_instance_sets_parse_and_are_disjoint(name):
    iset = load_instance_set(name)
    assert iset.train and iset.test
    train_tasks = {i.task_key() for i in iset.train}
    test_tasks = {i.task_key() for i in iset.test}
    assert not train_tasks & test_tasks
    assert len(train_tasks) == len(iset.train) and len(test_tasks) == len(iset.test)
    names = [i.name for i in iset.instances]
    assert len(set(names)) == len(names)
    for inst in iset.instances:
        kw = inst.env_kwargs()
        assert set(kw) == ENV_KEYS
        kw["dataset_kwargs"]["mutated"] = 1      # a fresh copy every call
        assert "mutated" not in inst.env_kwargs()["dataset_kwargs"]


def test_shipped_sets_include_the_required_families():
    sets = list_instance_sets()
    assert {"synthetic-imbalance", "uci-views"} <= set(sets)
    syn = load_instance_set("synthetic-imbalance")
    learners = {i.learner for i in syn.instances}
    assert {"baseline", "ogm-ge", "mla", "pmr"} <= learners
    positions = {i.dataset_kwargs.get("strong_position", 0) for i in syn.instances}
    assert {0, 1} <= positions
    assert {i.num_modalities() for i in syn.train} == {2, 3}
    # test instances are other tasks: each differs from every train instance in the data or learner
    for t in syn.test:
        assert all(t.dataset_kwargs != tr.dataset_kwargs or t.learner != tr.learner
                   or t.learner_kwargs != tr.learner_kwargs for tr in syn.train)
    uci = load_instance_set("uci-views")
    assert len({tuple(i.dataset_kwargs["views"]) for i in uci.instances}) >= 4


def _set(train, test, defaults=None):
    return {"name": "t", "defaults": defaults or {"dataset": "synthetic", "learner": "baseline"},
            "train": train, "test": test}


def test_instance_set_defaults_merge_and_select():
    iset = instance_set_from_dict(_set(
        [{"name": "a", "dataset_kwargs": {"seed": 1}}, {"name": "b", "dataset_kwargs": {"seed": 2}, "learner": "mla"}],
        [{"name": "c", "dataset_kwargs": {"seed": 3}, "env": {"epochs": 2}}],
        {"dataset": "synthetic", "learner": "baseline", "dataset_kwargs": {"n_train": 100},
         "env": {"epochs": 3, "batch_budget": 16}}))
    a, b = iset.train
    assert a.dataset_kwargs == {"n_train": 100, "seed": 1} and a.epochs == 3 and a.batch_budget == 16
    assert b.learner == "mla" and a.step_every == "epoch"
    assert iset.test[0].epochs == 2
    sub = iset.select(train=["b"], test=1)
    assert [i.name for i in sub.train] == ["b"] and [i.name for i in sub.test] == ["c"]
    with pytest.raises(InstanceSetError, match="test instance"):
        iset.select(train=["c"])
    with pytest.raises(InstanceSetError, match="did you mean 'a'"):
        iset.get("aa")


def test_a_test_task_equal_to_a_train_task_is_refused_even_through_defaults():
    # seed 0 is make_synthetic's default: {} and {"seed": 0} are one task
    with pytest.raises(InstanceSetError, match="same task"):
        instance_set_from_dict(_set([{"name": "a"}], [{"name": "b", "dataset_kwargs": {"seed": 0}}]))
    # another data seed is another task
    instance_set_from_dict(_set([{"name": "a"}], [{"name": "b", "dataset_kwargs": {"seed": 1}}]))


@pytest.mark.parametrize("raw, match", [
    (_set([{"name": "a", "lerner": "mla"}], [{"name": "b"}]), "did you mean 'learner'"),
    (_set([{"name": "a", "dataset": "synthetik"}], [{"name": "b", "dataset_kwargs": {"seed": 1}}]),
     "did you mean 'synthetic'"),
    (_set([{"name": "a", "env": {"reward": "dus"}}], [{"name": "b"}]), "not an instance setting"),
    (_set([{"name": "a", "env": {"epochs": 0}}], [{"name": "b"}]), "epochs"),
    (_set([{"name": "a"}], []), "'test' must be a non-empty list"),
    (_set([{"name": "a"}], [{"name": "a", "dataset_kwargs": {"seed": 1}}]), "unique"),
    (_set([{"dataset_kwargs": {}}], [{"name": "b"}]), "needs a non-empty 'name'"),
])
def test_malformed_instance_sets_name_the_problem(raw, match):
    with pytest.raises(InstanceSetError, match=match):
        instance_set_from_dict(raw)


def test_unknown_instance_set_name_lists_the_shipped_ones():
    with pytest.raises(InstanceSetError, match="did you mean 'uci-views'"):
        load_instance_set("uci-view")


# ---------------------------------------------------------------------- oracle search
def test_candidate_grid_has_no_duplicates_and_starts_with_uniform():
    grid = candidate_grid(2, shares=(0.2, 0.8), phase_shares=(0.2, 0.8), switches=(0.5,))
    assert grid[0].label == "uniform" and grid[0].policy == "uniform"
    # m0=0.2 and m1=0.8 are one vector: listed once
    assert len({c.vector_key for c in grid}) == len(grid) == 1 + 2 + 2
    three = candidate_grid(3, shares=(0.5,), phase_shares=(0.2, 0.5), switches=(0.5,))
    assert len(three) == 1 + 3 + 3 * 2
    with_three_phase = candidate_grid(2, shares=(), phase_shares=(0.2, 0.8), switches=(0.5,),
                                      three_phase_switches=(0.3, 0.6))
    assert sum(c.kind == "three-phase" for c in with_three_phase) == 2   # 0.2>0.8>0.2, 0.8>0.2>0.8


def test_oracle_search_finds_the_known_optimum_of_a_deterministic_objective():
    grid = candidate_grid(2)
    seen = []

    def objective(c, seed):
        seen.append(seed)
        # best: modality 1 gets 0.8 first and 0.5 afterwards (two equal optima: earliest switch wins)
        first, last = c.phases[0][1], c.phases[-1][1]
        return -abs(first - 0.8) - abs(last - 0.5) - 0.1 * (len(c.phases) == 1)

    res = search_oracle(grid, objective, tuning_seeds=[100, 101])
    assert res.best.phases == ((0.2, 0.8), (0.5, 0.5)) and res.best.switch == (round(1 / 3, 6),)
    assert res.tuning_mean[res.best.label] == pytest.approx(0.0)
    assert set(seen) == {100, 101}
    # a candidate failing on one seed is never chosen
    res = search_oracle(grid, lambda c, s: float("nan") if c is grid[5] else (1.0 if c is grid[5] else 0.0), [1])
    assert res.best is grid[0]


def test_tuned_constant_maximises_the_mean_gain_over_the_train_set():
    targets = {"a": 0.3, "b": 0.5}         # each instance's best share for modality 0

    def gain(inst, c, seed):
        return -(c.phases[0][0] - targets[inst]) ** 2 + (targets[inst] - 0.5) ** 2 * 0

    tc = tuned_constant(["a", "b"], {"a": 2, "b": 2}, gain, [100], shares=(0.2, 0.3, 0.4, 0.5, 0.6))
    assert (tc.modality, tc.share) == (0, 0.4) or (tc.modality, round(1 - tc.share, 6)) == (1, 0.4)
    assert tc.candidate(2).phases == ((0.4, 0.6),)
    assert tc.candidate(3).phases[0][tc.modality] == pytest.approx(tc.share)


def test_constant_candidate_at_one_over_m_is_uniform():
    assert constant_candidate(2, 1, 0.5).label == "uniform"
    assert constant_candidate(3, 2, 1 / 3).policy == "uniform"


# ---------------------------------------------------------------------- statistics
@pytest.mark.parametrize("df, expected", [(1, 12.706205), (2, 4.302653), (3, 3.182446), (4, 2.776445),
                                          (9, 2.262157), (30, 2.042272)])
def test_t_quantile_matches_the_table(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-5)
    assert t_quantile(0.025, df) == pytest.approx(-expected, abs=1e-5)
    assert student_t_cdf(expected, df) == pytest.approx(0.975, abs=1e-7)


def test_paired_ci_by_hand():
    mean, lo, hi = paired_ci([0.81, 0.82, 0.83, 0.84], [0.80, 0.80, 0.80, 0.80])
    # d = .01 .02 .03 .04: mean .025, sd .0129099, se .00645497, t(3) 3.182446
    assert mean == pytest.approx(0.025)
    assert lo == pytest.approx(0.025 - 3.182446 * 0.00645497, abs=1e-6)
    assert hi == pytest.approx(0.025 + 3.182446 * 0.00645497, abs=1e-6)
    m1, lo1, hi1 = paired_ci([1.0], [0.0])
    assert m1 == 1.0 and math.isnan(lo1) and math.isnan(hi1)


def test_iqm_by_hand():
    assert iqm([1, 2, 3, 4, 5, 6, 7, 8]) == pytest.approx(4.5)            # drop 2 each end: mean(3..6)
    assert iqm([10, 0, 1, 2, 3, 4, 5, 6, 7, -50]) == pytest.approx(np.mean([1, 2, 3, 4, 5, 6]))
    assert iqm([3.0]) == 3.0


def test_stratified_bootstrap_by_hand():
    # strata [0,0,0] and [1,1,1]: every stratified resample has mean exactly 0.5
    point, lo, hi = stratified_bootstrap_ci([[0, 0, 0], [1, 1, 1]], np.mean, n_resamples=500)
    assert (point, lo, hi) == (0.5, 0.5, 0.5)
    # one stratum [0, 1]: resampled means 0, .5, 1 with probabilities 1/4, 1/2, 1/4
    point, lo, hi = stratified_bootstrap_ci([[0.0, 1.0]], np.mean, n_resamples=4000, seed=1)
    assert point == 0.5 and lo == 0.0 and hi == 1.0
    # same seed, same interval
    assert stratified_bootstrap_ci([[0.1, 0.5, 0.9], [0.2, 0.4]]) == stratified_bootstrap_ci([[0.1, 0.5, 0.9],
                                                                                              [0.2, 0.4]])


def test_bootstrap_and_iqm_agree_with_scipy_where_installed():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x = rng.normal(size=37)
    assert iqm(x) == pytest.approx(stats.trim_mean(x, 0.25))
    strata = [rng.normal(loc=i, size=5) for i in range(4)]
    mine = stratified_bootstrap_ci(strata, np.mean, n_resamples=4000)
    ref = stats.bootstrap(tuple(strata), lambda *s, axis=-1: np.mean(np.concatenate(s, axis=axis), axis=axis),
                          n_resamples=4000, method="percentile", vectorized=True, random_state=1)
    assert mine[1] == pytest.approx(ref.confidence_interval.low, abs=0.08)
    assert mine[2] == pytest.approx(ref.confidence_interval.high, abs=0.08)
    assert spearman(x[:10], x[10:20]) == pytest.approx(stats.spearmanr(x[:10], x[10:20]).statistic)


def test_normalised_scores_by_hand():
    s = normalised_scores([0.82, 0.84, 0.80], [0.80, 0.80, 0.81], [0.84, 0.85, 0.83])
    headroom = np.mean([0.84, 0.85, 0.83]) - np.mean([0.80, 0.80, 0.81])
    np.testing.assert_allclose(s, [0.02 / headroom, 0.04 / headroom, -0.01 / headroom])
    with pytest.raises(ValueError, match="not above uniform"):
        normalised_scores([0.8], [0.8], [0.79])


def test_spearman_and_ranks_by_hand():
    np.testing.assert_allclose(rankdata([10, 20, 20, 5]), [2, 3.5, 3.5, 1])
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


# ---------------------------------------------------------------------- seeds
def test_tuning_and_evaluation_seeds_must_not_overlap():
    with pytest.raises(SeedOverlapError, match=r"share \[2\]"):
        check_disjoint_seeds([100, 2], [0, 1, 2])
    with pytest.raises(BenchConfigError, match="share"):
        bench_config_from_dict({"instance_sets": ["uci-views"], "tuning_seeds": [0, 1], "eval_seeds": [1, 2]})
    with pytest.raises(BenchConfigError, match="curve seeds"):
        bench_config_from_dict({"instance_sets": ["uci-views"], "curve_seeds": [0]})
    for name in list_bench_presets():
        cfg = load_bench_config(name)
        assert not set(cfg.tuning_seeds) & set(cfg.eval_seeds)
        assert not set(cfg.curve_seeds) & (set(cfg.eval_seeds) | set(cfg.tuning_seeds))


def test_bench_preset_errors_name_the_key():
    with pytest.raises(BenchConfigError, match="did you mean 'eval_seeds'"):
        bench_config_from_dict({"instance_sets": ["uci-views"], "evals_seeds": [0]})
    with pytest.raises(BenchConfigError, match="references"):
        bench_config_from_dict({"instance_sets": ["uci-views"], "references": ["dus-h"]})
    with pytest.raises(BenchConfigError, match="runs"):
        bench_config_from_dict({"instance_sets": ["uci-views"], "agents": [{"algo": "reinforce"}]})


# ---------------------------------------------------------------------- end to end
TINY_SET = {
    "name": "tiny-synthetic",
    "defaults": {"dataset": "synthetic", "learner": "baseline",
                 "dataset_kwargs": {"n_train": 96, "n_val": 32, "n_test": 64, "dims": 8},
                 "env": {"epochs": 2, "batch_budget": 16}},
    "train": [{"name": "tr-a", "dataset_kwargs": {"seed": 1}},
              {"name": "tr-b", "dataset_kwargs": {"seed": 2, "strong_position": 1}}],
    "test": [{"name": "te-a", "dataset_kwargs": {"seed": 3}},
             {"name": "te-b", "dataset_kwargs": {"seed": 4, "strong_position": 1}, "learner": "mla"}],
}


def _tiny_preset(tmp_path, agents=()):
    set_path = tmp_path / "tiny-set.yaml"
    set_path.write_text(yaml.safe_dump(TINY_SET))
    preset = {"name": "tiny", "instance_sets": [str(set_path)], "tuning_seeds": [100, 101], "eval_seeds": [0, 1],
              "curve_seeds": [200], "grid": {"shares": [0.3, 0.7], "phase_shares": [0.3, 0.7], "switches": [0.5]},
              "tuned_constant_shares": [0.3, 0.5, 0.7], "headroom_splits": ["train", "test"],
              "agents": list(agents), "curve_every": 2, "workers": 1, "out": str(tmp_path / "out"),
              "bootstrap_resamples": 200}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(preset))
    return path


def _stand_in_trainer(calls):
    """A stand-in for train_across_runs: a constant share of 0.6 for modality 1, with a curve."""
    from mmenv.agents import make_policy

    def train(algo, train_instances, *, runs, seed, reward, observation, workers, log_dir, curve_every, curve_fn,
              **options):
        calls.append({"algo": algo, "train": train_instances, "runs": runs, "curve_every": curve_every})
        policy = make_policy("schedule", shares=[0.6], modality=1)
        curve = [(0, curve_fn(policy)), (runs, curve_fn(policy))] if curve_fn else []
        return SimpleNamespace(policy=policy, observation=observation, algo=algo, runs=runs, curve=curve)

    return train


def _dus_env(instance, observation, reward):
    from mmenv import DUSEnv

    assert observation == "paper"
    return DUSEnv(**instance, reward=reward)


def test_run_bench_end_to_end_with_a_stand_in_agent(tmp_path):
    from mmenv.agents import make_policy, run_policy
    from mmenv.experiments.bench import run_bench

    from mmenv import DUSEnv

    cfg = load_bench_config(_tiny_preset(tmp_path, agents=[{"algo": "reinforce", "runs": 3, "label": "const"}]))
    calls = []
    summary = run_bench(cfg, progress=False, trainer=_stand_in_trainer(calls), env_factory=_dus_env)
    data = summary.data
    assert not data.failed
    # the agent trained on the train instances only, as plain DUSEnv kwargs
    assert len(calls) == 1 and [d["dataset_kwargs"]["seed"] for d in calls[0]["train"]] == [1, 2]
    assert set(calls[0]["train"][0]) == ENV_KEYS
    # the oracle was chosen on tuning seeds only and scored on evaluation seeds
    for label, res in data.oracles.items():
        assert res.tuning_seeds == [100, 101]
        assert set(data.acc[(label, "oracle")]) == {0, 1}
    # every reported policy has evaluation-seed results on every test instance
    for inst in data.sets[0].test:
        for pol in data.policies + [m for a in data.agent_labels for m in data.seed_rows(a)]:
            assert set(data.acc[(inst.label(), pol)]) == {0, 1}, pol
    # the stand-in agent's accuracy equals the same schedule played directly with the same seed
    inst = data.sets[0].test[0]
    env = DUSEnv(**inst.env_kwargs(), reward="dus")
    rec = run_policy(env, make_policy("schedule", shares=[0.6], modality=1), seeds=[0])[0]
    assert data.acc[(inst.label(), "agent:const@seed0")][0] == pytest.approx(rec.test["fused"]["accuracy"])
    # normalised scores match the hand formula on the recorded accuracies
    rep = summary.report
    for row in rep.scores:
        if math.isfinite(row["normalised"]):
            t = next(i for i in data.sets[0].test if i.name == row["instance"])
            u = data.values(t, "uniform", [0, 1])
            o = data.values(t, "oracle", [0, 1])
            assert row["normalised"] == pytest.approx((row["acc"] - row["uniform_acc"]) / (o.mean() - u.mean()))
    # headroom rows for train and test instances, CI from the paired differences
    assert {r["split"] for r in rep.headroom} == {"train", "test"}
    for r in rep.headroom:
        t = data.sets[0].get(r["instance"])
        mean, lo, hi = paired_ci(data.values(t, "oracle", [0, 1]), data.values(t, "uniform", [0, 1]))
        assert (r["headroom"], r["ci_lo"], r["ci_hi"]) == pytest.approx((mean, lo, hi))
    # Eq. 5 returns are recorded for every evaluation run and are <= 0
    assert all(v <= 1e-12 for d in data.eq5.values() for v in d.values() if math.isfinite(v))
    out = tmp_path / "out"
    for name in ("results.md", "results.csv", "headroom.csv", "scores.csv", "aggregates.csv",
                 "plots/headroom.png", "plots/schedules_agent-const.png", "plots/curves.png"):
        assert (out / name).is_file(), name
    assert summary.result_lines[0].startswith("RESULT headroom_instances ")
    # resume: nothing runs again, same numbers
    again = run_bench(cfg, progress=False, trainer=_stand_in_trainer(calls), env_factory=_dus_env)
    assert again.data.runs_executed == 0 and again.result_lines == summary.result_lines


_CI = r"(none|-?\d+\.\d{3} \[-?\d+\.\d{3}, -?\d+\.\d{3}\])"
# the claims' lines close the output (experiments.bench_claims)
RESULT_RE = [rf"RESULT agent_iqm {_CI}", rf"RESULT best_heuristic_iqm (none|{_CI} \([a-z-]+\))",
             rf"RESULT tuned_constant_iqm {_CI}", rf"RESULT agent_minus_best_heuristic {_CI}",
             r"RESULT direction_instances \d+ up / \d+ down( \(\d+ none\))?"]


def test_mmenv_bench_command_ends_with_the_result_lines(tmp_path, capsys):
    """The command end to end with a real episodic REINFORCE agent trained across 2 runs."""
    from mmenv.cli import main

    path = _tiny_preset(tmp_path, agents=[{"algo": "reinforce", "runs": 2, "workers": 1}])
    assert main(["bench", "--preset", str(path), "--no-progress", "--no-plots"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) >= 5
    for line, pattern in zip(lines[-5:], RESULT_RE):
        assert re.fullmatch(pattern, line), line
    out = tmp_path / "out"
    assert list((out / "agents").glob("*.pt")) and (out / "tb").is_dir()
    # resumed: the saved agent and every run are reused, the RESULT lines are the same
    assert main(["bench", "--preset", str(path), "--no-progress", "--no-plots"]) == 0
    again = capsys.readouterr().out.strip().splitlines()
    assert again[-5:] == lines[-5:]
    assert any(re.match(r"0 run\(s\) executed", x) for x in again)
    assert main(["bench", "--preset", "nope"]) == 2
    assert "unknown bench preset" in capsys.readouterr().err


# ---------------------------------------------------------------------- building blocks
def test_schedule_policy_switches_on_training_progress():
    from mmenv.agents import PolicyError, make_policy, run_policy

    from mmenv import DUSEnv

    env = DUSEnv(dataset_kwargs={"n_train": 64, "n_val": 16, "n_test": 32, "dims": 4}, epochs=4, batch_budget=8)
    rec = run_policy(env, make_policy("schedule", shares=[0.75, 0.25], switch=[0.5], modality=1), seeds=[0])[0]
    np.testing.assert_allclose(rec.proportions, [[0.25, 0.75]] * 2 + [[0.75, 0.25]] * 2)
    rec = run_policy(env, make_policy("schedule", phases=[[0.5, 0.5], [0.25, 0.75], [0.75, 0.25]],
                                      switch=[0.25, 0.75]), seeds=[0])[0]
    np.testing.assert_allclose(rec.proportions, [[0.5, 0.5], [0.25, 0.75], [0.25, 0.75], [0.75, 0.25]])
    with pytest.raises(PolicyError, match="need 1 switch"):
        make_policy("schedule", shares=[0.2, 0.8])
    with pytest.raises(PolicyError, match="exactly one of"):
        make_policy("schedule", shares=[0.2], phases=[[0.5, 0.5]])
    with pytest.raises(PolicyError, match="3 proportions"):
        run_policy(env, make_policy("schedule", phases=[[0.2, 0.3, 0.5]]), seeds=[0])


def test_synthetic_strong_position_moves_the_strong_modality_only():
    from mmenv.datasets import make_synthetic

    a = make_synthetic(n_train=50, n_val=10, n_test=20, seed=3)
    b = make_synthetic(n_train=50, n_val=10, n_test=20, seed=3, strong_position=1)
    assert a.modality_names == ("strong", "weak") and b.modality_names == ("weak", "strong")
    for m in ("strong", "weak"):
        assert np.array_equal(a.train.inputs[m].numpy(), b.train.inputs[m].numpy())
    c = make_synthetic(n_train=50, n_val=0, n_test=20, num_modalities=3, strong_position=2, dims=[4, 5, 6])
    assert c.modality_names == ("weak1", "weak2", "strong")
    assert [c.train.inputs[m].shape[1] for m in c.modality_names] == [4, 5, 6]
    with pytest.raises(ValueError, match="strong_position"):
        make_synthetic(strong_position=2)
