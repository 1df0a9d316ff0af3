"""The worked example of a learner shipped by another package (examples/poe_learner):
the product-of-experts arithmetic, learning, and the entry point reaching ``mmenv compare``
from the command line and from Python with worker processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmenv import DUSEnv
from mmenv.learners import LEARNERS, LearnerError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "poe_learner"
TINY_DATA = {"n_train": 120, "n_val": 40, "n_test": 120}


@pytest.fixture
def poe_module(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    import mmenv_poe

    yield mmenv_poe
    sys.modules.pop("mmenv_poe", None)


def test_product_of_experts_is_the_normalised_product(poe_module):
    gen = torch.Generator().manual_seed(0)
    logits = {"a": torch.randn(5, 4, generator=gen), "b": torch.randn(5, 4, generator=gen)}
    product = logits["a"].softmax(1) * logits["b"].softmax(1)
    expected = product / product.sum(1, keepdim=True)
    assert torch.allclose(poe_module.product_of_experts(logits).exp(), expected, atol=1e-6)
    # a flat expert leaves the other's distribution unchanged; a confident one dominates
    flat = {"a": logits["a"], "b": torch.zeros(5, 4)}
    assert torch.allclose(poe_module.product_of_experts(flat).exp(), logits["a"].softmax(1), atol=1e-6)
    sharp = {"a": logits["a"], "b": torch.tensor([[20.0, 0, 0, 0]]).repeat(5, 1)}
    assert (poe_module.product_of_experts(sharp).argmax(1) == 0).all()
    with pytest.raises(LearnerError, match="joint_weight must be >= 0"):
        poe_module.ProductOfExpertsLearner(joint_weight=-1.0)


def test_poe_learns_and_its_product_beats_each_expert(poe_module):
    env = DUSEnv(dataset="synthetic", learner=poe_module.ProductOfExpertsLearner(), epochs=3, batch_budget=64)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(env.proportions_to_action([0.5, 0.5]))
        done = terminated or truncated
    assert set(info["train_loss"]) == {"total", "poe", "strong", "weak"}
    test = info["test"]
    # synthetic data, 4 classes (chance 0.25): each expert is ~0.8, their product above both
    assert test["fused"]["accuracy"] > max(test["strong"]["accuracy"], test["weak"]["accuracy"]) + 0.05, test
    env.close()


def _pip_install_example(target: Path) -> Path:
    """``pip install`` the example package (a copy, so the repository stays clean) into ``target``."""
    src = target.parent / "poe_src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(src)], check=True, capture_output=True, timeout=300)
    assert (next(target.glob("mmenv_poe_example-*.dist-info")) / "entry_points.txt").read_text().count("poe =") == 1
    return target


@pytest.fixture
def installed_poe(tmp_path, monkeypatch):
    site = _pip_install_example(tmp_path / "site")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), str(ROOT)]))
    yield site
    if "poe" in LEARNERS._entries:
        LEARNERS.unregister("poe")
    sys.modules.pop("mmenv_poe", None)


def _cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "mmenv", *args], env=env, cwd=str(ROOT), capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.subprocess
def test_installed_poe_reaches_compare_from_the_command_line(installed_poe, tmp_path):
    helped = _cli("compare", "--help")
    assert helped.returncode == 0 and "poe" in helped.stdout      # --help lists the installed learner
    out = tmp_path / "cli"
    done = _cli("compare", "--config", "tiny", "--learners", "poe", "--policies", "uniform,dus-h", "--seeds", "0,1",
                "--workers", "2", "--no-plots", "--no-progress", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    assert len(results) == 4 and {r["status"] for r in results} == {"ok"}, [r["error"] for r in results]
    assert {r["learner"] for r in results} == {"poe"}
    assert all(r["test"]["fused"]["accuracy"] > 0.4 for r in results)   # chance is 0.25


@pytest.mark.subprocess
def test_installed_poe_in_python_compare_with_worker_processes(installed_poe, tmp_path):
    from mmenv.experiments.compare import run_comparison
    from mmenv.experiments.config import config_from_dict

    cfg = config_from_dict({
        "policies": ["uniform"], "learners": ["poe", "baseline"], "datasets": ["synthetic"], "seeds": [0, 1],
        "env": {"epochs": 1, "batch_budget": 32}, "dataset_kwargs": {"synthetic": TINY_DATA},
        "learner_kwargs": {"poe": {"joint_weight": 0.5}},
        "workers": 2, "plots": False, "tensorboard": False, "out": str(tmp_path / "py"),
    })
    summary = run_comparison(cfg, progress=False)
    assert summary.status_counts == {"ok": 4}, [r["error"] for r in summary.results]
    poe_runs = [r for r in summary.results if r["learner"] == "poe"]
    assert len(poe_runs) == 2 and all(r["spec"]["learner_kwargs"] == {"joint_weight": 0.5} for r in poe_runs)
    # the workers built it by name: this process only listed the names
    assert "mmenv_poe" not in sys.modules


def _write_plugin(folder: Path, name: str) -> Path:
    """A plain module (no package, no entry point) that registers the PoE learner in code."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(
        "from mmenv.learners import register_learner\n"
        "from mmenv_poe import ProductOfExpertsLearner\n\n"
        f"register_learner('{name.replace('_', '-')}', ProductOfExpertsLearner)\n")
    return folder


