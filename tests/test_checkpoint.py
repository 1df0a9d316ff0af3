"""Checkpoint and resume: in-memory snapshots, atomic writes, and a real SIGKILL.

The kill tests run small worker scripts in fresh Python processes (written here, so the
test is self-contained), kill them with SIGKILL while they run, resume from whatever
checkpoint is on disk, and compare with an uninterrupted run bit for bit (CPU).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import mmenv  # noqa: F401  (registers mmenv/DUS-v0)
from mmenv import DUSEnv
from mmenv.checkpoint import CheckpointError, atomic_save, load, load_env_checkpoint, save_env_checkpoint
from mmenv.datasets import make_synthetic
from mmenv.learners import LEARNERS
from mmenv.sampling import SAMPLE_ORDERS

REPO = Path(__file__).resolve().parents[1]
TINY = dict(n_train=128, n_val=32, n_test=64, seed=1)


@pytest.fixture(scope="module")
def tiny():
    return make_synthetic(**TINY)


def make(tiny, **kw):
    kw.setdefault("epochs", 2)
    kw.setdefault("batch_budget", 16)
    kw.setdefault("step_every", 2)
    return DUSEnv(dataset=tiny, **kw)


def actions(n: int) -> list[np.ndarray]:
    return [np.array([0.15 + 0.04 * i, 0.85 - 0.04 * i], dtype=np.float32) for i in range(n)]


def play(env, acts):
    out = []
    for a in acts:
        obs, r, term, trunc, info = env.step(a)
        out.append((obs, r, info))
        if term or trunc:
            break
    return out


# ---------------------------------------------------------------- in-memory round trip
@pytest.mark.parametrize("learner", sorted(LEARNERS))
def test_snapshot_resumes_identically_for_every_learner(tiny, learner):
    acts = actions(16)
    env = make(tiny, learner=learner, epochs=1)
    env.reset(seed=5)
    play(env, acts[:3])
    snap = env.state_dict()
    reference = play(env, acts[3:])
    assert reference[-1][2]["test"] is not None  # the episode ran to its end

    resumed = make(tiny, learner=learner, epochs=1)
    resumed.load_state_dict(snap)
    assert resumed.episode_step == 3 and resumed.iteration == 6
    again = play(resumed, acts[3:])
    assert len(again) == len(reference) == 5
    for (o1, r1, i1), (o2, r2, i2) in zip(reference, again):
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2 and i1["batch_sizes"] == i2["batch_sizes"] and i1["train_loss"] == i2["train_loss"]
    assert again[-1][2]["test"] == reference[-1][2]["test"]


@pytest.mark.filterwarnings("ignore:bss-curriculum")  # a partial curriculum is the point here
@pytest.mark.parametrize("order", sorted(SAMPLE_ORDERS))
def test_snapshot_resumes_identically_for_every_sample_order(tiny, order):
    """Sample-order state (curricula, scores, per-stream permutations and cursors) survives."""
    acts = actions(16)
    env = make(tiny, sample_order=order, epochs=3, step_every="epoch")
    env.reset(seed=8)
    play(env, acts[:1])  # mid-run, after one epoch's on_epoch_start
    snap = env.state_dict()
    reference = play(env, acts[1:])
    resumed = make(tiny, sample_order=order, epochs=3, step_every="epoch")
    resumed.load_state_dict(snap)
    again = play(resumed, acts[1:])
    assert len(again) == len(reference) == 2
    for (o1, r1, i1), (o2, r2, i2) in zip(reference, again):
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2 and i1["train_loss"] == i2["train_loss"]
    assert again[-1][2]["test"] == reference[-1][2]["test"]


def test_snapshot_is_a_copy_not_a_view(tiny):
    env = make(tiny)
    env.reset(seed=0)
    play(env, actions(2))
    snap = env.state_dict()
    weights = {k: v.clone() for k, v in snap["episode"]["learner"]["model"].items()}
    play(env, actions(3))  # keeps training the live model
    for k, v in snap["episode"]["learner"]["model"].items():
        assert torch.equal(v, weights[k]), k


def test_np_random_survives_so_the_next_unseeded_reset_matches(tiny):
    env = make(tiny)
    env.reset(seed=11)
    play(env, actions(16))  # to the end of the episode
    snap = env.state_dict()
    obs_a, _ = env.reset()
    other = make(tiny)
    other.load_state_dict(snap)
    with pytest.raises(RuntimeError, match="reset"):
        other.step(other.uniform_action())  # the saved episode had ended
    obs_b, _ = other.reset()
    assert other.episode_seed == env.episode_seed
    np.testing.assert_array_equal(obs_a, obs_b)


def test_checkpoint_file_through_gym_make_wrappers(tmp_path):
    kw = dict(epochs=2, batch_budget=16, step_every=4, dataset_kwargs=TINY)
    env = gym.make("mmenv/DUS-v0", **kw)
    env.reset(seed=2)
    env.step(env.unwrapped.uniform_action())
    path = save_env_checkpoint(env, tmp_path / "env.ckpt", extra={"note": "hello"})
    expected = env.step(env.unwrapped.uniform_action())

    fresh = gym.make("mmenv/DUS-v0", **kw)
    assert load_env_checkpoint(fresh, path) == {"note": "hello"}
    got = fresh.step(fresh.unwrapped.uniform_action())  # no "reset first" complaint from the wrapper
    np.testing.assert_array_equal(expected[0], got[0])
    assert expected[1] == got[1]


def test_env_methods_and_last_observation(tiny, tmp_path):
    env = make(tiny)
    env.reset(seed=1)
    obs, *_ = env.step(env.uniform_action())
    env.save_checkpoint(str(tmp_path / "c.pt"))
    other = make(tiny)
    other.load_checkpoint(str(tmp_path / "c.pt"))
    np.testing.assert_array_equal(other.last_observation, obs)


def test_mismatched_configuration_names_the_setting(tiny, tmp_path):
    env = make(tiny)
    env.reset(seed=0)
    env.save_checkpoint(str(tmp_path / "c.pt"))
    with pytest.raises(CheckpointError, match="batch_budget: saved 16, this env 32"):
        make(tiny, batch_budget=32).load_checkpoint(str(tmp_path / "c.pt"))


def test_missing_or_garbage_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load(tmp_path / "absent.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="could not read"):
        load(tmp_path / "junk.pt")
    atomic_save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an environment checkpoint"):
        load_env_checkpoint(DUSEnv(dataset=make_synthetic(**TINY)), tmp_path / "other.pt")


class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError("boom while writing")


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "c.pt"
    atomic_save({"n": 1}, path)
    with pytest.raises(RuntimeError, match="boom"):
        atomic_save({"n": 2, "bad": _Unpicklable()}, path)
    assert load(path) == {"n": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


# ---------------------------------------------------------------- real processes, SIGKILL
WORKER = textwrap.dedent("""
    import hashlib, json, os, sys, time
    import torch
    torch.set_num_threads(1)
    from mmenv import DUSEnv
    from mmenv.checkpoint import load_env_checkpoint, save_env_checkpoint
    from mmenv.datasets import make_synthetic
    from mmenv.agents import ReinforcePolicy

    ckpt, trace, final, delay = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    env = DUSEnv(dataset=make_synthetic(**json.loads(sys.argv[5])), epochs=2, batch_budget=16, step_every=2)
    policy = ReinforcePolicy(seed=7, lr=1e-2)          # online REINFORCE: learns every step
    if os.path.exists(ckpt):
        policy.load_state_dict(load_env_checkpoint(env, ckpt)["policy"])
        obs = env.last_observation
    else:
        obs, _ = env.reset(seed=0)
        policy.reset(env)
    while True:
        action = policy.act(obs)
        next_obs, reward, terminated, truncated, info = env.step(action)
        policy.update(obs, action, reward, next_obs, terminated, truncated, info)
        obs = next_obs
        with open(trace, "a") as f:
            f.write(json.dumps({"step": env.episode_step, "obs": obs.tolist(), "reward": reward,
                                "action": action.tolist(), "sizes": info["batch_sizes"]}) + "\\n")
        if terminated or truncated:
            digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in policy.net.parameters()))
            with open(final, "w") as f:
                json.dump({"test": info["test"], "updates": policy.num_updates, "policy": digest.hexdigest()}, f)
            break
        save_env_checkpoint(env, ckpt, extra={"policy": policy.state_dict()})
        time.sleep(delay)
