"""One agent framework: instances, presets, the saved-agent card, the trainer registry, the
instance-cycling environment (mmenv/DUSBench-v0 with instances=...)."""

from __future__ import annotations

import json
import zipfile

import gymnasium as gym
import numpy as np
import pytest
from mmenv.agents import make_policy, run_policy
from mmenv.agents.across_runs import (
    PRESETS,
    TRAIN_SEED_MIN,
    TrainedAgent,
    bench_env,
    register_trainer,
    train_across_runs,
)
from mmenv.agents.assembly import make_run_env
from mmenv.agents.policy import PolicyError
from mmenv.agents.presets import PRESETS as ALL_PRESETS
from mmenv.agents.presets import preset
from mmenv.agents.saved import BENCH_ENV_ID, PAPER_ENV_ID, read_card
from mmenv.agents.sb3 import SB3_DEFAULTS, make_sb3_agent

import mmenv
from mmenv.cycling import InstanceCyclingEnv
from mmenv.instances import Instance, InstanceError, as_instance
from mmenv.wrappers import DUSBench

TINY = {"dataset": "synthetic", "dataset_kwargs": {"n_train": 96, "n_val": 48, "n_test": 64},
        "learner": "baseline", "epochs": 2, "batch_budget": 16}
A = Instance(name="a", **TINY)
B = Instance(name="b", **{**TINY, "learner": "mla"})
C = Instance(name="c", **{**TINY, "dataset_kwargs": {**TINY["dataset_kwargs"], "seed": 3}})


# ---------------------------------------------------------------------- one instance type
def test_one_instance_type_for_sets_envs_and_training():
    from mmenv.experiments.instances import Instance as SetInstance
    from mmenv.experiments.instances import load_instance_set

    assert SetInstance is Instance
    inst = load_instance_set("synthetic-imbalance").train[0]
    assert isinstance(inst, Instance) and as_instance(inst) is inst
    # A mapping becomes the same typed instance; its env kwargs round-trip.
    again = as_instance(inst.env_kwargs(), name=inst.name)
    assert again.env_kwargs() == inst.env_kwargs() and again.task_key() == inst.task_key()
    with pytest.raises(InstanceError, match="did you mean 'epochs'"):
        as_instance({**TINY, "epoch": 3})
    with pytest.raises(InstanceError, match="action_space"):
        as_instance({**TINY, "action_space": "softmax"})


# ---------------------------------------------------------------------- one preset table
def test_presets_come_from_one_table():
    for algo in ("reinforce", "ppo", "sac", "td3"):
        assert PRESETS[algo] == ALL_PRESETS[algo]["across-runs"]
    assert SB3_DEFAULTS["ppo"] == ALL_PRESETS["ppo"]["within-run"]
    # Keys that are not constructor arguments are translated by make_sb3_agent, not passed on.
    assert "action_noise_sigma" in ALL_PRESETS["td3"]["within-run"] and "action_noise_sigma" not in SB3_DEFAULTS["td3"]
    env = gym.make(mmenv.ENV_ID, **TINY)
    model = make_sb3_agent("ppo", env, seed=0, setting="across-runs")
    assert model.n_steps == 20 and model.learning_rate == 1e-3
    assert float(model.policy.log_std.detach()[0]) == -1.0          # log_std_init reached the policy
    td3 = make_sb3_agent("td3", env, seed=0)
    np.testing.assert_allclose(td3.action_noise._sigma, 0.1)       # the within-run preset's sigma
    assert preset("td3", "across-runs")["action_noise_sigma"] == 0.2
    with pytest.raises(PolicyError, match="unknown preset setting"):
        preset("ppo", "sometimes")


