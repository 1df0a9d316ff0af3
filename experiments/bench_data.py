"""The benchmark's data: run specs of an instance, what a run measured, and :class:`BenchData`.

Plain containers shared by the pipeline's stages (:mod:`mmenv.experiments.bench_stages`),
the report (:mod:`mmenv.experiments.bench_report`) and the figures; this module imports
none of them, so no import cycle runs through the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .bench_config import BenchConfig
from .grid import RunSpec
from .instances import Instance, InstanceSet
from .oracle import OracleResult, TunedConstant
from .report import FINISHED

__all__ = ["BENCH_ENV", "BenchData", "accuracy", "run_spec", "agent_seed_label"]

#: Settings every benchmark run shares on top of its instance's: the paper's reward (Eq. 5),
#: which needs no validation pass and makes ``reward_sum`` the Eq. 5 return.
BENCH_ENV: dict[str, Any] = {"reward": "dus"}


def accuracy(result: dict[str, Any] | None) -> float:
    """Fused test accuracy of a finished run; NaN for a missing, failed or diverged one."""
    if not result or result.get("status") != "ok":
        return float("nan")
    test = result.get("test") or {}
    return float((test.get("fused") or {}).get("accuracy", float("nan")))


def run_spec(inst: Instance, policy: str, policy_kwargs: dict[str, Any], seed: int) -> RunSpec:
    """The :class:`RunSpec` of ``policy`` on ``inst`` with run seed ``seed``."""
    env = {"epochs": inst.epochs, "batch_budget": inst.batch_budget, "step_every": inst.step_every, **BENCH_ENV}
    return RunSpec(dataset=inst.dataset, learner=inst.learner, policy=policy, seed=int(seed), env=env,
                   dataset_kwargs=dict(inst.dataset_kwargs), learner_kwargs=dict(inst.learner_kwargs),
                   policy_kwargs=dict(policy_kwargs))


def agent_seed_label(row: str, seed: int) -> str:
    """``agent:reinforce@seed3``: one agent seed of an agent row, as recorded (results.csv)."""
    return f"{row}@seed{int(seed)}"


@dataclass
class BenchData:
    """Everything the report needs, in plain containers (see :mod:`mmenv.experiments.bench_report`).

    ``acc[(instance label, policy label)]`` maps a seed to fused test accuracy;
    ``eq5[...]`` the same for the Eq. 5 return; ``schedules[...]`` to per-step proportions.
    """

    cfg: BenchConfig
    sets: list[InstanceSet]
    oracles: dict[str, OracleResult] = field(default_factory=dict)            # instance label -> choice
    tuned: dict[str, TunedConstant] = field(default_factory=dict)              # set name -> tuned constant
    acc: dict[tuple[str, str], dict[int, float]] = field(default_factory=dict)
    eq5: dict[tuple[str, str], dict[int, float]] = field(default_factory=dict)
    schedules: dict[tuple[str, str], dict[int, list[list[float]]]] = field(default_factory=dict)
    modalities: dict[str, tuple[str, ...]] = field(default_factory=dict)      # instance label -> names
    agents: dict[str, dict[str, Any]] = field(default_factory=dict)            # "set/label/m<k>" -> summary
    policies: list[str] = field(default_factory=list)                         # policy labels, report order
    agent_labels: list[str] = field(default_factory=list)
    agent_seeds: dict[str, list[int]] = field(default_factory=dict)           # agent row -> its agent seeds
    tuned_heuristics: dict[str, dict[str, Any]] = field(default_factory=dict)  # set -> label -> TunedHeuristic
    tuning_errors: list[str] = field(default_factory=list)                    # tuned rules left out
    dominant: dict[tuple[str, str], dict[int, int]] = field(default_factory=dict)  # modality ahead at the end
    runs_executed: int = 0
    runs_reused: int = 0
    failed: list[str] = field(default_factory=list)                           # runs that crashed

    def record(self, inst: Instance, label: str, seed: int, result: dict[str, Any]) -> None:
        key = (inst.label(), label)
        self.acc.setdefault(key, {})[int(seed)] = accuracy(result)
        rs = result.get("reward_sum") if result.get("status") == "ok" else None
        self.eq5.setdefault(key, {})[int(seed)] = float(rs) if rs is not None else float("nan")
        if result.get("proportions"):
            self.schedules.setdefault(key, {})[int(seed)] = result["proportions"]
        disc = result.get("discrepancy") if result.get("status") == "ok" else None
        if disc:
            # the modality that is ahead at the end of the run (largest cumulative discrepancy),
            # what DUS-H and the fixed ratio read and what the direction of an instance refers to
            last = np.asarray(disc[-1], dtype=np.float64)
            if np.isfinite(last).any():
                self.dominant.setdefault(key, {})[int(seed)] = int(np.nanargmax(last))
        if result.get("status") not in FINISHED:
            self.failed.append(f"{inst.label()} {label} seed {seed}: {result.get('error', result.get('status'))}")

    def seed_rows(self, label: str) -> list[str]:
        """The recorded labels of a row: its agent seeds' labels for an agent row, else itself."""
        seeds = self.agent_seeds.get(label)
        return [agent_seed_label(label, s) for s in seeds] if seeds else [label]

    def values(self, inst: Instance, label: str, seeds: Sequence[int]) -> np.ndarray:
        d = self.acc.get((inst.label(), label), {})
        return np.asarray([d.get(int(s), float("nan")) for s in seeds], dtype=np.float64)
