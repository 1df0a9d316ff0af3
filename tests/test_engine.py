"""The batched engine: run k of a batch equals the single DUSEnv with the same seed and actions.

Every learner (and a plug-in written in the functional form) is trained K at a time by
:class:`mmenv.engine.BatchedRuns` and one at a time by ``DUSEnv.step``; observations,
batch sizes, losses, rewards and the final test metrics must agree to float rounding,
with unequal batch sizes across runs (padding) and whatever K is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from mmenv import DUSEnv
from mmenv.datasets import make_dataset, make_synthetic
from mmenv.engine import BatchedRuns, EngineError, engine_support, execute_batch, play_batch
from mmenv.learners import Batch, Learner, LearnerContext, Prediction, StepOutput
from mmenv.learners.functional import FunctionalLearner, StepInfo, paired_weights, row_weights, weighted_ce
from mmenv.learners.ogm_ge import OGMGELearner

LEARNERS = ["baseline", "ogm-ge", "mla", "pmr", "agm", "di-mml"]
TOL = dict(rtol=1e-5, atol=1e-5)


def tiny():
    return make_synthetic(n_train=240, n_val=40, n_test=160, num_modalities=2, seed=0)


class LateFusionLearner(FunctionalLearner):
    """A plug-in written only in the documented functional form: one linear classifier per
    modality, trained on the sum of their logits over the paired core plus each modality's own CE."""

    name = "late-fusion-test"

    def __init__(self, lr: float = 0.05) -> None:
        self.opt_kwargs = {"lr": lr}

    def build_model(self, ctx: LearnerContext) -> nn.Module:
        return nn.ModuleDict({s.name: nn.Linear(int(np.prod(s.shape)), ctx.num_classes) for s in ctx.modalities})

    def loss(self, model: nn.Module, batch: Batch, state: Mapping[str, Any], info: StepInfo):
        logits = {m: model[m](x.flatten(1)) for m, x in batch.inputs.items()}
        p = batch.num_paired
        fused = sum(z[:p] for z in logits.values())
        loss = weighted_ce(fused, batch.paired_labels(), paired_weights(batch), "mean", 1.0)
        for m, z in logits.items():
            loss = loss + weighted_ce(z, batch.labels[m], row_weights(batch, m), "mean", 1.0)
        return loss, {"logits": {m: z.detach() for m, z in logits.items()}, "losses": {"total": loss}}

    @torch.no_grad()
    def predict(self, inputs):
        per = {m: self.model[m](x.flatten(1)) for m, x in inputs.items()}
        return Prediction(sum(per.values()), per)


class ImperativeLearner(Learner):
    """A plug-in following only the imperative 3-method protocol."""

    name = "imperative-test"

    def setup(self, ctx: LearnerContext) -> None:
        self.model = nn.ModuleDict({s.name: nn.Linear(int(np.prod(s.shape)), ctx.num_classes)
                                    for s in ctx.modalities})
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.05)

    def train_step(self, batch: Batch) -> StepOutput:
        logits = {m: self.model[m](x.flatten(1)) for m, x in batch.inputs.items()}
        loss = sum(nn.functional.cross_entropy(z, batch.labels[m]) for m, z in logits.items())
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return StepOutput({m: z.detach() for m, z in logits.items()}, {"total": loss.detach()})

    @torch.no_grad()
    def predict(self, inputs):
        per = {m: self.model[m](x.flatten(1)) for m, x in inputs.items()}
        return Prediction(sum(per.values()), per)


def make_learner_arg(name: str):
    return LateFusionLearner() if name == "plugin" else name


def single_infos(ds, learner, actions, seed, **env_kwargs):
    env = DUSEnv(dataset=ds, learner=make_learner_arg(learner), **env_kwargs)
    obs, _ = env.reset(seed=seed)
    out = [(obs, None, None)]
    done = False
    while not done:
        obs, reward, term, trunc, info = env.step(actions[min(len(out) - 1, len(actions) - 1)])
        out.append((obs, reward, info))
        done = term or trunc
    return out