def test_mmenv_plugins_modules_are_imported_when_names_are_looked_up(tmp_path, monkeypatch):
    from mmenv.errors import RegistryError
    from mmenv.registry import PLUGINS_ENV

    folder = _write_plugin(tmp_path, "poe_inproc_plugin")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.setenv(PLUGINS_ENV, "poe_inproc_plugin")
    try:
        assert "poe-inproc-plugin" in LEARNERS                 # a miss reads the plugins, like an entry point
        assert type(LEARNERS.make("poe-inproc-plugin", joint_weight=0.0)).__name__ == "ProductOfExpertsLearner"
        assert LEARNERS.names().count("poe-inproc-plugin") == 1   # imported once per process
        monkeypatch.setenv(PLUGINS_ENV, "poe_inproc_plugin, no_such_plugin_mod")
        with pytest.raises(RegistryError, match="'no_such_plugin_mod'.*MMENV_PLUGINS.*PYTHONPATH"):
            LEARNERS.names()
    finally:
        if "poe-inproc-plugin" in LEARNERS._entries:
            LEARNERS.unregister("poe-inproc-plugin")
        for mod in ("poe_inproc_plugin", "mmenv_poe"):
            sys.modules.pop(mod, None)


@pytest.mark.subprocess
def test_plugin_option_reaches_compare_worker_processes(tmp_path):
    folder = _write_plugin(tmp_path / "plugins", "poe_plugin")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(folder), str(EXAMPLE), str(ROOT)])}
    env.pop("MMENV_PLUGINS", None)

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "mmenv", *args], env=env, cwd=str(tmp_path), capture_output=True,
                              text=True, timeout=600)

    assert "poe-plugin" in cli("--plugin", "poe_plugin", "--help").stdout
    assert "poe-plugin" not in cli("--help").stdout
    out = tmp_path / "out"
    done = cli("--plugin", "poe_plugin", "compare", "--config", "tiny", "--learners", "poe-plugin", "--policies",
               "uniform", "--seeds", "0,1", "--workers", "2", "--no-plots", "--no-progress", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    assert len(results) == 2 and {r["status"] for r in results} == {"ok"}, [r["error"] for r in results]
    # without the plugin the name is unknown, before any run
    missing = cli("compare", "--config", "tiny", "--learners", "poe-plugin", "--out", str(tmp_path / "none"))
    assert missing.returncode == 2 and "unknown learner 'poe-plugin'" in missing.stderr