""")


def _spawn(script: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(script), *args], env=env, cwd=str(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(proc: subprocess.Popen, timeout: float = 120) -> None:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()[-2000:]


def _read_trace(path: Path) -> dict[int, dict]:
    steps: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec["step"] in steps:  # killed between the trace write and the checkpoint: redone identically
            assert steps[rec["step"]] == rec
        steps[rec["step"]] = rec
    return steps


def _wait_for_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        assert proc.poll() is None, proc.communicate()[1].decode()[-2000:]
        time.sleep(0.02)
    raise AssertionError(f"worker wrote fewer than {n} steps in {timeout} s")


def test_sigkill_mid_run_then_resume_matches_an_uninterrupted_run(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    data = json.dumps(TINY)
    ref = {k: tmp_path / f"ref.{k}" for k in ("ckpt", "trace", "final")}
    cut = {k: tmp_path / f"cut.{k}" for k in ("ckpt", "trace", "final")}

    reference = _spawn(script, str(ref["ckpt"]), str(ref["trace"]), str(ref["final"]), "0", data)
    victim = _spawn(script, str(cut["ckpt"]), str(cut["trace"]), str(cut["final"]), "0.2", data)
    _wait_for_lines(cut["trace"], 4, victim)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert cut["ckpt"].exists() and not cut["final"].exists()
    killed_at = max(_read_trace(cut["trace"]))
    assert 4 <= killed_at < 16

    _finish(_spawn(script, str(cut["ckpt"]), str(cut["trace"]), str(cut["final"]), "0", data))
    _finish(reference)

    expected, got = _read_trace(ref["trace"]), _read_trace(cut["trace"])
    assert sorted(expected) == sorted(got) == list(range(1, 17))
    assert expected == got  # observations, rewards, actions and batch sizes, bit for bit
    final_ref, final_cut = json.loads(ref["final"].read_text()), json.loads(cut["final"].read_text())
    assert final_ref == final_cut  # test metrics, policy update count, policy weights
    assert final_ref["updates"] == 16


SAVER = textwrap.dedent("""
    import os, sys, torch
    from mmenv.checkpoint import atomic_save, load
    path, ready = sys.argv[1], sys.argv[2]
    n = load(path)["n"] + 1 if os.path.exists(path) else 0
    open(ready, "w").close()
    while True:  # ~8 MB per write, back to back: a kill lands mid-write most of the time
        atomic_save({"n": n, "data": torch.full((2_000_000,), float(n))}, path)
        n += 1