def batched_infos(ds, learner, actions_per_run, seeds, **env_kwargs):
    envs = [DUSEnv(dataset=ds, learner=make_learner_arg(learner), **env_kwargs) for _ in seeds]
    outs = [[(env.reset(seed=s)[0], None, None)] for env, s in zip(envs, seeds)]
    engine = BatchedRuns(envs)
    engine.load()
    done = False
    while not done:
        sized = [env.batch_sizes_for(acts[min(len(o) - 1, len(acts) - 1)])
                 for env, acts, o in zip(envs, actions_per_run, outs)]
        packed = engine.step(list(range(len(envs))), [s for _, s in sized])
        for k, env in enumerate(envs):
            obs, reward, term, trunc, info = env.finish_step(packed[k], engine.last_keys, sized[k][0], sized[k][1],
                                                             None)
            outs[k].append((obs, reward, info))
            done = term or trunc
    return outs


def assert_same_run(single, batched):
    assert len(single) == len(batched)
    np.testing.assert_allclose(single[0][0], batched[0][0], **TOL)
    for (o1, r1, i1), (o2, r2, i2) in zip(single[1:], batched[1:]):
        assert i1["batch_sizes"] == i2["batch_sizes"]
        np.testing.assert_allclose(o1, o2, **TOL)
        assert r1 == pytest.approx(r2, rel=1e-4, abs=1e-5)
        assert set(i1["train_loss"]) == set(i2["train_loss"])
        for key, value in i1["train_loss"].items():
            assert value == pytest.approx(i2["train_loss"][key], rel=1e-4, abs=1e-5), key
        for mod, value in i1["train_accuracy"].items():
            assert value == pytest.approx(i2["train_accuracy"][mod], abs=1e-6)
    t1, t2 = single[-1][2]["test"], batched[-1][2]["test"]
    for who in t1:
        for metric, value in t1[who].items():
            assert value == pytest.approx(t2[who][metric], abs=2e-3), (who, metric)


# Per run: its own seed and its own (unequal) shares, changing between steps.
ACTIONS = [[np.array([0.5, 0.5], np.float32), np.array([0.7, 0.3], np.float32)],
           [np.array([0.85, 0.15], np.float32), np.array([0.2, 0.8], np.float32)],
           [np.array([0.3, 0.7], np.float32), np.array([0.5, 0.5], np.float32)]]
SEEDS = [3, 11, 29]


@pytest.mark.parametrize("learner", LEARNERS + ["plugin"])
def test_batched_run_k_equals_the_single_env(learner):
    ds = tiny()
    kwargs = dict(epochs=2, batch_budget=24, iters_per_epoch=8)
    batched = batched_infos(ds, learner, ACTIONS, SEEDS, **kwargs)
    for k, seed in enumerate(SEEDS):
        assert_same_run(single_infos(ds, learner, ACTIONS[k], seed, **kwargs), batched[k])


def test_play_batch_copies_a_learner_object_per_run():
    """A Learner object in env_kwargs is copied per run, as DUSVectorEnv does: run k of the
    batch equals a single run with a fresh copy."""
    from mmenv.agents import run_policy

    from mmenv.engine import schedule_policy

    ds = tiny()
    kwargs = dict(dataset=ds, epochs=1, batch_budget=24, iters_per_epoch=5)
    schedule = [[0.5, 0.5]]
    records = play_batch(dict(kwargs, learner=LateFusionLearner()), [schedule] * 3, [0, 1, 2])
    for seed, rec in zip([0, 1, 2], records):
        alone = run_policy(DUSEnv(learner=LateFusionLearner(), **kwargs), schedule_policy(schedule), seeds=[seed])[0]
        np.testing.assert_allclose(rec.discrepancy, alone.discrepancy, **TOL)
        assert rec.test["fused"]["accuracy"] == pytest.approx(alone.test["fused"]["accuracy"], abs=2e-3)


