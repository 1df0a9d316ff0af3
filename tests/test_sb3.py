"""SB3 presets: each algorithm learns a few steps, logs env info, saves, loads, and acts."""

import numpy as np
import pytest
from mmenv.agents import PolicyError, make_policy, run_policy
from mmenv.agents.sb3 import (
    SB3_ALGOS,
    SB3Policy,
    learn,
    load_sb3_model,
    make_sb3_agent,
    make_sb3_env,
    read_sb3_metadata,
    save_sb3_model,
)

from mmenv import DUSEnv
from mmenv.datasets import make_synthetic

DATA = dict(n_train=200, n_val=50, n_test=100)


def tiny_sb3_env():
    return make_sb3_env(dataset=make_synthetic(**DATA), epochs=2, batch_budget=16)


def scalar_tags(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for events in log_dir.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    return tags


@pytest.mark.parametrize("algo", SB3_ALGOS)
def test_preset_learns_saves_loads_and_runs(algo, tmp_path):
    env = tiny_sb3_env()
    model = make_sb3_agent(algo, env, tensorboard_log=str(tmp_path / "tb"), seed=0)
    learn(model, total_timesteps=8, progress_bar=(algo == "ppo"))
    assert model.num_timesteps >= 8
    path = tmp_path / f"{algo}.zip"
    save_sb3_model(model, path)
    assert read_sb3_metadata(path)["algo"] == algo and read_sb3_metadata(path)["action_space"] == "softmax"

    policy = make_policy(str(path))
    assert isinstance(policy, SB3Policy) and policy.name == type(model).__name__.lower()
    assert type(policy.model) is type(model)
    # The saved model acts on a unit-space environment through the runner.
    unit_env = DUSEnv(dataset=make_synthetic(**DATA), epochs=2, batch_budget=16)
    rec = run_policy(unit_env, policy, seeds=[0])[0]
    assert rec.steps == 2 and all(sum(b) == 16 for b in rec.batch_sizes)
    assert all(sum(p) == pytest.approx(1.0) for p in rec.proportions)
    # Deterministic: the same observation gives the same proportions (from the same episode start).
    obs = np.array([0.3, 0.1], np.float32)
    first = (policy.reset(unit_env), policy.act(obs, {}))[1]
    policy.reset(unit_env)
    np.testing.assert_array_equal(first, policy.act(obs, {}))
    # A bare SB3 model also runs.
    assert run_policy(unit_env, model, seeds=[0])[0].batch_sizes == rec.batch_sizes


def test_info_is_logged_to_tensorboard(tmp_path):
    env = tiny_sb3_env()
    model = make_sb3_agent("a2c", env, tensorboard_log=str(tmp_path / "tb"), seed=0, n_steps=2)
    learn(model, total_timesteps=4)
    tags = scalar_tags(tmp_path / "tb")
    for tag in ("env/batch_size/strong", "env/proportion/weak", "env/discrepancy/weak",
                "test/fused/accuracy", "test/weak/macro_f1"):
        assert tag in tags, sorted(tags)


def test_sb3_policy_maps_actions_back_to_proportions():
    env = tiny_sb3_env()
    model = make_sb3_agent("td3", env, seed=0)
    model.predict = lambda obs, **_: (np.array([1.0, -0.5], np.float32), None)
    # Softmax space (make_sb3_env's default): p = softmax(ln(20) / 2 * a).
    z = np.exp(np.log(20) / 2 * np.array([1.0, -0.5]))
    np.testing.assert_allclose(SB3Policy(model).act(np.zeros(2, np.float32), {}), z / z.sum())
    # Symmetric action a -> (a + 1) / 2, then normalised.
    pol = SB3Policy(model, action_space="symmetric")
    np.testing.assert_allclose(pol.act(np.zeros(2, np.float32), {}), [0.8, 0.2])


def test_unit_action_space_is_rejected_with_the_fix():
    env = DUSEnv(dataset=make_synthetic(**DATA), epochs=2, batch_budget=16)
    with pytest.raises(PolicyError, match="action_space='softmax'"):
        make_sb3_agent("ppo", env)
    with pytest.raises(PolicyError, match="unknown SB3 algorithm"):
        make_sb3_agent("dqn2", tiny_sb3_env())
    with pytest.raises(PolicyError, match="DQN needs a discrete action space"):
        make_sb3_agent("dqn", tiny_sb3_env())


def test_overrides_win_and_algo_is_read_from_the_file(tmp_path):
    model = make_sb3_agent("ppo", tiny_sb3_env(), n_steps=4, batch_size=4, learning_rate=3e-4)
    assert model.n_steps == 4 and model.batch_size == 4 and model.learning_rate == 3e-4
    model.save(tmp_path / "m.zip")
    assert type(load_sb3_model(tmp_path / "m.zip")).__name__ == "PPO"


def _plain_zip(algo, tmp_path):
    """A zip written by plain model.save (no mmenv metadata)."""
    model = make_sb3_agent(algo, tiny_sb3_env(), seed=0)
    path = tmp_path / f"plain_{algo}.zip"
    model.save(path)
    return model, path


@pytest.mark.parametrize("algo", SB3_ALGOS)
def test_plain_model_save_is_recognised_by_its_policy_class(algo, tmp_path):
    """Regression: CrossQ zips failed with an AttributeError, ARS asked for algo=, TQC loaded by luck."""
    model, path = _plain_zip(algo, tmp_path)
    meta = read_sb3_metadata(path)
    assert meta["source"] == "policy_class" and meta["algo"] == algo
    loaded = load_sb3_model(path)
    assert type(loaded) is type(model)
    obs = np.array([0.2, 0.1], np.float32)
    np.testing.assert_allclose(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0],
                               atol=1e-6)


def test_algo_argument_overrides_and_discrete_agents_are_named(tmp_path):
    import gymnasium as gym
    from stable_baselines3 import DQN

    _, path = _plain_zip("a2c", tmp_path)
    assert type(load_sb3_model(path, algo="A2C")).__name__ == "A2C"
    dqn = DQN("MlpPolicy", gym.make("CartPole-v1"), device="cpu", learning_starts=0, buffer_size=100)
    dqn.save(tmp_path / "dqn.zip")
    with pytest.raises(PolicyError, match="DQN agent, which needs a discrete action space"):
        load_sb3_model(tmp_path / "dqn.zip")
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(PolicyError, match="not a saved SB3 model"):
        load_sb3_model(tmp_path / "junk.zip")


def test_recurrent_policy_keeps_its_state_within_an_episode(tmp_path):
    model = make_sb3_agent("recurrentppo", tiny_sb3_env(), seed=0)
    path = save_sb3_model(model, tmp_path / "rppo.zip")
    policy = make_policy(str(path))
    env = DUSEnv(dataset=make_synthetic(**DATA), epochs=2, batch_budget=16, action_space="softmax")
    rec = run_policy(env, policy, seeds=[0])[0]
    assert rec.steps == 2 and policy._state is not None     # the LSTM state was carried
    again = run_policy(env, policy, seeds=[0])[0]
    assert again.batch_sizes == rec.batch_sizes             # and reset at each episode
