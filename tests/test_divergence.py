"""Divergence: a learner driven to NaN/inf (or to losses past the bound) ends the episode as truncated, never silently.

Every registered learner is run with a learning rate far too large (SGD, lr 1e8, no
momentum damping): its losses overflow within a few iterations. The environment must
report ``truncated=True`` with ``info["diverged"] = True``, keep the observation finite
in [0, 1], give a finite reward, and refuse further steps until ``reset``; a reset then
starts a healthy episode again.
"""

from __future__ import annotations

import numpy as np
import pytest

from mmenv import DUSEnv
from mmenv.datasets import make_synthetic
from mmenv.env import LOSS_DIVERGENCE_BOUND
from mmenv.learners import LEARNERS


@pytest.fixture(scope="module")
def tiny():
    return make_synthetic(n_train=64, n_val=16, n_test=32, seed=2)


@pytest.mark.parametrize("learner", sorted(LEARNERS))
def test_huge_learning_rate_truncates_with_diverged_flag(tiny, learner):
    env = DUSEnv(dataset=tiny, learner=learner, learner_kwargs={"lr": 1e8}, epochs=20, batch_budget=16,
                 step_every=1)
    env.reset(seed=0)
    for step in range(1, env.total_iters + 1):  # noqa: B007 - named in the failure message
        obs, reward, terminated, truncated, info = env.step(env.uniform_action())
        assert np.all(np.isfinite(obs)) and np.all((obs >= 0) & (obs <= 1))
        assert np.isfinite(reward)
        if terminated or truncated:
            break
    assert truncated and not terminated, f"{learner} did not diverge in {step} steps"
    assert info["diverged"] is True and info["test"] is None
    # a non-finite loss, or a finite one past the bound (mmenv.env.LOSS_DIVERGENCE_BOUND)
    assert not all(np.isfinite(v) and abs(v) <= LOSS_DIVERGENCE_BOUND for v in info["train_loss"].values())
    with pytest.raises(RuntimeError, match="reset"):
        env.step(env.uniform_action())

    # The next episode, with a sane learning rate, is healthy: reset rebuilds model and
    # optimizer from scratch, so nothing of the diverged run leaks into it.
    assert hasattr(env.learner, "opt_kwargs"), "every built-in learner keeps its optimizer settings"
    env.learner.opt_kwargs["lr"] = 1e-2
    obs, _ = env.reset(seed=0)
    assert np.all(np.isfinite(obs))
    _, _, _, truncated, info = env.step(env.uniform_action())
    assert not truncated and info["diverged"] is False


def test_default_learning_rate_does_not_diverge(tiny):
    env = DUSEnv(dataset=tiny, epochs=2, batch_budget=16)
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step(env.uniform_action())
    _, _, terminated, truncated, info = env.step(env.uniform_action())
    assert terminated and not truncated and info["diverged"] is False and info["test"] is not None


def test_sweep_records_a_diverged_run_and_carries_on(tmp_path):
    pytest.importorskip("mmenv.experiments.compare")
    from mmenv.experiments.compare import run_comparison
    from mmenv.experiments.config import config_from_dict

    cfg = config_from_dict({
        "policies": ["uniform"], "learners": ["baseline", "mla"], "datasets": ["synthetic"], "seeds": [0, 1],
        "env": {"epochs": 2, "batch_budget": 16, "step_every": 2},
        "dataset_kwargs": {"synthetic": {"n_train": 64, "n_val": 16, "n_test": 32}},
        "learner_kwargs": {"baseline": {"lr": 1e8}},          # baseline diverges, MLA trains normally
        "out": str(tmp_path / "sweep"), "plots": False, "tensorboard": False, "workers": 1,
    })
    summary = run_comparison(cfg, progress=False)
    status = {(r["learner"], r["seed"]): r["status"] for r in summary.results}
    assert status == {("baseline", 0): "diverged", ("baseline", 1): "diverged", ("mla", 0): "ok", ("mla", 1): "ok"}
    for r in summary.results:
        if r["status"] == "diverged":
            assert r["test"] is None and "NaN/inf" in r["error"] and r["steps"] < 8
        else:
            assert r["test"]["fused"]["accuracy"] > 0.25 and r["steps"] == 8
    assert "diverged" in summary.csv_path.read_text()
    # Diverged runs count as finished: a second call re-runs nothing.
    again = run_comparison(cfg, progress=False)
    assert again.executed == [] and len(again.skipped) == 4