@pytest.mark.parametrize("learner", ["baseline", "mla", "di-mml", "pmr"])
def test_a_run_with_an_empty_modality_batch_beside_full_ones(learner):
    """min_batch=0: one run gives a modality no rows (no paired core) while the others do."""
    ds = tiny()
    kwargs = dict(epochs=2, batch_budget=24, iters_per_epoch=6, min_batch=0)
    actions = [[np.array([1.0, 0.0], np.float32)], [np.array([0.5, 0.5], np.float32)]]
    batched = batched_infos(ds, learner, actions, [5, 6], **kwargs)
    assert batched[0][1][2]["batch_sizes"] == [24, 0]
    for k, seed in enumerate([5, 6]):
        assert_same_run(single_infos(ds, learner, actions[k], seed, **kwargs), batched[k])


@pytest.mark.parametrize("learner", ["ogm-ge", "pmr"])
def test_results_do_not_depend_on_k(learner):
    """Run seeded 11 trains the same alone (K=1) as beside three others (K=4)."""
    ds = tiny()
    kwargs = dict(epochs=2, batch_budget=24, iters_per_epoch=8)
    alone = batched_infos(ds, learner, [ACTIONS[1]], [11], **kwargs)[0]
    crowd = batched_infos(ds, learner, [ACTIONS[0], ACTIONS[1], ACTIONS[2], ACTIONS[0]], [3, 11, 29, 4],
                          **kwargs)[1]
    assert_same_run(alone, crowd)


@pytest.mark.parametrize("learner", ["baseline", "ogm-ge", "mla"])
def test_av_digits_sequence_and_image_encoders_batched(learner):
    ds = make_dataset("av-digits")
    kwargs = dict(epochs=1, batch_budget=24, iters_per_epoch=4)
    actions = [[np.array([0.6, 0.4], np.float32)], [np.array([0.25, 0.75], np.float32)]]
    batched = batched_infos(ds, learner, actions, [1, 2], **kwargs)
    for k, seed in enumerate([1, 2]):
        assert_same_run(single_infos(ds, learner, actions[k], seed, **kwargs), batched[k])


def test_an_imperative_plugin_is_refused_by_the_engine_and_played_one_at_a_time():
    ds = tiny()
    env = DUSEnv(dataset=ds, learner=ImperativeLearner(), epochs=1, batch_budget=24, iters_per_epoch=4)
    assert "imperative" in engine_support(env)
    with pytest.raises(EngineError, match="FunctionalLearner"):
        BatchedRuns([env])
    schedule = [[0.6, 0.4]]
    records = play_batch(dict(dataset=ds, learner=ImperativeLearner(), epochs=1, batch_budget=24,
                              iters_per_epoch=4), [schedule, schedule], [0, 1])
    from mmenv.agents import run_policy

    from mmenv.engine import schedule_policy

    alone = run_policy(DUSEnv(dataset=ds, learner=ImperativeLearner(), epochs=1, batch_budget=24,
                              iters_per_epoch=4), schedule_policy(schedule), seeds=[1])[0]
    assert records[1].test == alone.test


def test_play_batch_equals_run_policy_for_heuristic_policies():
    from mmenv.agents import make_policy, run_policy

    env_kwargs = dict(dataset="synthetic", dataset_kwargs=dict(n_train=240, n_val=40, n_test=160, seed=0),
                      learner="ogm-ge", epochs=3, batch_budget=24, iters_per_epoch=6, reward="dus")
    names = ["uniform", "dus-h", "uniform"]
    seeds = [0, 1, 2]
    records = play_batch(env_kwargs, [make_policy(n) for n in names], seeds)
    for name, seed, rec in zip(names, seeds, records):
        alone = run_policy(DUSEnv(**env_kwargs), make_policy(name), seeds=[seed])[0]
        assert rec.batch_sizes == alone.batch_sizes
        np.testing.assert_allclose(rec.discrepancy, alone.discrepancy, **TOL)
        np.testing.assert_allclose(rec.rewards, alone.rewards, rtol=1e-4, atol=1e-5)
        assert rec.test["fused"]["accuracy"] == pytest.approx(alone.test["fused"]["accuracy"], abs=2e-3)