""")


def test_sigkill_mid_save_never_leaves_a_corrupt_checkpoint(tmp_path):
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    path, ready = tmp_path / "state.pt", tmp_path / "ready"
    rng = np.random.default_rng(0)
    last = -1
    for _ in range(2):
        ready.unlink(missing_ok=True)
        proc = _spawn(script, str(path), str(ready))
        end = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < end, proc.communicate()[1].decode()[-2000:]
            time.sleep(0.01)
        time.sleep(0.3 + 0.4 * float(rng.random()))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = load(path)  # always a complete checkpoint
        assert state["n"] > last
        assert torch.equal(state["data"], torch.full((2_000_000,), float(state["n"])))
        last = state["n"]
    # A torn write can only ever leave a hidden temp file next to it, never touch the checkpoint.
    assert all(p.name.startswith(".state.pt.") for p in tmp_path.iterdir()
               if p.name not in {"state.pt", "saver.py", "ready"})


def test_policy_state_round_trip_matches_continuing():
    from mmenv.agents import ReinforcePolicy

    a = ReinforcePolicy(seed=3, lr=1e-2)
    obs = np.array([0.3, 0.6], dtype=np.float32)
    for _ in range(3):
        p = a.act(obs)
        a.update(obs, p, 0.5, obs, False, False, {})
    b = ReinforcePolicy(seed=99, lr=1e-2)
    b.load_state_dict(a.state_dict())
    for _ in range(3):
        pa, pb = a.act(obs), b.act(obs)
        np.testing.assert_array_equal(pa, pb)
        a.update(obs, pa, 1.0, obs, False, False, {})
        b.update(obs, pb, 1.0, obs, False, False, {})
    assert a.reward_baseline == b.reward_baseline and a.num_updates == b.num_updates == 6


class Foreign:
    """A class from outside the project: the safe loader must refuse to unpickle it."""


def test_loader_allows_listed_types_only(tmp_path, monkeypatch):
    from mmenv import checkpoint
    from mmenv.checkpoint import allow_type

    monkeypatch.setattr(checkpoint, "_user_types", {})  # the registration below stays in this test
    from mmenv.datasets import ModalitySpec

    atomic_save({"spec": ModalitySpec("a", (3,))}, tmp_path / "ok.pt")
    assert load(tmp_path / "ok.pt")["spec"] == ModalitySpec("a", (3,))
    atomic_save({"x": Foreign()}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not on mmenv's checkpoint allow-list"):
        load(tmp_path / "foreign.pt")
    allow_type(Foreign)  # a user's own plain data class, registered explicitly
    assert isinstance(load(tmp_path / "foreign.pt")["x"], Foreign)


@pytest.mark.parametrize("observation", ["modal", "extended"])
def test_benchmark_wrapper_state_survives_a_checkpoint(tmp_path, observation):
    """Through mmenv/DUSBench-v0 the checkpoint also holds the wrapper's own episode state (the
    validation accuracy the next reward compares with, the per-modality observation's previous
    values): a restored environment, which had played another run, continues with the saved
    environment's observations and rewards. An older checkpoint without it recomputes the
    validation accuracy from the restored model, so the rewards still match."""
    kw = dict(dataset_kwargs={"n_train": 200, "n_val": 60, "n_test": 80}, epochs=4, batch_budget=16)
    acts = [np.array(a, np.float32) for a in ([0.7, 0.3], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5])]
    a = gym.make("mmenv/DUSBench-v0", observation=observation, reward="val-acc-gain", **kw)
    a.reset(seed=3)
    a.step(acts[0])
    a.step(acts[1])
    path = tmp_path / "bench.ckpt"
    save_env_checkpoint(a, path)
    ref = [a.step(x)[:2] for x in acts[2:]]
    b = gym.make("mmenv/DUSBench-v0", observation=observation, reward="val-acc-gain", **kw)
    b.reset(seed=9)
    b.step(acts[3])
    load_env_checkpoint(b, path)
    for (o1, r1), (o2, r2) in zip(ref, [b.step(x)[:2] for x in acts[2:]]):
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2
    old = load(path)
    del old["wrappers"]
    atomic_save(old, tmp_path / "old.ckpt")
    c = gym.make("mmenv/DUSBench-v0", observation=observation, reward="val-acc-gain", **kw)
    c.reset(seed=9)
    c.step(acts[3])
    load_env_checkpoint(c, tmp_path / "old.ckpt")
    assert [c.step(x)[1] for x in acts[2:]] == [r for _, r in ref]
