"""Saved agents and checkpoints load through one safe path: a crafted file runs nothing.

The payload below is an object whose ``__reduce__`` makes plain ``pickle`` call
``os.mkdir(marker)``. The control test shows the payload is live (ordinary unpickling
creates the marker); every mmenv entry point that reads an agent file must refuse it
with a clear error before unpickling anything, so the marker never appears.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from mmenv.agents import ReinforcePolicy, make_policy
from mmenv.agents.reinforce import FORMAT

from mmenv import DUSEnv
from mmenv.checkpoint import CheckpointError, UnsafeCheckpointError, atomic_save, load
from mmenv.cli import main
from mmenv.datasets import make_synthetic

TINY = ["--dataset-kwargs", '{"n_train": 200, "n_val": 50, "n_test": 100}', "--epochs", "2",
        "--batch-budget", "16", "--no-progress"]


class MakeMarker:
    """Unpickling this calls ``os.mkdir(path)``: a stand-in for any code a crafted file would run."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _evil_agent(tmp_path: Path, raw_pickle: bool = False) -> tuple[Path, Path]:
    """An ``agent.pt`` laid out like a saved REINFORCE policy, its config replaced by the payload."""
    marker = tmp_path / "marker"
    path = tmp_path / "agent.pt"
    payload = {"format": FORMAT, "config": MakeMarker(marker), "state_dict": {}, "num_updates": 0}
    if raw_pickle:
        with open(path, "wb") as f:
            pickle.dump(payload, f)
    else:
        torch.save(payload, path)
    return path, marker


def test_the_payload_is_live_under_plain_pickle(tmp_path):
    _, marker = _evil_agent(tmp_path)
    pickle.loads(pickle.dumps(MakeMarker(marker)))
    assert marker.is_dir()  # so the tests below would notice if a loader ran it


@pytest.mark.parametrize("raw_pickle", [False, True], ids=["torch-save", "bare-pickle"])
def test_reinforce_load_refuses_a_crafted_agent(tmp_path, raw_pickle):
    path, marker = _evil_agent(tmp_path, raw_pickle)
    with pytest.raises(UnsafeCheckpointError, match="refusing to load|refused it") as exc:
        ReinforcePolicy.load(path)
    assert isinstance(exc.value, CheckpointError)
    if not raw_pickle:  # the archive names the function before anything is unpickled
        assert "mkdir" in str(exc.value) and "allow-list" in str(exc.value)
    assert "weights_only=False" not in str(exc.value)  # never advise the unsafe load
    assert not marker.exists()


def test_make_policy_refuses_a_crafted_agent(tmp_path):
    path, marker = _evil_agent(tmp_path)
    with pytest.raises(UnsafeCheckpointError, match="mkdir"):
        make_policy(str(path), deterministic=True)
    assert not marker.exists()


def test_cli_evaluate_refuses_a_crafted_agent(tmp_path, capsys):
    path, marker = _evil_agent(tmp_path)
    code = main(["evaluate", "--policy", str(path), "--out", str(tmp_path / "ev"), *TINY])
    assert code != 0
    err = capsys.readouterr().err
    assert "refusing to load" in err and "mkdir" in err
    assert not marker.exists()
    assert not (tmp_path / "ev" / "results.json").exists()


def test_env_checkpoint_loader_refuses_a_crafted_file(tmp_path):
    marker = tmp_path / "marker"
    torch.save({"format": "mmenv-env-checkpoint-v1", "env": MakeMarker(marker), "extra": {}}, tmp_path / "env.ckpt")
    env = DUSEnv(dataset=make_synthetic(n_train=64, n_val=16, n_test=32), epochs=1, batch_budget=16)
    with pytest.raises(UnsafeCheckpointError):
        env.load_checkpoint(str(tmp_path / "env.ckpt"))
    assert not marker.exists()


def test_project_classes_outside_the_allow_list_are_refused(tmp_path):
    # Any importable callable of the package is code too (it could overwrite files):
    # only the listed plain data classes may be named by a checkpoint.
    from mmenv.sampling import Shuffle

    atomic_save({"order": Shuffle()}, tmp_path / "order.pt")
    with pytest.raises(UnsafeCheckpointError, match="mmenv.sampling.order.Shuffle"):
        load(tmp_path / "order.pt")


def test_old_agent_with_numpy_values_gets_a_resave_hint(tmp_path):
    # Older versions pickled numpy scalars into the episodic baselines.
    torch.save({"format": FORMAT, "config": {}, "return_baselines": {0: np.float64(0.5)}}, tmp_path / "old.pt")
    with pytest.raises(UnsafeCheckpointError, match="re-save it"):
        ReinforcePolicy.load(tmp_path / "old.pt")


def test_saved_episodic_agent_round_trips_through_the_safe_loader(tmp_path):
    env = DUSEnv(dataset=make_synthetic(n_train=200, n_val=50, n_test=100), epochs=2, batch_budget=16)
    policy = ReinforcePolicy(seed=0, lr=1e-2)
    policy.train_episodic(env, episodes=2, seeds=[0, 1])
    assert policy.return_baselines  # episodic mode filled the per-step baselines
    path = tmp_path / "agent.pt"
    policy.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["agent.pt"]  # atomic write: no temporary left
    state = load(path)
    assert all(type(v) is float for v in state["return_baselines"].values())
    loaded = ReinforcePolicy.load(path, deterministic=True)
    assert loaded.return_baselines == policy.return_baselines and loaded.num_updates == policy.num_updates == 2
    obs = np.array([0.3, 0.6], dtype=np.float32)
    policy.deterministic = True
    np.testing.assert_array_equal(loaded.act(obs), policy.act(obs))


def test_missing_agent_file_is_a_clear_error(tmp_path):
    from mmenv.agents import PolicyError

    with pytest.raises(PolicyError, match="no saved"):
        ReinforcePolicy.load(tmp_path / "nope.pt")
