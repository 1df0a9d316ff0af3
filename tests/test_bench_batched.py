"""The benchmark on the batched engine: how runs are cut into batches, which configurations
fall back to one run at a time, and the same numbers as the one-run-at-a-time executor."""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml
from mmenv.experiments.bench_config import BenchConfigError, load_bench_config
from mmenv.experiments.bench_data import run_spec
from mmenv.experiments.bench_runner import BackendExecutor, BatchedExecutor, engine_reason, make_executor
from mmenv.experiments.instances import Instance

from tests.bench_fixtures import TINY_SET, tiny_preset


def _inst(name: str, learner: str = "baseline", seed: int = 1) -> Instance:
    return Instance(set_name="s", name=name, split="test", dataset="synthetic", learner=learner,
                    dataset_kwargs={"n_train": 64, "n_val": 16, "n_test": 32, "dims": 8, "seed": seed},
                    epochs=1, batch_budget=16)


def _specs(inst: Instance, n: int) -> list:
    return [run_spec(inst, "schedule", {"shares": [0.1 + 0.8 * i / n], "modality": 0}, 0)
            for i in range(n)]


def test_batches_group_runs_by_instance_and_cover_every_run_once():
    a, b = _inst("a"), _inst("b", learner="mla", seed=2)
    specs = _specs(a, 10) + _specs(b, 3)
    ex = BatchedExecutor(workers=2, max_batch=4, support=lambda spec: None)
    tasks = ex.batches(specs)
    keys = [s.key for run, _ in tasks for s in run]
    assert sorted(keys) == sorted(s.key for s in specs) and len(set(keys)) == len(specs)
    for run, batched in tasks:
        assert batched and 1 <= len(run) <= 4
        assert len({(s.learner, str(s.dataset_kwargs)) for s in run}) == 1     # one instance per batch
    assert sorted(len(run) for run, _ in tasks) == [2, 3, 4, 4]


def test_batches_give_every_worker_work_and_never_exceed_max_batch():
    specs = _specs(_inst("a"), 12)
    assert [len(r) for r, _ in BatchedExecutor(workers=3, max_batch=64, support=lambda s: None).batches(specs)] \
        == [4, 4, 4]
    assert [len(r) for r, _ in BatchedExecutor(workers=1, max_batch=5, support=lambda s: None).batches(specs)] \
        == [5, 5, 2]


def test_a_configuration_the_engine_cannot_train_is_played_one_run_per_task():
    a, b = _inst("a"), _inst("b", learner="mla", seed=2)
    asked = []

    def support(spec):
        asked.append(spec.learner)
        return "imperative learner" if spec.learner == "mla" else None

    ex = BatchedExecutor(workers=1, support=support)
    tasks = ex.batches(_specs(a, 3) + _specs(b, 3))
    assert [(len(r), batched) for r, batched in tasks] == [(3, True), (1, False), (1, False), (1, False)]
    assert list(ex.reasons.values()) == ["imperative learner"]
    ex.batches(_specs(a, 2) + _specs(b, 2))
    assert sorted(asked) == ["baseline", "mla"]          # asked once per configuration


def test_engine_reason_accepts_built_in_learners_and_names_an_imperative_plugin():
    from mmenv.learners import LEARNERS, register_learner
    from tests.test_engine import ImperativeLearner

    assert engine_reason(_specs(_inst("a", learner="ogm-ge"), 1)[0]) is None
    register_learner("imperative-bench-test", ImperativeLearner, overwrite=True)
    try:
        reason = engine_reason(_specs(_inst("a", learner="imperative-bench-test"), 1)[0])
    finally:
        LEARNERS.unregister("imperative-bench-test")
    assert reason is not None and "imperative" in reason


def test_executor_switch_in_preset_and_factory(tmp_path):
    assert load_bench_config(tiny_preset(tmp_path)).executor == "batched"
    assert load_bench_config(tiny_preset(tmp_path, executor="single")).executor == "single"
    assert load_bench_config(tiny_preset(tmp_path), {"executor": "single"}).executor == "single"
    with pytest.raises(BenchConfigError, match="executor"):
        load_bench_config(tiny_preset(tmp_path, executor="vmap"))
    assert isinstance(make_executor("single"), BackendExecutor)
    assert isinstance(make_executor("batched", workers=2), BatchedExecutor)


