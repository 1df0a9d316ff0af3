"""``mmenv train --resume`` and ``mmenv compare`` survive SIGKILL: the resumed run equals an
uninterrupted one (CPU), because every piece of state is written atomically between
episodes / runs and each episode depends on its seed alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mmenv.checkpoint import load

REPO = Path(__file__).resolve().parents[1]


def _finish(proc: subprocess.Popen, timeout: float = 180) -> None:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()[-2000:]


def _wait_until(condition, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"finished before the kill: {proc.communicate()[1].decode()[-2000:]}"
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def _train_cmd(out: Path, *extra: str) -> list[str]:
    return ["-m", "mmenv", "train", "--agent", "reinforce", "--episodes", "6", "--epochs", "3", "--batch-budget", "32",
            "--lr", "1e-2", "--seed", "3", "--no-progress", "--out", str(out),
            "--dataset-kwargs", json.dumps(dict(n_train=384, n_val=32, n_test=64, seed=1)), *extra]


def _run_train(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, *args], env=env, cwd=str(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_mmenv_train_resumes_after_sigkill(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    reference = _run_train(_train_cmd(full))
    victim = _run_train(_train_cmd(cut))
    _wait_until((cut / "train.ckpt").exists, victim)  # the first episode is done: kill inside a later one
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL and not (cut / "train.json").exists()
    done_before = len(json.loads(load(cut / "train.ckpt")["records"]))
    assert 1 <= done_before < 6

    resumed = _run_train(_train_cmd(cut, "--resume"))
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err.decode()[-2000:]
    assert f"resuming after episode {done_before} of 6" in out.decode()
    _finish(reference, timeout=180)

    def episodes(path: Path) -> list[dict]:
        return [{k: v for k, v in e.items() if k != "wall_time_s"} for e in json.loads(path.read_text())["episodes"]]

    assert episodes(full / "train.json") == episodes(cut / "train.json")
    a = load(full / "agent.pt")  # the safe loader reads what ReinforcePolicy.save writes
    b = load(cut / "agent.pt")
    assert a["num_updates"] == b["num_updates"] == 18
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k


COMPARE_CONFIG = """
name: killed
policies: [uniform, dus-h]
learners: [baseline]
datasets: [synthetic]
seeds: 3
env: {epochs: 3, batch_budget: 32}
dataset_kwargs: {synthetic: {n_train: 384, n_val: 32, n_test: 64, seed: 1}}
workers: 1
plots: false
tensorboard: false
"""


def test_mmenv_compare_resumes_after_sigkill(tmp_path):
    pytest.importorskip("mmenv.experiments.compare")
    config = tmp_path / "killed.yaml"
    config.write_text(COMPARE_CONFIG)
    full, cut = tmp_path / "full", tmp_path / "cut"

    def compare(out: Path) -> subprocess.Popen:
        return _run_train(["-m", "mmenv", "compare", "--config", str(config), "--out", str(out), "--no-progress"])

    reference, victim = compare(full), compare(cut)
    _wait_until(lambda: bool(list(cut.glob("runs/*.json"))), victim)  # one run done: kill inside a later one
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL and not (cut / "results.csv").exists()
    done_before = len(list((cut / "runs").glob("*.json")))
    assert 1 <= done_before < 6

    resumed = compare(cut)
    out, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err.decode()[-2000:]
    assert f"{6 - done_before} run(s) executed, {done_before} reused" in out.decode()
    _finish(reference, timeout=180)

    def runs(path: Path) -> dict[str, dict]:
        return {p.stem: {k: v for k, v in json.loads(p.read_text()).items() if k != "wall_time_s"}
                for p in (path / "runs").glob("*.json")}

    assert runs(full) == runs(cut) and len(runs(full)) == 6
    assert all(r["status"] == "ok" for r in runs(full).values())
