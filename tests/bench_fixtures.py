"""Shared pieces of the benchmark tests: a tiny instance set and preset, and a fake executor.

The fake executor answers every run at once with a deterministic accuracy (a hash of the
task, the policy and the seed; uniform gets no policy effect), so the whole pipeline
(search, tuning, references, scoring, report) runs in seconds without training anything.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

TINY_SET: dict[str, Any] = {
    "name": "tiny-synthetic",
    "defaults": {"dataset": "synthetic", "learner": "baseline",
                 "dataset_kwargs": {"n_train": 96, "n_val": 32, "n_test": 64, "dims": 8},
                 "env": {"epochs": 2, "batch_budget": 16}},
    "train": [{"name": "tr-a", "dataset_kwargs": {"seed": 1}},
              {"name": "tr-b", "dataset_kwargs": {"seed": 2, "strong_position": 1}}],
    "test": [{"name": "te-a", "dataset_kwargs": {"seed": 3}},
             {"name": "te-b", "dataset_kwargs": {"seed": 4, "strong_position": 1}, "learner": "mla"}],
}


def tiny_preset(folder: Path, agents: Sequence[dict[str, Any]] = (), set_name: str = "tiny-set.yaml",
                **changes: Any) -> Path:
    """A tiny preset in ``folder`` naming the tiny set by a path relative to the preset."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / set_name).write_text(yaml.safe_dump(TINY_SET))
    preset = {"name": "tiny", "instance_sets": [set_name], "tuning_seeds": [100, 101], "eval_seeds": [0, 1],
              "curve_seeds": [200], "grid": {"shares": [0.3, 0.7], "phase_shares": [0.3, 0.7], "switches": [0.5]},
              "tuned_constant_shares": [0.3, 0.5, 0.7], "headroom_splits": ["train", "test"],
              "agents": list(agents), "curve_every": 2, "workers": 1, "out": str(folder / "out"),
              "bootstrap_resamples": 200}
    preset.update(changes)
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(preset))
    return path


def fake_accuracy(spec: Any) -> float:
    def h(*parts: Any) -> int:
        return int(hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:8], 16)

    base = 0.5 + h(spec.dataset_kwargs, spec.learner, spec.seed) % 100 / 1000
    effect = 0.0 if spec.policy == "uniform" else (h(spec.dataset_kwargs, spec.learner, spec.policy,
                                                     spec.policy_kwargs) % 200 - 60) / 2000
    return base + effect + h(spec.key) % 10 / 10000


class FakeExecutor:
    """An :class:`~mmenv.experiments.bench_runner.Executor` that trains nothing (module docstring).

    ``fail``: policies whose runs crash (status ``failed``).
    """

    def __init__(self, fail: Sequence[str] = ()) -> None:
        self.fail = set(fail)
        self.played: list[str] = []

    def __call__(self, specs: Sequence[Any], out: Path) -> Iterator[dict[str, Any]]:
        from mmenv.experiments.grid import new_result

        for spec in specs:
            self.played.append(spec.key)
            if spec.policy in self.fail:
                yield new_result(spec, error="RuntimeError: planted failure")
                continue
            result = new_result(spec, status="ok")
            result.update(test={"fused": {"accuracy": fake_accuracy(spec)}}, reward_sum=-0.1, steps=2,
                          proportions=[[0.5, 0.5], [0.5, 0.5]])
            yield result


def fake_run_specs(fail: Sequence[str] = ()) -> Any:
    """A stand-in for :func:`mmenv.experiments.backends.run_specs` (for the command line)."""
    executor = FakeExecutor(fail)

    def run_specs(specs: Sequence[Any], out: str, tensorboard: bool, backend: str = "process", workers: int = 1,
                  ray_address: str | None = None) -> Iterator[dict[str, Any]]:
        return executor(specs, Path(out))

    return run_specs