def _small_preset(tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    inst_set = yaml.safe_load(yaml.safe_dump(TINY_SET))
    inst_set["defaults"]["dataset_kwargs"].update(n_train=64, n_val=16, n_test=48)
    inst_set["defaults"]["env"]["epochs"] = 1
    inst_set["train"][1]["learner"] = "pmr"
    inst_set["test"][0]["learner"] = "ogm-ge"
    (folder / "small-set.yaml").write_text(yaml.safe_dump(inst_set))
    return tiny_preset(folder, set_name="small-set.yaml", tuning_seeds=[100], eval_seeds=[0, 1],
                       grid={"shares": [0.7], "phase_shares": [0.3, 0.7], "switches": [0.5]},
                       tuned_constant_shares=[0.7], headroom_splits=["test"],
                       references=["uniform", "dus-h", "reinforce"], instance_sets=["small-set.yaml"])


def test_bench_numbers_are_identical_with_the_batched_and_the_single_executor(tmp_path):
    """Real training (baseline, PMR, OGM-GE, MLA; fixed schedules, DUS-H and online REINFORCE):
    every run's accuracy, Eq. 5 return and schedule, and the RESULT lines, agree."""
    from mmenv.experiments.bench import run_bench

    summaries = {}
    for name in ("batched", "single"):
        cfg = load_bench_config(_small_preset(tmp_path, name))
        cfg.plots = cfg.tensorboard = False
        summaries[name] = run_bench(cfg, progress=False, executor=make_executor(name))
    b, s = summaries["batched"].data, summaries["single"].data
    assert summaries["batched"].result_lines == summaries["single"].result_lines
    assert b.runs_executed == s.runs_executed > 20 and not b.failed and not s.failed
    assert set(b.acc) == set(s.acc) and set(b.eq5) == set(s.eq5)
    for key in s.acc:
        assert set(b.acc[key]) == set(s.acc[key])
        for seed, acc in s.acc[key].items():
            assert math.isfinite(acc) and b.acc[key][seed] == pytest.approx(acc, abs=1e-9)
            assert b.eq5[key][seed] == pytest.approx(s.eq5[key][seed], rel=1e-6, abs=1e-9)
            np.testing.assert_allclose(b.schedules[key][seed], s.schedules[key][seed], atol=1e-9)
    assert {k: v.best.label for k, v in b.oracles.items()} == {k: v.best.label for k, v in s.oracles.items()}


@pytest.mark.parametrize("observation", ["extended", "paper"])
def test_agent_evaluation_on_the_engine_equals_one_run_at_a_time(observation):
    """A trained agent's evaluation episodes: the same records (through the benchmark's
    observation, which the batched path rebuilds per run) on the engine and one at a time."""
    from mmenv.agents.across_runs import bench_env, train_across_runs
    from mmenv.agents.assembly import record_fields
    from mmenv.experiments.bench_stages import _play

    inst = _inst("a", learner="ogm-ge")
    agent = train_across_runs("reinforce", [inst.env_kwargs()], runs=2, seed=0, reward="dus", observation=observation)
    single = _play(bench_env, agent.policy, observation, inst, [0, 1, 2])
    batched = _play(bench_env, agent.policy, observation, inst, [0, 1, 2], batched=True)
    for a, b in zip(single, batched):
        ra, rb = record_fields(a), record_fields(b)
        assert ra["test"] == rb["test"] and ra["batch_sizes"] == rb["batch_sizes"]
        np.testing.assert_allclose(ra["proportions"], rb["proportions"], atol=1e-9)
        np.testing.assert_allclose(ra["initial_discrepancy"], rb["initial_discrepancy"], atol=1e-9)
        np.testing.assert_allclose(ra["rewards"], rb["rewards"], rtol=1e-6, atol=1e-9)
    assert len(np.asarray(single[0].initial_discrepancy)) == (9 if observation == "extended" else 2)


def test_convolutional_encoders_on_a_cpu_are_played_one_run_at_a_time():
    """AV-digits' sequence / image encoders: supported by the engine, but slower batched on a CPU."""
    inst = Instance(set_name="s", name="av", split="test", dataset="av-digits", learner="baseline", epochs=1,
                    batch_budget=16)
    reason = engine_reason(_specs(inst, 1)[0])
    assert reason is not None and "convolutional" in reason
