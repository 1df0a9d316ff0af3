"""The benchmark environment (mmenv/DUSBench-v0) and agents trained across training runs."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from mmenv.agents import ReinforcePolicy, make_policy, run_policy
from mmenv.agents.across_runs import (
    TRAIN_SEED_MIN,
    MultiInstanceEnv,
    TrainedAgent,
    bench_env,
    train_across_runs,
)

import mmenv
from mmenv import DUSEnv

TINY = {"dataset": "synthetic", "dataset_kwargs": {"n_train": 96, "n_val": 48, "n_test": 64},
        "learner": "baseline", "epochs": 2, "batch_budget": 16}
# A cheap instance with known headroom: with 3 short epochs the weak modality cannot be
# learned in time, so less of it is better (fixed weak share 0.2 / 0.5 / 0.8 -> fused test
# accuracy 0.80 / 0.79 / 0.57 and validation-accuracy return 0.56 / 0.54 / 0.30, 3 seeds).
SHORT = {"dataset": "synthetic", "dataset_kwargs": {"n_train": 300, "n_val": 100, "n_test": 300},
         "learner": "baseline", "epochs": 3, "batch_budget": 32}


def play(env, weak_shares, seed=0):
    obs, info = env.reset(seed=seed)
    out = [(obs, None, info)]
    for w in weak_shares:
        obs, reward, terminated, truncated, info = env.step(env.unwrapped.proportions_to_action([1 - w, w]))
        out.append((obs, reward, info))
        if terminated or truncated:
            break
    return out


# ---------------------------------------------------------------------- the environment
def test_bench_env_spaces_for_each_observation_and_reward():
    for reward in ("val-acc-gain", "final-val-acc", "dus"):
        paper = bench_env(TINY, reward=reward)
        assert paper.observation_space == gym.spaces.Box(0.0, 1.0, (2,), np.float32)
        ext = bench_env(TINY, observation="extended", reward=reward)
        assert ext.observation_space.shape == (9,)
        assert ext.get_wrapper_attr("observation_names") == [
            "discrepancy/strong", "discrepancy/weak", "progress", "proportion/strong", "proportion/weak",
            "train_loss/strong", "train_loss/weak", "train_accuracy/strong", "train_accuracy/weak"]
        assert ext.action_space == gym.spaces.Box(0.0, 1.0, (2,), np.float32)
        for env in (paper, ext):
            obs, _ = env.reset(seed=0)
            assert env.observation_space.contains(obs)
    # The registered id builds the same thing; DUS-v0 stays the paper's.
    env = gym.make(mmenv.BENCH_ENV_ID, observation="extended", **TINY)
    assert env.observation_space.shape == (9,)
    assert gym.make(mmenv.ENV_ID, **TINY).unwrapped.reward_fn.__name__ == "dus_reward"


def test_bad_instances_and_settings_are_rejected():
    with pytest.raises(ValueError, match="unknown instance key.*'epoch'"):
        bench_env({**TINY, "epoch": 3})
    with pytest.raises(ValueError, match="benchmark sets the reward"):
        bench_env({**TINY, "reward": "dus"})
    with pytest.raises(ValueError, match="unknown observation"):
        bench_env(TINY, observation="full")
    with pytest.raises(ValueError, match="unknown benchmark reward"):
        bench_env(TINY, reward="accuracy")
    with pytest.raises(ValueError, match="validation split"):
        bench_env({**TINY, "dataset_kwargs": {"n_train": 96, "n_val": 0, "n_test": 64}})
    with pytest.raises(ValueError, match="same number of modalities"):
        MultiInstanceEnv([TINY, {**TINY, "dataset_kwargs": {**TINY["dataset_kwargs"], "num_modalities": 3}}])
    with pytest.raises(ValueError, match="unknown across-run algorithm"):
        train_across_runs("dqn", [TINY], runs=1, seed=0)


def test_extended_observation_values():
    env = bench_env(TINY, observation="extended")
    base = env.unwrapped
    steps = play(env, [0.3, 0.7])
    obs0 = steps[0][0]
    # Before the first action: progress 0, Algorithm 1's INIT proportions, chance loss and accuracy.
    np.testing.assert_allclose(obs0[2:], [0, 0.5, 0.5, 1, 1, 0.25, 0.25], atol=1e-7)
    for t, (obs, _, info) in enumerate(steps[1:], start=1):
        assert info["iteration"] == t * base.iters_per_epoch
        np.testing.assert_allclose(obs[:2], info["discrepancy"], rtol=1e-6)
        assert obs[2] == pytest.approx(t / 2)
        np.testing.assert_allclose(obs[3:5], info["proportions"], rtol=1e-6)
        np.testing.assert_allclose(obs[3:5], [0.7, 0.3] if t == 1 else [0.3, 0.7], atol=1e-6)
        loss = [info["train_loss"][m] / math.log(4) for m in ("strong", "weak")]
        np.testing.assert_allclose(obs[5:7], loss, rtol=1e-5)
        np.testing.assert_allclose(obs[7:9], [info["train_accuracy"][m] for m in ("strong", "weak")], rtol=1e-6)
    # A learner without per-modality losses (OGM-GE) reports its fused loss for each modality.
    env = bench_env({**TINY, "learner": "ogm-ge"}, observation="extended")
    obs, _, info = play(env, [0.5])[1]
    assert "strong" not in info["train_loss"]
    np.testing.assert_allclose(obs[5:7], [info["train_loss"]["fused"] / math.log(4)] * 2, rtol=1e-5)


def test_paper_observation_and_rewards_match_the_paper_env():
    shares = [0.3, 0.6]
    ref = DUSEnv(**TINY, reward="val-acc-gain")
    ref_steps = play(ref, shares)
    dus = DUSEnv(**TINY)
    dus_steps = play(dus, shares)
    gain = play(bench_env(TINY), shares)
    final = play(bench_env(TINY, reward="final-val-acc"), shares)
    eq5 = play(bench_env(TINY, reward="dus"), shares)
    for t in range(1, 3):
        np.testing.assert_array_equal(gain[t][0], ref_steps[t][0])         # the paper's observation
        assert gain[t][1] == pytest.approx(ref_steps[t][1], abs=1e-9)      # the env's own val-acc-gain
        assert eq5[t][1] == pytest.approx(dus_steps[t][1])                  # Eq. 5
        assert gain[t][2]["reward_dus"] == pytest.approx(dus_steps[t][1])  # always reported
    assert final[1][1] == 0.0
    assert final[2][1] == pytest.approx(gain[2][2]["val_accuracy"])
    # The episode's val-acc-gain return is the final validation accuracy minus the initial one.
    fresh = bench_env(TINY)
    fresh.reset(seed=0)
    initial = fresh.unwrapped.evaluate("val")["fused"]["accuracy"]
    assert gain[1][1] + gain[2][1] == pytest.approx(gain[2][2]["val_accuracy"] - initial)


def test_bench_env_seed_is_used_by_the_first_reset():
    a = bench_env(TINY, seed=7)
    b = bench_env(TINY)
    np.testing.assert_array_equal(a.reset()[0], b.reset(seed=7)[0])


# ---------------------------------------------------------------------- training across runs
@pytest.mark.parametrize("algo", ["reinforce", "ppo", "sac", "td3"])
def test_train_across_runs_consumes_exactly_runs(algo, tmp_path):
    instances = [TINY, {**TINY, "learner": "mla"}]
    agent = train_across_runs(algo, instances, runs=5, seed=0, observation="extended")
    assert agent.runs == 5 and len(agent.history) == 5
    assert agent.algo == algo and agent.observation == "extended"
    for run in agent.history:
        assert run["instance"] in (0, 1) and run["seed"] >= TRAIN_SEED_MIN and len(run["proportions"]) == 2
    rec = run_policy(bench_env(TINY, observation=agent.observation), agent.policy, seeds=[0], learn=False)[0]
    assert rec.steps == 2 and rec.test is not None
    schedule = agent.schedule(TINY, seeds=[0, 1])
    assert schedule.shape == (2, 2, 2)
    np.testing.assert_allclose(schedule.sum(-1), 1.0)
    # Save and load through the package's save path; make_policy reads the file too.
    path = agent.save(tmp_path / ("agent.pt" if algo == "reinforce" else "agent.zip"))
    loaded = TrainedAgent.load(path)
    assert loaded.observation == "extended" and loaded.runs == 5 and loaded.history == agent.history
    np.testing.assert_allclose(loaded.schedule(TINY, seeds=[0, 1]), schedule)
    make_policy(str(path))


def test_curve_points_and_paper_observation():
    scores = iter(range(100))
    agent = train_across_runs("reinforce", [TINY], runs=5, seed=1, curve_every=2,
                              curve_fn=lambda policy: float(next(scores)), episodes_per_update=1)
    assert [r for r, _ in agent.curve] == [0, 2, 4, 5]
    assert [v for _, v in agent.curve] == [0.0, 1.0, 2.0, 3.0]
    assert isinstance(agent.policy, ReinforcePolicy) and agent.policy.deterministic
    assert agent.policy.net.obs_dim == 2


def test_same_seed_same_agent():
    a = train_across_runs("reinforce", [TINY], runs=4, seed=3)
    b = train_across_runs("reinforce", [TINY], runs=4, seed=3)
    c = train_across_runs("reinforce", [TINY], runs=4, seed=4)
    assert a.history == b.history and a.history != c.history
    obs = np.array([0.3, 0.5], np.float32)
    np.testing.assert_array_equal(a.policy.act(obs, {}), b.policy.act(obs, {}))
    p = train_across_runs("ppo", [TINY], runs=3, seed=3)
    q = train_across_runs("ppo", [TINY], runs=3, seed=3)
    assert p.history == q.history


@pytest.mark.subprocess
def test_reinforce_workers_do_not_change_the_result():
    a = train_across_runs("reinforce", [TINY, {**TINY, "learner": "mla"}], runs=4, seed=5, workers=1)
    b = train_across_runs("reinforce", [TINY, {**TINY, "learner": "mla"}], runs=4, seed=5, workers=2)
    assert a.history == b.history
    obs = np.array([0.3, 0.5], np.float32)
    np.testing.assert_allclose(a.policy.act(obs, {}), b.policy.act(obs, {}))


@pytest.mark.subprocess
def test_sb3_workers_run_in_processes():
    agent = train_across_runs("ppo", [TINY], runs=4, seed=0, workers=2)
    assert 4 <= agent.runs <= 5 and len(agent.history) == agent.runs


def test_reinforce_moves_the_share_towards_the_better_side():
    """On SHORT a smaller weak share is better; REINFORCE must learn to give the weak modality less.

    80 runs at lr 1e-2 (the preset's 3e-3 is tuned for the larger default instances):
    agent seeds 0, 1, 2 end at mean weak shares 0.34, 0.47, 0.37 from 0.5.
    """
    untrained = ReinforcePolicy(seed=0, deterministic=True, mode="episodic")
    before = run_policy(bench_env(SHORT), untrained, seeds=[0], learn=False)[0].proportions
    agent = train_across_runs("reinforce", [SHORT], runs=80, seed=0, lr=1e-2)
    after = float(agent.schedule(SHORT, seeds=[0])[0, :, 1].mean())
    np.testing.assert_allclose(np.asarray(before)[:, 1], 0.5, atol=1e-6)
    assert after < 0.45, f"the weak share went from 0.5 to {after:.3f}, not down"


# ---------------------------------------------------------------------- grouped (leave-one-out) REINFORCE
def test_group_advantages_are_leave_one_out_returns():
    """update_on_groups's advantages against a hand computation (gamma 1, no normalisation)."""
    policy = ReinforcePolicy(seed=0, mode="episodic", gamma=1.0)
    policy.build(2, 2)
    seen = {}
    policy._gradient_step = lambda obs, props, adv: seen.update(obs=obs, adv=adv)  # type: ignore[method-assign]
    obs, p = np.array([0.1, 0.2], np.float32), np.array([0.5, 0.5])
    rewards = [[1.0, 2.0], [0.0, 1.0], [3.0, 3.0]]          # returns G_0 = 3, 1, 6; G_1 = 2, 1, 3
    group = [[(obs, p, r) for r in rs] for rs in rewards]
    policy.update_on_groups([group], normalize=False)
    g0, g1 = np.array([3.0, 1.0, 6.0]), np.array([2.0, 1.0, 3.0])
    expected = []
    for i in range(3):
        others = [j for j in range(3) if j != i]
        expected += [g0[i] - g0[others].mean(), g1[i] - g1[others].mean()]
    np.testing.assert_allclose(seen["adv"], expected)
    assert seen["obs"].shape == (6, 2)
    policy.update_on_groups([group], normalize=True)
    np.testing.assert_allclose(seen["adv"], np.asarray(expected) / np.std(expected), rtol=1e-6)
    # A constant added to one group's returns (an easier instance, a luckier seed) changes nothing.
    shifted = [[(obs, p, r + 5.0) for r in rs] for rs in rewards]
    policy.update_on_groups([shifted, group], normalize=False)
    np.testing.assert_allclose(seen["adv"], expected + expected)
    with pytest.raises(mmenv.agents.PolicyError, match="at least two"):
        policy.update_on_groups([group[:1]])


def test_grouped_plan_shares_instance_and_seed_within_a_group():
    from mmenv.agents.across_runs import _reinforce_plan

    plan = _reinforce_plan(5, 14, seed=0, group=4)
    assert len(plan) == 12                                    # an incomplete last group is dropped
    for start in range(0, 12, 4):
        members = plan[start:start + 4]
        assert len({(i, s) for i, s, _ in members}) == 1      # same instance, same environment seed
        assert len({x for _, _, x in members}) == 4           # different action samples
        assert members[0][1] >= TRAIN_SEED_MIN
    assert _reinforce_plan(5, 6, seed=0, group=1) == _reinforce_plan(5, 6, seed=0, group=1)
    with pytest.raises(mmenv.errors.InvalidArgumentError, match="group_size"):
        train_across_runs("reinforce", [TINY], runs=4, seed=0, episodes_per_update=3, group_size=2)


def test_grouped_reinforce_trains_and_is_reproducible():
    kw = dict(runs=8, seed=1, episodes_per_update=4, group_size=2)
    a = train_across_runs("reinforce", [TINY, {**TINY, "learner": "mla"}], **kw)
    b = train_across_runs("reinforce", [TINY, {**TINY, "learner": "mla"}], **kw)
    assert a.runs == 8 and a.history == b.history
    seeds = [h["seed"] for h in a.history]
    assert seeds[0] == seeds[1] and seeds[2] == seeds[3] and seeds[0] != seeds[2]
    assert a.history[0]["proportions"] != a.history[1]["proportions"]
    assert a.policy.num_updates == 2


# ---------------------------------------------------------------------- evolution strategies (algo="es")
def test_es_pairs_share_instance_and_seed_and_are_reproducible():
    from mmenv.agents.es import es_plan

    plan = es_plan(3, generations=2, population=4, seed=0)
    assert len(plan) == 2 and all(0 <= i < 3 and len(seeds) == 4 for i, seeds in plan)
    assert all(s >= TRAIN_SEED_MIN for _, seeds in plan for s in seeds)
    kw = dict(runs=9, seed=2, observation="modal", population=2)
    a = train_across_runs("es", [TINY, {**TINY, "learner": "mla"}], **kw)
    b = train_across_runs("es", [TINY, {**TINY, "learner": "mla"}], **kw)
    assert a.runs == 8 and a.history == b.history           # 2 generations of 2 pairs
    for first, second in zip(a.history[::2], a.history[1::2]):   # a pair: same instance and seed
        assert (first["instance"], first["seed"]) == (second["instance"], second["seed"])
    assert a.history[0]["proportions"] != a.history[1]["proportions"]  # +sigma and -sigma act differently
    assert a.algo == "es" and a.policy.deterministic
    obs = np.random.default_rng(0).random(21).astype(np.float32)
    np.testing.assert_array_equal(a.policy.act(obs, {}), b.policy.act(obs, {}))
    with pytest.raises(mmenv.errors.InvalidArgumentError, match="runs >= 2"):
        train_across_runs("es", [TINY], runs=3, seed=0, observation="modal", population=2)


def test_es_agent_saves_and_plays_through_make_policy(tmp_path):
    agent = train_across_runs("es", [TINY], runs=4, seed=0, observation="modal", population=2)
    path = agent.save(tmp_path / "es.pt")
    loaded = make_policy(str(path), deterministic=True)
    obs = np.random.default_rng(1).random(31).astype(np.float32)       # three modalities: any m
    np.testing.assert_array_equal(loaded.act(obs, {}), agent.policy.act(obs, {}))
    assert loaded.card.algo == "es"


def _same_histories(a, b):
    assert len(a.history) == len(b.history)
    for x, y in zip(a.history, b.history):
        assert (x["generation"], x["instance"], x["seed"]) == (y["generation"], y["instance"], y["seed"])
        np.testing.assert_allclose(x["proportions"], y["proportions"], atol=1e-5)
        assert x["return"] == pytest.approx(y["return"], abs=1e-5)
        assert x["test_accuracy"] == pytest.approx(y["test_accuracy"], abs=1e-6)


@pytest.mark.parametrize("learner", ["ogm-ge", "pmr"])
def test_es_batched_generations_equal_one_run_at_a_time(learner):
    """The batched engine with the benchmark observation rebuilt per run (ObservedPolicy) plays a
    generation as the wrapped environment does, run by run: same returns, proportions, agent."""
    kw = dict(runs=8, seed=3, observation="modal", population=2)
    inst = {**TINY, "learner": learner, "epochs": 3, "step_every": "epoch"}
    a = train_across_runs("es", [inst], batched=False, **kw)
    b = train_across_runs("es", [inst], batched=True, **kw)
    _same_histories(a, b)
    assert len({tuple(np.round(np.asarray(h["proportions"]).ravel(), 4)) for h in a.history}) > 1
    obs = np.random.default_rng(0).random(21).astype(np.float32)
    np.testing.assert_allclose(a.policy.act(obs, {}), b.policy.act(obs, {}), atol=1e-5)


@pytest.mark.parametrize("observation", ["extended", "modal"])
def test_grouped_reinforce_batched_updates_equal_one_run_at_a_time(observation):
    """Grouped REINFORCE plays each group (one instance, one policy) as one batch of the engine;
    every run samples from its own seeded generator, so the histories (returns, Eq. 5 returns,
    proportions) and the trained policy equal the runs played one at a time."""
    kw = dict(runs=16, seed=2, observation=observation, episodes_per_update=8, group_size=4, lr=0.05)
    inst = {**TINY, "learner": "ogm-ge", "epochs": 3, "step_every": "epoch"}
    a = train_across_runs("reinforce", [inst, {**inst, "learner": "pmr"}], batched=False, **kw)
    b = train_across_runs("reinforce", [inst, {**inst, "learner": "pmr"}], batched=True, **kw)
    assert len(a.history) == len(b.history) == 16
    for x, y in zip(a.history, b.history):
        assert (x["instance"], x["seed"]) == (y["instance"], y["seed"])
        np.testing.assert_allclose(x["proportions"], y["proportions"], atol=1e-5)
        assert x["return"] == pytest.approx(y["return"], abs=1e-5)
        assert x["reward_dus"] == pytest.approx(y["reward_dus"], abs=1e-5)
        assert x["test_accuracy"] == pytest.approx(y["test_accuracy"], abs=1e-6)
    assert len({tuple(np.round(np.asarray(h["proportions"]).ravel(), 4)) for h in a.history}) > 4
    for x, y in zip(a.policy.weights().values(), b.policy.weights().values()):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)