def test_execute_batch_gives_execute_runs_results():
    from mmenv.experiments.grid import RunSpec, execute_run

    env = dict(epochs=2, batch_budget=24, iters_per_epoch=6)
    dkw = dict(n_train=240, n_val=40, n_test=160, seed=0)
    specs = [RunSpec(dataset="synthetic", learner=lrn, policy=pol, seed=s, env=env, dataset_kwargs=dkw)
             for lrn in ("baseline", "mla") for pol in ("uniform", "dus-h") for s in (0, 1)]
    batched = execute_batch(specs)
    assert [r["key"] for r in batched] == [s.key for s in specs]
    for spec, got in zip(specs, batched):
        want = execute_run(spec, out=None, tensorboard=False)
        assert got["status"] == want["status"] == "ok"
        assert got["batch_sizes"] == want["batch_sizes"]
        np.testing.assert_allclose(got["discrepancy"], want["discrepancy"], **TOL)
        for who in want["test"]:
            for metric, value in want["test"][who].items():
                assert got["test"][who][metric] == pytest.approx(value, abs=2e-3)


def test_the_batched_executor_behind_the_benchmark_runner_gives_the_backend_results(tmp_path):
    """The bench Runner takes any executor: the batched one and the process backend's agree."""
    from mmenv.experiments.bench_runner import BackendExecutor, Runner
    from mmenv.experiments.grid import RunSpec

    from mmenv.engine import BatchedExecutor

    env = dict(epochs=2, batch_budget=24, iters_per_epoch=5)
    dkw = dict(n_train=200, n_val=40, n_test=120, seed=1)
    specs = [RunSpec(dataset="synthetic", learner="pmr", policy=pol, seed=s, env=env, dataset_kwargs=dkw)
             for pol in ("uniform", "dus-h") for s in (0, 1, 2)]
    batched = Runner(tmp_path / "batched", BatchedExecutor(), progress=False)
    single = Runner(tmp_path / "single", BackendExecutor("process", workers=1), progress=False)
    batched.run(specs, "test")
    single.run(specs, "test")
    for spec in specs:
        got, want = batched.get(spec), single.get(spec)
        assert got["status"] == want["status"] == "ok"
        assert got["batch_sizes"] == want["batch_sizes"]
        np.testing.assert_allclose(got["discrepancy"], want["discrepancy"], **TOL)
        np.testing.assert_allclose(got["rewards"], want["rewards"], rtol=1e-4, atol=1e-5)
        assert got["test"]["fused"]["accuracy"] == pytest.approx(want["test"]["fused"]["accuracy"], abs=2e-3)


