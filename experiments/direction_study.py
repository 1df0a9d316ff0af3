"""Which way does the best constant share go? Per instance: the direction and the headroom.

For every instance of the given instance sets this plays uniform and every constant share
(modality ``j`` gets ``s``, the others split the rest) on the **tuning seeds only**, then
reports per instance:

* **dominant**: the modality that is ahead under uniform — the largest cumulative
  discrepancy at the end of the run (mean over the seeds), which is what DUS-H and the fixed
  ratio read (under uniform batches the per-sample and raw readings agree);
* **direction** of the best constant share (best mean fused test accuracy over the seeds):
  ``up`` when it gives the dominant modality *less* than ``1/m`` (the modalities behind get
  more: what the fixed ratio and DUS-H do), ``down`` when it gives it *more* (the modalities
  behind are noisy, not slow: their extra batch hurts), ``none`` when uniform is best;
* **headroom**: best constant minus uniform, paired by seed, with its 95 % t interval.
  The best share is chosen on the same seeds, so the headroom is optimistic (the winner's
  curse); the benchmark re-measures its oracle on evaluation seeds.

Runs go through the resumable backends of ``mmenv compare`` (one JSON per run under
``OUT/runs``), so a second call reuses every finished run::

    nice python -m mmenv.experiments.direction_study --sets direction-train direction-test \\
        --seeds 100 101 102 --workers 2 --out runs/direction

Writes ``OUT/direction.json`` and ``OUT/direction.md`` (the table docs/benchmark.md shows).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmenv.atomic import atomic_write_text

from .grid import RunSpec
from .instances import Instance, load_instance_set, modality_names
from .oracle import Candidate, constant_candidate
from .report import FINISHED, load_results, write_result
from .stats import paired_ci
from .tuning import run_accuracy

__all__ = ["DirectionRow", "constant_candidates", "study_specs", "direction_of", "run_study", "main"]

DEFAULT_SHARES = (0.2, 0.8)
#: With three or more modalities each share is given to every modality in turn: fewer shares keep it cheap.
DEFAULT_SHARES_MANY = (0.6,)


@dataclass
class DirectionRow:
    """One instance's measurement (accuracies as fractions, headroom in points)."""

    set_name: str
    name: str
    split: str
    learner: str
    m: int
    kind: str                      # the designed reason for the weak modality (tags.kind), "" when untagged
    dominant: str
    discrepancy: list[float]       # mean final cumulative discrepancy per modality under uniform
    unimodal: list[float]          # mean per-modality test accuracy under uniform
    uniform: float
    best: str
    best_acc: float
    dominant_share: float          # the dominant modality's share in the best constant
    direction: str                 # "up", "down" or "none"
    headroom: float                # points
    lo: float
    hi: float
    seeds: list[int]
    wall_s: float                  # mean wall time of one run

    @property
    def clear(self) -> bool:
        return bool(np.isfinite(self.lo) and self.lo > 0)


def constant_candidates(m: int, shares: Sequence[float] = DEFAULT_SHARES,
                        shares_many: Sequence[float] = DEFAULT_SHARES_MANY) -> list[Candidate]:
    """Uniform and every distinct constant share (for two modalities ``m0=0.2`` is ``m1=0.8``);
    ``shares_many`` replaces ``shares`` for three or more modalities."""
    shares = shares if m == 2 else shares_many
    out = [constant_candidate(m, 0, 1.0 / m)]
    seen = {out[0].vector_key}
    for j in range(m):
        for s in shares:
            c = constant_candidate(m, j, s)
            if c.vector_key not in seen:
                seen.add(c.vector_key)
                out.append(c)
    return out


def _spec(inst: Instance, c: Candidate, seed: int) -> RunSpec:
    # the benchmark's run settings (experiments.bench.run_spec): the instance's env plus reward "dus"
    env = {"epochs": inst.epochs, "batch_budget": inst.batch_budget, "step_every": inst.step_every, "reward": "dus"}
    return RunSpec(dataset=inst.dataset, learner=inst.learner, policy=c.policy, seed=int(seed), env=env,
                   dataset_kwargs=dict(inst.dataset_kwargs), learner_kwargs=dict(inst.learner_kwargs),
                   policy_kwargs=c.policy_kwargs)


def study_specs(instances: Sequence[Instance], seeds: Sequence[int], shares: Sequence[float] = DEFAULT_SHARES,
                shares_many: Sequence[float] = DEFAULT_SHARES_MANY) -> list[RunSpec]:
    """Every run of the study: instances x constant candidates x seeds."""
    return [_spec(inst, c, s) for inst in instances
            for c in constant_candidates(len(modality_names(inst)), shares, shares_many) for s in seeds]


def direction_of(dominant_share: float, m: int, tol: float = 1e-6) -> str:
    """``"up"`` when the dominant modality gets less than ``1/m``, ``"down"`` when more, else ``"none"``."""
    if dominant_share < 1.0 / m - tol:
        return "up"
    if dominant_share > 1.0 / m + tol:
        return "down"
    return "none"