def test_grouped_reinforce_plays_an_instance_the_engine_cannot_train_one_run_at_a_time():
    """Adam is outside the engine: such an instance's group is played run by run on the worker's
    own environment, with exactly the results of batched=False."""
    inst = {**TINY, "learner_kwargs": {"optimizer": "adam", "lr": 1e-3}}
    kw = dict(runs=8, seed=1, observation="extended", episodes_per_update=8, group_size=4)
    a = train_across_runs("reinforce", [inst], batched=False, **kw)
    b = train_across_runs("reinforce", [inst], batched=True, **kw)
    assert [h["return"] for h in a.history] == [h["return"] for h in b.history]
    assert [h["proportions"] for h in a.history] == [h["proportions"] for h in b.history]


@pytest.mark.subprocess
def test_grouped_reinforce_batched_on_workers_equals_one_process():
    kw = dict(runs=8, seed=4, observation="extended", episodes_per_update=8, group_size=4, lr=0.05)
    a = train_across_runs("reinforce", [TINY, {**TINY, "learner": "ogm-ge"}], workers=1, batched=False, **kw)
    b = train_across_runs("reinforce", [TINY, {**TINY, "learner": "ogm-ge"}], workers=2, batched=True, **kw)
    for x, y in zip(a.history, b.history):
        assert (x["instance"], x["seed"]) == (y["instance"], y["seed"])
        assert x["return"] == pytest.approx(y["return"], abs=1e-5)
        np.testing.assert_allclose(x["proportions"], y["proportions"], atol=1e-5)


@pytest.mark.subprocess
def test_es_workers_do_not_change_the_result():
    kw = dict(runs=8, seed=5, observation="modal", population=2)
    a = train_across_runs("es", [TINY], workers=1, **kw)
    b = train_across_runs("es", [TINY], workers=2, **kw)
    _same_histories(a, b)
    c = train_across_runs("es", [TINY], workers=2, batched=False, **kw)
    _same_histories(a, c)


def test_es_and_grouped_reinforce_refuse_bad_settings_before_training():
    for bad in ({"population": 1}, {"population": True}, {"sigma": "0.5"}, {"lr": float("inf")}, {"lr": True},
                {"batched": "no"}):
        with pytest.raises(mmenv.errors.InvalidArgumentError):
            train_across_runs("es", [TINY], runs=8, seed=0, observation="modal", **bad)
    for bad in ({"group_size": True}, {"group_size": 2.0}, {"group_size": 4, "episodes_per_update": 4},
                {"group_size": 2, "normalize_advantages": "false"}, {"batched": "yes"}):
        with pytest.raises(mmenv.errors.InvalidArgumentError):
            train_across_runs("reinforce", [TINY], runs=3, seed=0, **{"episodes_per_update": 2, **bad})