# ---------------------------------------------------------------------- benchmark observations on the engine
@pytest.mark.parametrize("observation", ["extended", "modal"])
def test_observed_policy_sees_what_the_benchmark_wrapper_shows(observation):
    """ObservedPolicy rebuilds the mmenv/DUSBench-v0 observation from a plain DUSEnv, step by step,
    alone and in a batch of the engine."""
    from mmenv.agents.observed import ObservedPolicy

    from mmenv.wrappers import make_bench_env

    kw = {"dataset": "synthetic", "dataset_kwargs": {"n_train": 120, "n_val": 60, "n_test": 60},
          "learner": "mla", "epochs": 3, "batch_budget": 16, "step_every": "epoch"}
    shares = [[0.5, 0.5], [0.7, 0.3], [0.4, 0.6]]
    wrapped = make_bench_env(observation=observation, reward="val-acc-gain", **kw)
    obs, _ = wrapped.reset(seed=4)
    shown, rewards = [obs], []
    for p in shares:
        obs, reward, *_ = wrapped.step(wrapped.unwrapped.proportions_to_action(p))
        shown.append(obs)
        rewards.append(reward)
    from mmenv.agents import Policy

    class Recorder(Policy):
        def __init__(self):
            self.seen, self.t = [], 0

        def reset(self, env):
            self.seen, self.t = [], 0

        def act(self, o, info):
            self.seen.append(np.asarray(o))
            self.t += 1
            return np.asarray(shares[self.t - 1])

    for batched in (False, True):
        rec = Recorder()
        policy = ObservedPolicy(rec, observation)
        if batched:
            records = play_batch({**kw, "reward": "val-acc-gain"}, [policy, ObservedPolicy(Recorder(), observation)],
                                 [4, 5], learn=False)
        else:
            env = DUSEnv(reward="val-acc-gain", **kw)
            from mmenv.agents import run_policy

            records = run_policy(env, policy, seeds=[4], learn=False)
        assert len(rec.seen) == 3
        np.testing.assert_allclose(np.stack(rec.seen), np.stack(shown[:3]), atol=1e-6)
        np.testing.assert_allclose(records[0].rewards, rewards, atol=1e-6)   # the benchmark reward too


def test_a_segments_noise_in_one_draw_equals_one_draw_per_iteration():
    """OGM-GE's noise (12,544 values per iteration with the default MLP) drawn for a segment
    at once gives the values of the single step's per-iteration draws."""
    env = DUSEnv(dataset=make_dataset("synthetic"), learner="ogm-ge", epochs=1)
    env.reset(seed=4)
    learner = env.learner
    info = StepInfo(0, 0, env.iters_per_epoch, 0)
    state = learner.ctx.generator.get_state()
    block = learner.noise_block(info, 5)
    assert block is not None and block.shape == (5, 12544)
    learner.ctx.generator.set_state(state)
    for i in range(5):
        per = learner.draw_noise(StepInfo(0, i, env.iters_per_epoch, 0))
        torch.testing.assert_close(torch.cat([t.reshape(-1) for t in per.values()]), block[i], rtol=0, atol=0)
    # The engine's form: drawn straight into a run's slice of the [runs, n, total] block.
    learner.ctx.generator.set_state(state)
    into = torch.full((2, 5, 12544), float("nan"))
    drawn = learner.noise_block(info, 5, out=into[1])
    assert drawn is not None and drawn.data_ptr() == into[1].data_ptr()
    assert torch.equal(into[1], block) and torch.isnan(into[0]).all()


def test_noise_of_a_size_off_the_16_value_blocks_is_drawn_per_iteration():
    """Encoders of 7 hidden units and 9 features: OGM-GE's noise is not a multiple of 16 values, so the engine
    draws it per iteration, and run k still equals the single environment."""
    ds = tiny()
    enc = {"strong": {"hidden": (7,), "out_dim": 9}, "weak": {"hidden": (7,), "out_dim": 9}}
    kwargs = dict(epochs=2, batch_budget=24, iters_per_epoch=6, learner_kwargs={"encoder_kwargs": enc})
    env = DUSEnv(dataset=ds, learner="ogm-ge", **kwargs)
    env.reset(seed=0)
    assert env.learner.noise_block(StepInfo(0, 0, 6, 0), 3) is None
    batched = batched_infos(ds, "ogm-ge", ACTIONS[:2], SEEDS[:2], **kwargs)
    for k, seed in enumerate(SEEDS[:2]):
        assert_same_run(single_infos(ds, "ogm-ge", ACTIONS[k], seed, **kwargs), batched[k])