def _row(inst: Instance, results: dict[str, dict[str, Any]], seeds: Sequence[int],
         shares: Sequence[float], shares_many: Sequence[float]) -> DirectionRow:
    names = list(modality_names(inst))
    m = len(names)
    cands = constant_candidates(m, shares, shares_many)
    acc = {c.label: np.array([run_accuracy(results.get(_spec(inst, c, s).key)) for s in seeds]) for c in cands}
    uni = [results.get(_spec(inst, cands[0], s).key) or {} for s in seeds]
    disc = np.nanmean([np.asarray(r["discrepancy"][-1], dtype=float) if r.get("discrepancy") else np.full(m, np.nan)
                       for r in uni], axis=0)
    unimodal = [float(np.nanmean([((r.get("test") or {}).get(n) or {}).get("accuracy", np.nan) for r in uni]))
                for n in names]
    dominant = int(np.nanargmax(disc)) if np.isfinite(disc).any() else 0
    means = {k: float(np.mean(v)) if np.isfinite(v).all() else float("nan") for k, v in acc.items()}
    best = max((c for c in cands if np.isfinite(means[c.label])), key=lambda c: means[c.label], default=cands[0])
    share = float(best.phases[0][dominant])
    h, lo, hi = paired_ci(acc[best.label], acc["uniform"]) if best.label != "uniform" else (0.0, 0.0, 0.0)
    walls = [float(r.get("wall_time_s", np.nan)) for c in cands for s in seeds
             for r in [results.get(_spec(inst, c, s).key) or {}]]
    return DirectionRow(inst.set_name, inst.name, inst.split, inst.learner, m, str(inst.tags.get("kind", "")),
                        names[dominant], [round(float(x), 4) for x in disc], [round(x, 4) for x in unimodal],
                        means["uniform"], best.label, means[best.label], share, direction_of(share, m),
                        100 * h, 100 * lo, 100 * hi, [int(s) for s in seeds], float(np.nanmean(walls)))


def run_study(sets: Sequence[str], seeds: Sequence[int], out: str | Path, shares: Sequence[float] = DEFAULT_SHARES,
              workers: int = 2, only: Sequence[str] | None = None,
              shares_many: Sequence[float] = DEFAULT_SHARES_MANY) -> list[DirectionRow]:
    """Run (or resume) the study; return one :class:`DirectionRow` per instance."""
    from .backends import run_specs

    out = Path(out)
    instances = [i for name in sets for i in load_instance_set(name).instances if not only or i.name in only]
    specs = {s.key: s for s in study_specs(instances, seeds, shares, shares_many)}
    results = {k: r for k, r in load_results(out / "runs", list(specs)).items() if r.get("status") in FINISHED}
    todo = [s for k, s in specs.items() if k not in results]
    if todo:
        for r in run_specs(todo, str(out), False, "process", workers):
            write_result(out / "runs", r)
            results[r["key"]] = r
    rows = [_row(i, results, seeds, shares, shares_many) for i in instances]
    atomic_write_text(out / "direction.json", json.dumps([asdict(r) for r in rows], indent=1))
    atomic_write_text(out / "direction.md", table(rows))
    return rows


def table(rows: Sequence[DirectionRow]) -> str:
    """The Markdown table of the rows (headroom in points with its 95 % CI)."""
    lines = ["| set / instance | split | learner | m | designed | dominant (disc.) | best constant | direction | "
             "headroom [95% CI] | seeds |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mark = "" if r.clear else " (n.s.)"
        lines.append(f"| {r.set_name}/{r.name} | {r.split} | {r.learner} | {r.m} | {r.kind or '-'} | "
                     f"{r.dominant} ({', '.join(f'{d:.2f}' for d in r.discrepancy)}) | {r.best} | {r.direction}{mark} | "
                     f"{r.headroom:+.1f} [{r.lo:+.1f}, {r.hi:+.1f}] | {','.join(map(str, r.seeds))} |")
    up = sum(r.direction == "up" and r.clear for r in rows)
    down = sum(r.direction == "down" and r.clear for r in rows)
    lines.append("")
    lines.append(f"clear headroom: {up} up / {down} down of {len(rows)} instances")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sets", nargs="+", default=["direction-train", "direction-test"])
    p.add_argument("--seeds", nargs="+", type=int, default=[100, 101, 102], help="tuning seeds (never evaluation)")
    p.add_argument("--shares", nargs="+", type=float, default=list(DEFAULT_SHARES), help="shares, two modalities")
    p.add_argument("--shares-many", nargs="+", type=float, default=list(DEFAULT_SHARES_MANY),
                   help="shares, three or more modalities (each modality in turn)")
    p.add_argument("--only", nargs="*", default=None, help="instance names to keep")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="runs/direction")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    rows = run_study(args.sets, args.seeds, args.out, args.shares, args.workers, args.only, args.shares_many)
    print(table(rows))
    print(f"wall {time.perf_counter() - t0:.0f} s; mean run {np.nanmean([r.wall_s for r in rows]):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