# ---------------------------------------------------------------------- the trainer registry
def test_trainer_registry_dispatches_on_algo():
    seen = {}

    def constant_trainer(instances, *, runs, seed, observation, reward, **options):
        from mmenv.agents import make_policy as mk

        seen.update(instances=instances, runs=runs, options=options)
        return TrainedAgent(algo="my-constant", policy=mk("schedule", shares=[0.7], modality=1),
                            observation=observation, reward=reward, seed=seed, runs=runs)

    register_trainer("my-constant", constant_trainer, overwrite=True)
    agent = train_across_runs("my-constant", [TINY], runs=3, seed=0, share=0.7)
    assert seen["runs"] == 3 and seen["options"]["share"] == 0.7
    assert all(isinstance(i, Instance) for i in seen["instances"])   # mappings arrive typed
    assert agent.train_instances == ["train-0"] and agent.policy.card.algo == "my-constant"
    with pytest.raises(PolicyError, match="unknown across-run algorithm 'dqm'.*my-constant"):
        train_across_runs("dqm", [TINY], runs=1, seed=0)


# ---------------------------------------------------------------------- the saved-agent format
@pytest.mark.parametrize("algo", ["reinforce", "ppo"])
def test_saved_agent_card_is_read_completely_everywhere(algo, tmp_path):
    agent = train_across_runs(algo, [A, B], runs=3, seed=0, observation="extended", reward="final-val-acc")
    path = agent.save(tmp_path / ("agent.pt" if algo == "reinforce" else "agent.zip"))
    card = read_card(path)
    assert (card.algo, card.env_id, card.observation, card.reward) == (algo, BENCH_ENV_ID, "extended",
                                                                       "final-val-acc")
    assert card.training["runs"] == 3 and card.training["train_instances"] == ["a", "b"]
    assert card.num_modalities == 2 and card.source == "saved"
    # make_policy reads the card; the evaluate route builds the environment the agent was trained in.
    policy = make_policy(str(path), deterministic=True)
    assert policy.card == card
    env = make_run_env({**TINY, "reward": "dus"}, policy=policy)
    assert isinstance(env, DUSBench) and env.observation_mode == "extended" and env.reward_mode == "final-val-acc"
    rec = run_policy(env, policy, seeds=[0], learn=False)[0]
    expect = run_policy(bench_env(TINY, observation="extended", reward="final-val-acc"), agent.policy, seeds=[0],
                        learn=False)[0]
    assert rec.proportions == expect.proportions
    # TrainedAgent.load (the bench's loader) restores the training record.
    loaded = TrainedAgent.load(path)
    assert loaded.history == agent.history and loaded.reward == "final-val-acc"


def test_plain_sb3_zip_card_is_inferred(tmp_path):
    env = gym.make(BENCH_ENV_ID, observation="modal", **TINY)
    model = make_sb3_agent("ppo", env, seed=0, n_steps=4, batch_size=4)
    model.save(tmp_path / "plain.zip")
    with zipfile.ZipFile(tmp_path / "plain.zip") as zf:
        assert "mmenv.json" not in zf.namelist()
    card = read_card(tmp_path / "plain.zip")
    assert (card.env_id, card.observation, card.action_space, card.source) == (BENCH_ENV_ID, "modal", "softmax",
                                                                               "inferred")
    paper = make_sb3_agent("ppo", gym.make(mmenv.ENV_ID, **TINY), seed=0, n_steps=4, batch_size=4)
    paper.save(tmp_path / "paper.zip")
    assert read_card(tmp_path / "paper.zip").env_id == PAPER_ENV_ID


def test_cards_of_earlier_files_are_read(tmp_path):
    """Files written before the card existed (across-run metadata of their own) keep loading."""
    agent = train_across_runs("ppo", [TINY], runs=2, seed=0, observation="extended")
    path = tmp_path / "old.zip"
    agent.policy.model.save(path)
    old = {"format": "mmenv-across-runs-v1", "algo": "ppo", "observation": "extended", "reward": "val-acc-gain",
           "seed": 0, "runs": 2, "curve": [], "history": agent.history, "preset": {}, "wall_time_s": 1.0}
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("mmenv_across_runs.json", json.dumps(old))
    loaded = TrainedAgent.load(path)
    assert loaded.observation == "extended" and loaded.history == agent.history and loaded.runs == 2


