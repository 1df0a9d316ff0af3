"""The Ray backends on a local Ray instance with 2 CPUs (started once for this module).

Ray is in the ``test`` extra, so CI runs these. Without Ray they are skipped, unless
``MMENV_REQUIRE_RAY=1`` (set by ``.ci/run``), where a missing Ray is a failure: the tests
must not silently stop guarding the backend.

Every check compares the Ray path with the local one for the same seeds: same results,
same resumability, same trained agent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mmenv.agents.across_runs import train_across_runs
from mmenv.experiments.compare import run_comparison
from mmenv.experiments.config import config_from_dict

pytestmark = pytest.mark.subprocess

REPO = Path(__file__).resolve().parents[1]
TINY = {"dataset": "synthetic", "dataset_kwargs": {"n_train": 96, "n_val": 48, "n_test": 64},
        "learner": "baseline", "epochs": 2, "batch_budget": 16}
COMPARE = {"name": "ray", "seeds": [0, 1], "policies": ["uniform", "dus-h"], "learners": ["baseline"],
           "datasets": ["synthetic"], "env": {"epochs": 1, "batch_budget": 16},
           "dataset_kwargs": {"synthetic": {"n_train": 200, "n_val": 40, "n_test": 100}},
           "plots": False, "tensorboard": False, "workers": 1}


def _import_ray():
    try:
        import ray
    except ImportError:
        if os.environ.get("MMENV_REQUIRE_RAY") == "1":
            pytest.fail("MMENV_REQUIRE_RAY=1 but Ray is not installed: pip install -e '.[test]'")
        pytest.skip("Ray is not installed (it is in the test extra: pip install -e '.[test]')")
    return ray


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray instance with 2 CPUs and no dashboard; shut down after this module."""
    ray = _import_ray()
    if ray.is_initialized():  # pragma: no cover - another module left one running
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()


def _wait_for_cpus(ray, n: int, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while ray.available_resources().get("CPU", 0) < n:
        assert time.monotonic() < end, f"actors still hold CPUs: {ray.available_resources()}"
        time.sleep(0.1)


def _strip(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "wall_time_s"}


def test_compare_on_ray_equals_local_and_resumes(ray_local, tmp_path):
    local = run_comparison(config_from_dict({**COMPARE, "out": str(tmp_path / "local")}), progress=False)
    cfg = config_from_dict({**COMPARE, "out": str(tmp_path / "ray"), "backend": "ray", "workers": 2})
    on_ray = run_comparison(cfg, progress=False)
    assert on_ray.status_counts == {"ok": 4} and sorted(on_ray.executed) == sorted(local.executed)
    assert [_strip(r) for r in local.results] == [_strip(r) for r in on_ray.results]

    # Resumable like the process backend: only the missing run is executed again.
    victim = tmp_path / "ray" / "runs" / f"{on_ray.results[1]['key']}.json"
    victim.unlink()
    resumed = run_comparison(cfg, progress=False)
    assert resumed.executed == [on_ray.results[1]["key"]]
    assert [_strip(r) for r in resumed.results] == [_strip(r) for r in local.results]


def test_compare_cli_joins_a_running_cluster(ray_local, tmp_path):
    """``mmenv compare --backend ray --ray-address ADDR`` runs on the cluster at ADDR (here: this module's)."""
    address = ray_local.get_runtime_context().gcs_address
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({**COMPARE, "seeds": [0], "policies": ["uniform"]}))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run([sys.executable, "-m", "mmenv", "compare", "--config", str(config), "--backend", "ray",
                           "--ray-address", address, "--out", str(tmp_path / "cli"), "--no-progress"],
                          env=env, cwd=str(REPO), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "[ray]" in proc.stdout and "1 run(s) executed, 0 reused" in proc.stdout
    (result,) = [json.loads(p.read_text()) for p in (tmp_path / "cli" / "runs").glob("*.json")]
    assert result["status"] == "ok"


def test_reinforce_rollouts_on_ray_actors_equal_local(ray_local):
    instances = [TINY, {**TINY, "learner": "mla"}]
    local = train_across_runs("reinforce", instances, runs=4, seed=2, workers=1)
    remote = train_across_runs("reinforce", instances, runs=4, seed=2, workers=2, backend="ray")
    assert remote.runs == 4 and remote.history == local.history
    assert {h["instance"] for h in remote.history} == {0, 1}  # both instances played on the actors
    obs = np.array([0.3, 0.5], np.float32)
    np.testing.assert_allclose(remote.policy.act(obs, {}), local.policy.act(obs, {}), rtol=0, atol=1e-7)
    # The actors were freed (ray.kill is asynchronous): the cluster's 2 CPUs come back.
    _wait_for_cpus(ray_local, 2)


def test_sb3_environments_in_ray_actors_equal_local_processes(ray_local):
    local = train_across_runs("ppo", [TINY], runs=4, seed=0, workers=2)
    remote = train_across_runs("ppo", [TINY], runs=4, seed=0, workers=2, backend="ray")
    assert remote.runs == local.runs and remote.history == local.history
    obs = np.array([0.3, 0.5], np.float32)
    np.testing.assert_array_equal(remote.policy.act(obs, {}), local.policy.act(obs, {}))
    _wait_for_cpus(ray_local, 2)


def test_bad_backend_settings_are_named():
    with pytest.raises(ValueError, match="backend"):
        train_across_runs("reinforce", [TINY], runs=1, seed=0, backend="slurm")
    with pytest.raises(ValueError, match="ray_address"):
        train_across_runs("reinforce", [TINY], runs=1, seed=0, ray_address="auto")
