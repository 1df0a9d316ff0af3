"""The environment's own scalars reach TensorBoard under plain SB3 model.learn() via log_dir."""

from __future__ import annotations

import gymnasium as gym

import mmenv  # noqa: F401


def _tags(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = {}
    for events in log_dir.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend(e.step for e in acc.Scalars(tag))
    return out


def test_plain_model_learn_logs_the_env_scalars(tmp_path):
    from stable_baselines3 import A2C

    env = gym.make("mmenv/DUS-v0", dataset_kwargs={"n_train": 64, "n_val": 16, "n_test": 32}, epochs=2,
                   log_dir=str(tmp_path / "tb" / "env"))
    model = A2C("MlpPolicy", env, n_steps=2, seed=0, device="cpu", tensorboard_log=str(tmp_path / "tb"))
    model.learn(total_timesteps=4)
    env.close()
    tags = _tags(tmp_path / "tb" / "env")
    for tag in ("reward", "batch_size/strong", "proportion/weak", "discrepancy/weak", "train_accuracy/strong",
                "train_loss/total", "val_accuracy/fused", "discrepancy_initial/strong", "test/fused/accuracy"):
        assert tag in tags, sorted(tags)
    assert sorted(tags["reward"]) == [1, 2, 3, 4]                 # one point per env step, no step twice
    assert sorted(tags["discrepancy_initial/strong"]) == [0, 2, 4]   # each episode start (SB3 resets after the last)