# ---------------------------------------------------------------------- the instance-cycling env
def test_cycling_env_plays_instances_in_turn_with_seeded_runs():
    env = gym.make(BENCH_ENV_ID, instances=[A, B, C], seed=5)
    assert isinstance(env.unwrapped, InstanceCyclingEnv)
    names = []
    for _ in range(4):
        _, info = env.reset()
        names.append(info["instance_name"])
    assert names == ["a", "b", "c", "a"]
    # reset(seed=s) restarts the cycle and the seed stream: the same seed, the same runs.
    def runs(e, seed):
        out = []
        _, info = e.reset(seed=seed)
        for _ in range(3):
            done, info_end = False, None
            while not done:
                _, _, term, trunc, info_end = e.step(e.action_space.sample() * 0)
                done = term or trunc
            out.append((info_end["run"]["instance"], info_end["run"]["seed"]))
            e.reset()
        return out
    first, again = runs(env.unwrapped, 9), runs(env.unwrapped, 9)
    assert first == again and [i for i, _ in first] == [0, 1, 2]
    assert all(s >= TRAIN_SEED_MIN for _, s in first) and len({s for _, s in first}) == 3
    rand = InstanceCyclingEnv([A, B, C], order="random", seed=1)
    drawn = [rand.reset()[1]["instance"] for _ in range(12)]
    assert set(drawn) == {0, 1, 2} and drawn != [0, 1, 2] * 4


def test_cycling_env_by_instance_set_path_and_refusals(tmp_path):
    import yaml

    spec = {"name": "tiny", "defaults": {"dataset": "synthetic", "dataset_kwargs": TINY["dataset_kwargs"],
                                         "learner": "baseline", "env": {"epochs": 2, "batch_budget": 16}},
            "train": [{"name": "t1", "dataset_kwargs": {"seed": 1}}, {"name": "t2", "dataset_kwargs": {"seed": 2}}],
            "test": [{"name": "x1", "dataset_kwargs": {"seed": 7}}]}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(spec))
    env = gym.make(BENCH_ENV_ID, instances=str(tmp_path / "tiny.yaml"), split="train")
    assert [i.name for i in env.unwrapped.instances] == ["t1", "t2"]
    assert env.unwrapped.action_space_name == "softmax"   # the registered id's default, as DUS-v0's
    test = InstanceCyclingEnv(tmp_path / "tiny.yaml", split="test")
    assert [i.name for i in test.instances] == ["x1"] and test.action_space_name == "unit"
    with pytest.raises(ValueError, match="same number of modalities"):
        InstanceCyclingEnv([A, {**TINY, "dataset_kwargs": {**TINY["dataset_kwargs"], "num_modalities": 3}}])
    with pytest.raises(ValueError, match="order must be"):
        InstanceCyclingEnv([A], order="shuffled")
    with pytest.raises(ValueError, match="no instances"):
        InstanceCyclingEnv([])


def test_plain_sb3_ppo_trains_across_instances_and_loads_through_make_policy(tmp_path):
    """Issue: any SB3 loop trains across runs with no mmenv-specific code; the zip plays in the package."""
    from stable_baselines3 import PPO

    env = gym.make("mmenv/DUSBench-v0", instances=[A, B, C], observation="modal", seed=0)
    model = PPO("MlpPolicy", env, n_steps=20, batch_size=20, n_epochs=2, seed=0, device="cpu")
    model.learn(total_timesteps=200)          # 100 training runs of two epochs, cycling a, b, c
    model.save(tmp_path / "ppo-across.zip")
    env.close()
    policy = make_policy(str(tmp_path / "ppo-across.zip"))
    assert (policy.card.observation, policy.card.action_space) == ("modal", "softmax")
    # The bench's route: TrainedAgent.load, then play each test instance in bench_env with its observation.
    agent = TrainedAgent.load(tmp_path / "ppo-across.zip")
    test = {**TINY, "dataset_kwargs": {**TINY["dataset_kwargs"], "seed": 11}}
    rec = run_policy(bench_env(test, observation=agent.observation), agent.policy, seeds=[0, 1], learn=False)
    assert all(r.steps == 2 and r.test is not None for r in rec)
    # The policy maps its actions like the softmax space it was trained in.
    obs = env.observation_space.sample()
    from mmenv.sampling import action_to_proportions

    action = model.predict(obs, deterministic=True)[0]
    np.testing.assert_allclose(agent.policy.act(obs, {}), action_to_proportions(np.clip(action, -1, 1), 2,
                                                                                 space="softmax"), atol=1e-6)