def test_the_parameter_swap_equals_functional_call_with_tied_weights():
    """The engine's per-call parameter swap gives functional_call's outputs and gradients, on a
    model with a weight shared by two modules, and restores the model's own parameters."""
    from torch.func import functional_call, vmap

    from mmenv.engine.batched import _Swap

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    model[2].weight = model[0].weight
    own = {n: p for n, p in model.named_parameters()}
    stacked = {n: torch.randn(3, *p.shape, requires_grad=True) for n, p in own.items()}
    x = torch.randn(3, 5, 4)
    swap = _Swap(model)
    ours = vmap(lambda p, xi: swap(p, lambda m, v: m(v).square().sum(), xi))(stacked, x)
    ref = vmap(lambda p, xi: functional_call(model, p, (xi,)).square().sum())(stacked, x)
    torch.testing.assert_close(ours, ref)
    g1 = torch.autograd.grad(ours.sum(), list(stacked.values()))
    g2 = torch.autograd.grad(ref.sum(), list(stacked.values()))
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)
    assert all(p is own[n] for n, p in model.named_parameters())
    assert model[2].weight is model[0].weight



def test_the_fused_sgd_steps_equal_the_foreach_steps_bit_for_bit_whatever_k():
    """The engine steps tensors of whole 16-value blocks per run with torch's fused SGD kernel (the
    rest, here the 4-class heads' biases, with the foreach form). Trained on the default synthetic
    data, every run's parameters and momentum equal those of the foreach form for every tensor, bit
    for bit, and run k's values do not depend on K (3 or 7 runs in the batch)."""
    ds = make_dataset("synthetic")

    def trained(k_runs: int, foreach_only: bool):
        envs = [DUSEnv(dataset=ds, learner="baseline", epochs=2, iters_per_epoch=20) for _ in range(k_runs)]
        for k, env in enumerate(envs):
            env.reset(seed=k)
        engine = BatchedRuns(envs)
        engine._fused_device = not foreach_only
        engine.load()
        while envs[0].iteration < envs[0].total_iters:
            engine.step(list(range(k_runs)), [[20 + 3 * k, 44 - 3 * k] for k in range(k_runs)])
        assert engine.params is not None and engine.buffers is not None
        return engine.params, engine.buffers

    params, buffers = trained(3, False)
    assert any(BatchedRuns._fused_ok(t) for t in params.values())        # both forms are exercised
    assert not all(BatchedRuns._fused_ok(t) for t in params.values())
    for other_params, other_buffers in (trained(3, True), trained(7, False)):
        for name in params:
            k = params[name].shape[0]
            assert torch.equal(params[name], other_params[name][:k]), name
            assert torch.equal(buffers[name], other_buffers[name][:k]), name


class OldNoiseBlockOGM(OGMGELearner):
    """A plug-in that overrides noise_block in its first form, without ``out``."""

    name = "ogm-ge-old-noise-block"

    def noise_block(self, info, n):  # type: ignore[override]
        return super().noise_block(info, n)


def test_a_noise_block_override_without_out_still_runs_batched():
    ds = tiny()
    kwargs = dict(epochs=2, batch_budget=24, iters_per_epoch=6)
    envs = [DUSEnv(dataset=ds, learner=OldNoiseBlockOGM(), **kwargs) for _ in SEEDS[:2]]
    for env, seed in zip(envs, SEEDS[:2]):
        env.reset(seed=seed)
    engine = BatchedRuns(envs)
    engine.load()
    block = engine._noise_block([env.learner for env in envs], StepInfo(0, 0, 6, 0), 3)
    assert block is not None and block.shape[:2] == (2, 3)
    refs = [DUSEnv(dataset=ds, learner="ogm-ge", **kwargs) for _ in SEEDS[:2]]
    for env, seed in zip(refs, SEEDS[:2]):
        env.reset(seed=seed)
    expected = [env.learner.noise_block(StepInfo(0, 0, 6, 0), 3) for env in refs]
    assert torch.equal(block, torch.stack(expected))
