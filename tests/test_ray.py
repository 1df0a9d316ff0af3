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
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
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


def test_more_actors_than_cluster_cpus_is_refused(ray_local):
    with pytest.raises(ValueError, match="3 Ray actors need 3 CPUs, but the Ray cluster has 2"):
        train_across_runs("reinforce", [TINY], runs=2, seed=0, workers=3, backend="ray")


# ---------------------------------------------------------------------- mmenv bench
BENCH_SET = {
    "name": "tiny-ray",
    "defaults": {"dataset": "synthetic", "learner": "baseline",
                 "dataset_kwargs": {"n_train": 96, "n_val": 32, "n_test": 64, "dims": 8},
                 "env": {"epochs": 2, "batch_budget": 16}},
    "train": [{"name": "tr-a", "dataset_kwargs": {"seed": 1}},
              {"name": "tr-b", "dataset_kwargs": {"seed": 2, "strong_position": 1}}],
    "test": [{"name": "te-a", "dataset_kwargs": {"seed": 3}},
             {"name": "te-b", "dataset_kwargs": {"seed": 4, "strong_position": 1}, "learner": "mla"}],
}


def _bench_preset(tmp_path: Path) -> Path:
    (tmp_path / "set.yaml").write_text(yaml.safe_dump(BENCH_SET))
    preset = {"name": "tiny-ray", "instance_sets": [str(tmp_path / "set.yaml")], "tuning_seeds": [100, 101],
              "eval_seeds": [0, 1], "curve_seeds": [200],
              "grid": {"shares": [0.7], "phase_shares": [0.3, 0.7], "switches": [0.5]},
              "tuned_constant_shares": [0.3, 0.5, 0.7], "references": ["uniform", "dus-h", "reinforce"],
              "agents": [{"algo": "reinforce", "runs": 4, "workers": 2}], "curve_every": 2, "workers": 1,
              "bootstrap_resamples": 200}
    path = tmp_path / "tiny-ray.yaml"
    path.write_text(yaml.safe_dump(preset))
    return path


def _bench(capsys, *args: str) -> list[str]:
    from mmenv.cli import main

    assert main(["bench", *args, "--no-progress", "--no-plots", "--no-tensorboard"]) == 0
    return capsys.readouterr().out.strip().splitlines()


def _runs(out: Path) -> dict[str, dict]:
    return {p.stem: _strip(json.loads(p.read_text())) for p in (out / "runs").glob("*.json")}


def test_bench_on_ray_gives_the_process_backends_result_lines_and_resumes(ray_local, tmp_path, capsys):
    preset = str(_bench_preset(tmp_path))
    local = _bench(capsys, "--preset", preset, "--out", str(tmp_path / "local"))
    address = ray_local.get_runtime_context().gcs_address
    on_ray = _bench(capsys, "--preset", preset, "--out", str(tmp_path / "ray"), "--backend", "ray",
                    "--ray-address", address, "--workers", "2")
    assert any("[ray]" in line for line in on_ray)
    results = [line for line in on_ray if line.startswith("RESULT ")]
    assert len(results) == 8 and results == [line for line in local if line.startswith("RESULT ")]
    # On so tiny a preset no headroom CI excludes 0 (the IQMs are nan); the strong check is that
    # every run (search, references, scoring, the agent's evaluation) gave the same numbers.
    assert _runs(tmp_path / "ray") == _runs(tmp_path / "local")

    # Resumable like the process backend: only the runs whose files are gone run again.
    grid_runs = [p for p in sorted((tmp_path / "ray" / "runs").glob("*.json"))
                 if not json.loads(p.read_text())["policy"].startswith("agent-")][:3]
    for p in grid_runs:
        p.unlink()
    resumed = _bench(capsys, "--preset", preset, "--out", str(tmp_path / "ray"), "--backend", "ray",
                     "--ray-address", address, "--workers", "2")
    assert any(re.match(r"3 run\(s\) executed, \d+ reused", line) for line in resumed), resumed[-8:]
    assert [line for line in resumed if line.startswith("RESULT ")] == results


def test_bad_backend_settings_are_named(tmp_path):
    from mmenv.experiments.bench_config import BenchConfigError, load_bench_config

    with pytest.raises(ValueError, match="backend"):
        train_across_runs("reinforce", [TINY], runs=1, seed=0, backend="slurm")
    with pytest.raises(ValueError, match="ray_address"):
        train_across_runs("reinforce", [TINY], runs=1, seed=0, ray_address="auto")
    with pytest.raises(BenchConfigError, match="backend"):
        load_bench_config(_bench_preset(tmp_path), overrides={"backend": "slurm"})
