"""Tasks where the right direction changes: the noisy-modality knob, directed and tuned heuristics,
agent-seed aggregation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mmenv.agents import DUSHPolicy, FixedRatioPolicy, PolicyError, make_policy
from mmenv.agents.heuristics import directed_proportions
from mmenv.experiments.oracle import SeedOverlapError
from mmenv.experiments.share_response import train_alone
from mmenv.experiments.stats import aggregate_agent_seeds, iqm, paired_seed_difference
from mmenv.experiments.tuning import TuningError, heuristic_grid, tune_heuristics, tuning_specs

from mmenv.datasets import DatasetError, make_synthetic
from mmenv.errors import InvalidArgumentError

SMALL = dict(n_train=200, n_val=40, n_test=100)


# ---------------------------------------------------------------------- the data knob
def test_noisy_fraction_zero_leaves_the_data_set_unchanged():
    a, b = make_synthetic(seed=4, **SMALL), make_synthetic(seed=4, noisy_fraction=[0.0, 0.0], **SMALL)
    for split in ("train", "val", "test"):
        for m in a.modality_names:
            assert getattr(a, split).inputs[m].equal(getattr(b, split).inputs[m])


def test_noisy_fraction_corrupts_about_that_share_of_one_modality_only():
    clean = make_synthetic(seed=5, n_train=2000, n_val=0, n_test=500)
    for mode in ("swap", "noise"):
        noisy = make_synthetic(seed=5, n_train=2000, n_val=0, n_test=500, noisy_fraction={"weak": 0.3},
                               noisy_mode=mode)
        assert noisy.train.inputs["strong"].equal(clean.train.inputs["strong"])
        assert noisy.train.labels.equal(clean.train.labels)
        changed = (noisy.train.inputs["weak"] != clean.train.inputs["weak"]).any(1).float().mean().item()
        assert 0.25 < changed < 0.35
        assert noisy.info["noisy_fraction"] == [0.0, 0.3] and noisy.info["noisy_mode"] == mode
    again = make_synthetic(seed=5, n_train=2000, n_val=0, n_test=500, noisy_fraction={"weak": 0.3})
    assert again.test.inputs["weak"].equal(make_synthetic(seed=5, n_train=2000, n_val=0, n_test=500,
                                                          noisy_fraction=[0.0, 0.3]).test.inputs["weak"])


def test_swapped_rows_are_rows_of_another_class():
    clean = make_synthetic(seed=6, n_train=400, n_val=0, n_test=50)
    noisy = make_synthetic(seed=6, n_train=400, n_val=0, n_test=50, noisy_fraction=[0.5, 0.0])
    x0, x1, y = clean.train.inputs["strong"], noisy.train.inputs["strong"], clean.train.labels
    rows = (x0 != x1).any(1).nonzero().flatten()
    assert len(rows) > 100
    for r in rows[:50].tolist():
        source = (x0 == x1[r]).all(1).nonzero().flatten()
        assert len(source) >= 1 and all(int(y[s]) != int(y[r]) for s in source)


@pytest.mark.parametrize("kwargs, error", [
    ({"noisy_fraction": [0.2]}, DatasetError),                    # one entry for two modalities
    ({"noisy_fraction": {"audio": 0.2}}, DatasetError),           # unknown modality name
    ({"noisy_fraction": [0.2, 1.0]}, InvalidArgumentError),       # nothing left to learn
    ({"noisy_fraction": [-0.1, 0.0]}, InvalidArgumentError),
    ({"noisy_fraction": [float("nan"), 0.0]}, InvalidArgumentError),
    ({"noisy_fraction": ["0.2", 0.0]}, InvalidArgumentError),
    ({"noisy_fraction": 0.3}, InvalidArgumentError),              # which modality?
    ({"noisy_fraction": "weak"}, InvalidArgumentError),
    ({"noisy_mode": "flip"}, InvalidArgumentError),
])
def test_noisy_arguments_are_checked(kwargs, error):
    with pytest.raises(error, match="noisy"):
        make_synthetic(**SMALL, **kwargs)


def test_a_noisy_modality_is_weaker_alone():
    # The stated direction: corrupting 40 % of the weak modality's samples lowers its own
    # (unimodal) test accuracy; its noise ceiling is 0.6 + 0.4 * 0 for swaps.
    kw = dict(n_train=1500, n_val=0, n_test=600, seed=3)
    clean, noisy = make_synthetic(**kw), make_synthetic(noisy_fraction={"weak": 0.4}, **kw)
    acc_clean = np.mean([train_alone(clean, "weak", s, 4, 32) for s in (0, 1)])
    acc_noisy = np.mean([train_alone(noisy, "weak", s, 4, 32) for s in (0, 1)])
    assert acc_clean - acc_noisy > 0.15
    assert acc_noisy < 0.6 + 0.05


# ---------------------------------------------------------------------- directed heuristics
def test_directed_proportions_mirror_each_other():
    less = directed_proportions(2, 0, 0.5, "less")
    more = directed_proportions(2, 0, 0.5, "more")
    assert np.allclose(less, [1 / 3, 2 / 3]) and np.allclose(more, [2 / 3, 1 / 3])
    three = directed_proportions(3, 1, 0.5, "more")
    assert np.allclose(three, [0.25, 0.5, 0.25]) and math.isclose(three.sum(), 1.0)
    assert np.allclose(directed_proportions(3, 2, 1.0, "more"), 1 / 3)


def test_fixed_ratio_and_dush_take_a_direction():
    obs, info = np.array([0.9, 0.4]), {"epoch": 0}
    assert np.allclose(FixedRatioPolicy(ratio=0.25).act(obs, info), [0.2, 0.8])
    assert np.allclose(FixedRatioPolicy(ratio=0.25, direction="more").act(obs, info), [0.8, 0.2])
    dush = make_policy("dus-h", epochs=4, beta=0.5, direction="more")
    assert np.allclose(dush.act(obs, {"epoch": 0}), [2 / 3, 1 / 3])
    assert np.allclose(dush.act(obs, {"epoch": 4}), [0.5, 0.5])
    # the default stays the paper's
    assert np.allclose(DUSHPolicy(epochs=4).act(obs, {"epoch": 0}), [1 / 3, 2 / 3])


@pytest.mark.parametrize("build", [
    lambda: FixedRatioPolicy(direction="up"),
    lambda: FixedRatioPolicy(ratio=0.0, direction="more"),
    lambda: FixedRatioPolicy(ratio="half"),
    lambda: DUSHPolicy(beta=0.5, direction=None),
    lambda: DUSHPolicy(beta=True),
])
def test_direction_arguments_are_checked(build):
    with pytest.raises(PolicyError):
        build()


# ---------------------------------------------------------------------- tuning
class _Inst:
    def __init__(self, name: str, best: str):
        self.name, self.best = name, best

    def label(self) -> str:
        return self.name


def _accuracy(calls):
    """A deterministic stand-in for run accuracies: 'more' wins on one instance, 'less' on the other,
    the strength 0.25 beats 0.5 and 0.75; it records every seed it is asked for."""
    def acc(inst, policy, kwargs, seed):
        calls.append((inst.name, policy, dict(kwargs), seed))
        if policy == "uniform":
            return 0.80 + 0.001 * seed
        if policy == "val-gain":          # +1 point at share 0.75, less away from it
            return 0.81 + 0.001 * seed - 0.01 * abs(kwargs["share"] - 0.75)
        strength = kwargs.get("ratio", kwargs.get("beta"))
        sign = 1.0 if kwargs["direction"] == inst.best else -1.0
        return 0.80 + 0.001 * seed + sign * 0.02 * (1.0 - strength) + (0.005 if inst.best == "more" else 0.0)
    return acc


def test_tuned_heuristics_pick_the_best_mean_gain_and_see_tuning_seeds_only():
    train = [_Inst("a", "more"), _Inst("b", "more"), _Inst("c", "less")]
    calls = []
    result = tune_heuristics(train, _accuracy(calls), [100, 101, 102], [0, 1, 2, 3, 4])
    assert {c[3] for c in calls} == {100, 101, 102}
    for name, param in (("fixed", "ratio"), ("dus-h", "beta")):
        t = result.heuristics[name]
        assert t.policy_kwargs == {param: 0.25, "direction": "more"}
        # a: +0.015 + 0.005, b: the same, c: -0.015  -> mean (0.02 + 0.02 - 0.015) / 3
        assert t.gain == pytest.approx((0.02 + 0.02 - 0.015) / 3)
        assert t.per_instance["c"] == pytest.approx(-0.015)
        assert len(t.gains) == 6 and "tuned" in t.label
    v = result.heuristics["val-gain"]
    assert v.policy_kwargs == {"share": 0.75} and v.gain == pytest.approx(0.01) and len(v.gains) == 3
    assert v.label == "val-gain tuned (share=0.75)"
    assert result.tuning_seeds == [100, 101, 102] and result.instances == ["a", "b", "c"]
    assert '"direction": "more"' in result.to_json()


def test_the_runs_tuning_requests_carry_tuning_seeds_only():
    from mmenv.experiments.grid import RunSpec

    def run_spec(inst, policy, kwargs, seed):
        return RunSpec(dataset="synthetic", learner="baseline", policy=policy, seed=seed, policy_kwargs=kwargs,
                       dataset_kwargs={"seed": inst.name == "b"})

    grid = heuristic_grid()
    specs = tuning_specs([_Inst("a", "more"), _Inst("b", "less")], grid, [100, 101], run_spec)
    assert {s.seed for s in specs} == {100, 101}
    assert len(specs) == 2 * (1 + 12 + 3) * 2
    assert {s.policy for s in specs} == {"uniform", "fixed", "dus-h", "val-gain"}


def test_tuning_refuses_overlapping_seeds_and_bad_grids():
    with pytest.raises(SeedOverlapError):
        tune_heuristics([_Inst("a", "more")], _accuracy([]), [0, 100], [0, 1])
    with pytest.raises(TuningError):
        heuristic_grid(ratios=[1.0])
    with pytest.raises(TuningError):
        heuristic_grid(directions=["up"])
    with pytest.raises(TuningError):
        tune_heuristics([], _accuracy([]), [100], [0])
    with pytest.raises(TuningError, match="failed"):
        tune_heuristics([_Inst("a", "more")], lambda *a: float("nan") if a[1] != "uniform" else 0.5, [100], [0])


# ---------------------------------------------------------------------- agent seeds
# Two agent seeds x two instances x two evaluation seeds, and a heuristic on the same cells.
TABLE = {0: {"i1": {0: 0.2, 1: 0.4}, "i2": {0: 0.6, 1: 0.8}},
         1: {"i1": {0: 1.0, 1: 0.0}, "i2": {0: 0.5, 1: 0.5}}}
HEUR = {"i1": {0: 0.1, 1: 0.1}, "i2": {0: 0.5, 1: 0.7}}


def test_agent_seed_aggregation_by_hand():
    agg = aggregate_agent_seeds(TABLE, n_resamples=300)
    values = [0.2, 0.4, 0.6, 0.8, 1.0, 0.0, 0.5, 0.5]
    # mean of the 8 cells; IQM drops floor(8/4) = 2 at each end of 0,.2,.4,.5,.5,.6,.8,1 -> (.4+.5+.5+.6)/4
    assert agg.mean[0] == pytest.approx(np.mean(values)) == pytest.approx(0.5)
    assert agg.iqm[0] == pytest.approx(0.5) == pytest.approx(iqm(values))
    assert agg.per_seed_mean == pytest.approx({0: 0.5, 1: 0.5})
    # seed 0: .2 .4 .6 .8 -> IQM .5; seed 1: 0 .5 .5 1 -> IQM .5
    assert agg.per_seed_iqm == pytest.approx({0: 0.5, 1: 0.5})
    assert agg.agent_seeds == [0, 1] and agg.instances == ["i1", "i2"] and agg.eval_seeds == [0, 1]
    lo, hi = agg.mean[1], agg.mean[2]
    # the resampled means lie between the smallest and largest possible stratum means' average
    assert (0.0 + 0.5) / 2 <= lo <= 0.5 <= hi <= (1.0 + 0.8) / 2


def test_agent_seed_bootstrap_resamples_within_instances():
    # by hand: with one instance the stratified bootstrap is the ordinary bootstrap of its cells
    table = {0: {"i": {0: 0.0, 1: 1.0}}, 1: {"i": {0: 0.0, 1: 1.0}}}
    agg = aggregate_agent_seeds(table, n_resamples=4000, seed=3)
    rng = np.random.default_rng(3)
    cells = np.array([0.0, 1.0, 0.0, 1.0])
    means = [cells[rng.integers(0, 4, 4)].mean() for _ in range(4000)]
    assert agg.mean[1:] == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))
    # a constant instance contributes no spread: the interval is the point
    const = aggregate_agent_seeds({0: {"i": {0: 0.3, 1: 0.3}}, 1: {"i": {0: 0.3, 1: 0.3}}}, n_resamples=200)
    assert const.iqm == pytest.approx((0.3, 0.3, 0.3))


def test_paired_difference_against_the_best_heuristic_by_hand():
    mean, lo, hi = paired_seed_difference(TABLE, HEUR, n_resamples=500)
    # cell differences: seed 0: .1 .3 .1 .1 ; seed 1: .9 -.1 0 -.2  -> mean 1.2/8
    assert mean == pytest.approx(1.2 / 8)
    assert lo <= mean <= hi
    # identical agent and heuristic: a zero difference with a zero-width interval
    same = {0: HEUR, 1: HEUR}
    assert paired_seed_difference(same, HEUR, n_resamples=100) == pytest.approx((0.0, 0.0, 0.0))


def test_agent_seed_tables_must_be_complete_and_paired():
    with pytest.raises(ValueError, match="evaluation seed 1"):
        aggregate_agent_seeds({0: {"i": {0: 0.1, 1: 0.2}}, 1: {"i": {0: 0.1}}})
    with pytest.raises(ValueError, match="no scores on instance"):
        paired_seed_difference(TABLE, {"i1": HEUR["i1"]})
    with pytest.raises(ValueError, match="empty"):
        aggregate_agent_seeds({})


def test_tuned_heuristic_baseline_stage_reads_tuning_seeds_only():
    from types import SimpleNamespace

    from mmenv.experiments.grid import RunSpec
    from mmenv.experiments.tuning import tuned_heuristic_baselines

    train = [_Inst("a", "more"), _Inst("b", "more"), _Inst("c", "less")]
    iset = SimpleNamespace(train=train, test=[_Inst("t", "less")])
    plan = SimpleNamespace(cfg=SimpleNamespace(tuning_seeds=[100, 101], eval_seeds=[0, 1, 2]),
                           spec=lambda inst, c, seed: RunSpec(dataset=inst.name, learner="baseline", policy=c.policy,
                                                              seed=seed, policy_kwargs=c.policy_kwargs))
    acc, asked = _accuracy([]), []

    class Runner:
        def get(self, spec):
            asked.append(spec.seed)
            inst = next(i for i in train if i.name == spec.dataset)
            return {"status": "ok", "test": {"fused": {"accuracy": acc(inst, spec.policy, spec.policy_kwargs,
                                                                        spec.seed)}}}

    fixed, dush, vgain = tuned_heuristic_baselines()
    assert (fixed.label, dush.label, vgain.label) == ("fixed-ratio-tuned", "dus-h-tuned", "val-gain-tuned")
    specs = fixed.search_specs(plan, iset)
    assert {s.seed for s in specs} == {100, 101} and {s.dataset for s in specs} == {"a", "b", "c"}
    assert len(specs) == 3 * (1 + 6) * 2
    choice = fixed.choose(plan, iset, Runner())
    assert set(asked) == {100, 101}
    assert choice.policy_kwargs == {"ratio": 0.25, "direction": "more"}
    c = fixed.candidate(choice, 3)
    assert (c.policy, c.policy_kwargs) == ("fixed", {"ratio": 0.25, "direction": "more"})


# ---------------------------------------------------------------------- the standard preset
def test_standard_preset_is_the_mixed_family_with_both_directions_and_agent_seeds():
    from pathlib import Path

    import yaml
    from mmenv.experiments.instances import load_instance_set

    root = Path(__file__).resolve().parents[1]
    raw = yaml.safe_load((root / "experiments" / "bench_presets" / "standard.yaml").read_text())
    (entry,) = raw["instance_sets"]
    iset = load_instance_set(entry["name"])
    test = [iset.get(n) for n in entry["test"]]
    assert all(t.split == "test" for t in test) and len(test) >= 8
    kinds = [t.tags["kind"] for t in test]            # slow = the modality behind needs more ("up")
    assert kinds.count("slow") == kinds.count("noisy")
    assert {t.learner for t in iset.instances} >= {"ogm-ge", "pmr", "mla", "agm", "di-mml", "baseline"}
    assert {t.num_modalities() for t in test if t.dataset == "synthetic"} == {2, 3}
    assert len(raw["eval_seeds"]) == 5 and not set(raw["tuning_seeds"]) & set(raw["eval_seeds"])
    assert all(len(a["seeds"]) >= 5 and "seed" not in a for a in raw["agents"])
    assert {c.policy_kwargs["direction"] for c in heuristic_grid()["fixed"]} == {"less", "more"}


def test_tuned_heuristics_plug_into_the_staged_benchmark_tuning_stage():
    # the benchmark's own run_tuned with the tuned rules: every run it asks for is on a tuning seed
    from types import SimpleNamespace

    from mmenv.experiments.bench_stages import run_tuned
    from mmenv.experiments.grid import RunSpec
    from mmenv.experiments.tuning import tuned_heuristic_baselines

    train = [_Inst("a", "less"), _Inst("b", "less"), _Inst("c", "more")]
    iset = SimpleNamespace(name="toy", train=train, test=[])
    plan = SimpleNamespace(sets=[iset], cfg=SimpleNamespace(tuning_seeds=[100, 101, 102], eval_seeds=[0, 1]),
                           spec=lambda inst, c, seed: RunSpec(dataset=inst.name, learner="baseline", policy=c.policy,
                                                              seed=seed, policy_kwargs=c.policy_kwargs))
    acc = _accuracy([])

    class Runner:
        def __init__(self):
            self.ran, self.read = [], []

        def run(self, specs, stage):
            self.ran += [s.seed for s in specs]

        def get(self, spec):
            self.read.append(spec.seed)
            inst = next(i for i in train if i.name == spec.dataset)
            return {"status": "ok", "test": {"fused": {"accuracy": acc(inst, spec.policy, spec.policy_kwargs,
                                                                        spec.seed)}}}

    runner = Runner()
    result = run_tuned(plan, runner, tuned_heuristic_baselines())
    assert set(runner.ran) == set(runner.read) == {100, 101, 102}
    choices = result.choices["toy"]
    assert choices["fixed-ratio-tuned"].policy_kwargs == {"ratio": 0.25, "direction": "less"}
    assert choices["dus-h-tuned"].policy_kwargs == {"beta": 0.25, "direction": "less"}
