"""run_policy: records, seeds, callables, wrapped environments, learn flag."""

import gymnasium as gym
import numpy as np
import pytest
from mmenv.agents import EpisodeRecord, Policy, PolicyError, make_policy, run_policy

import mmenv  # noqa: F401  (registers mmenv/DUS-v0)
from mmenv import DUSEnv
from mmenv.datasets import make_synthetic

DATA = dict(n_train=200, n_val=50, n_test=100)


def tiny_env(**kw):
    return DUSEnv(dataset=make_synthetic(**DATA), epochs=2, batch_budget=16, **kw)


class Spy(Policy):
    name = "spy"

    def __init__(self):
        self.infos, self.updates, self.resets = [], 0, 0

    def reset(self, env):
        self.resets += 1

    def act(self, obs, info):
        self.infos.append(dict(info))
        return np.array([0.75, 0.25])

    def update(self, *args):
        self.updates += 1


@pytest.mark.parametrize("name", ["uniform", "dus-h", "fixed", "discrepancy"])
def test_records_have_consistent_trajectories(name):
    env = tiny_env()
    rec = run_policy(env, make_policy(name), episodes=1, seeds=[0])[0]
    assert isinstance(rec, EpisodeRecord)
    assert rec.steps == 2 and len(rec.batch_sizes) == len(rec.proportions) == len(rec.discrepancy) == 2
    assert rec.modalities == ["strong", "weak"] and len(rec.initial_discrepancy) == 2
    assert all(sum(b) == 16 for b in rec.batch_sizes)
    assert all(sum(p) == pytest.approx(1.0) for p in rec.proportions)
    assert rec.reward_sum == pytest.approx(sum(rec.rewards))
    assert set(rec.test) == {"fused", "strong", "weak"}
    assert set(rec.test["fused"]) == {"accuracy", "map", "macro_f1"}
    assert rec.wall_time_s > 0 and not rec.diverged


def test_initial_info_reaches_first_act_and_learn_flag():
    env = tiny_env()
    spy = Spy()
    rec = run_policy(env, spy, episodes=2, seeds=[0, 1], learn=False)
    assert spy.resets == 2 and spy.updates == 0 and len(rec) == 2
    assert spy.infos[0]["epoch"] == 0 and "batch_sizes" in spy.infos[0]   # reset's info
    assert spy.infos[1]["epoch"] == 1                                      # step's info
    assert rec[0].batch_sizes == [[12, 4], [12, 4]]
    run_policy(env, spy, seeds=[0], learn=True)
    assert spy.updates == 2


def test_same_seed_same_numbers():
    a = run_policy(tiny_env(), make_policy("discrepancy"), seeds=[3])[0]
    b = run_policy(tiny_env(), make_policy("discrepancy"), seeds=[3])[0]
    assert a.discrepancy == b.discrepancy and a.test == b.test and a.batch_sizes == b.batch_sizes


def test_callable_and_symmetric_gym_make_env():
    env = gym.make("mmenv/DUS-v0", dataset=make_synthetic(**DATA), epochs=2, batch_budget=16,
                   action_space="symmetric")
    rec = run_policy(env, lambda obs, info: [1.0, 3.0], seeds=[0])[0]   # normalised to 0.25/0.75
    assert rec.batch_sizes == [[4, 12], [4, 12]]
    np.testing.assert_allclose(rec.proportions[0], [0.25, 0.75])


def test_progress_bars_run(capsys):
    rec = run_policy(tiny_env(), make_policy("uniform"), episodes=1, progress=True)
    assert rec[0].seed is None and rec[0].steps == 2


def test_errors():
    env = tiny_env()
    with pytest.raises(PolicyError, match="one seed per episode"):
        run_policy(env, make_policy("uniform"), episodes=2, seeds=[0])
    with pytest.raises(PolicyError, match="3 proportions for 2 modalities"):
        run_policy(env, lambda o, i: [0.2, 0.3, 0.5], seeds=[0])
    with pytest.raises(PolicyError, match="cannot run"):
        run_policy(env, 42)
    with pytest.raises(PolicyError, match="unknown policy"):
        make_policy("greedy")


def test_seeds_alone_set_the_episode_count():
    env = tiny_env()
    records = run_policy(env, make_policy("uniform"), seeds=[0, 1, 2], learn=False)
    assert [r.seed for r in records] == [0, 1, 2]
    assert len(run_policy(env, make_policy("uniform"), seeds=(5,), learn=False)) == 1
    with pytest.raises(PolicyError, match="2 seeds for 3 episodes.*defaults to len\\(seeds\\)"):
        run_policy(env, make_policy("uniform"), episodes=3, seeds=[0, 1])
    with pytest.raises(PolicyError, match="seeds is empty"):
        run_policy(env, make_policy("uniform"), seeds=[])
    assert len(run_policy(env, make_policy("uniform"), learn=False)) == 1   # neither: one unseeded episode
