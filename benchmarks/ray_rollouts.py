"""Runs per hour of across-run training: local worker processes against Ray actors.

Episodic REINFORCE (``train_across_runs("reinforce", ...)``, its preset: 2 runs per update)
on the train instances of ``benchmarks/across_runs.py`` (default synthetic data, data seeds
1, 2, 3, OGM-GE, 5 epochs, N_B = 64), agent seed 0, in four set-ups:

* ``process x1``: one process (the runs are played in the driver);
* ``process x2``: two local worker processes (forkserver);
* ``ray x1`` / ``ray x2``: one / two Ray actors on a local Ray instance started with 1 / 2
  CPUs (``backend="ray"``; the instance's start-up is counted).

Each set-up trains twice, ``--short`` and ``--runs`` runs, and reports the wall time of both,
the fixed cost (pool / Ray start-up, extrapolated to 0 runs) and the marginal rate
``(runs - short) / (wall(runs) - wall(short))`` in runs per hour; set-ups are interleaved
and repeated ``--repeats`` times (medians). Every set-up must produce the same history (the
script checks it): workers and backends change the speed, not the agent.

    OMP_NUM_THREADS=1 PYTHONPATH=. nice python benchmarks/ray_rollouts.py --out runs/ray_rollouts.json

Add ``--ray-address auto`` (or set ``RAY_ADDRESS``) to measure the Ray set-ups on a running
cluster instead (then ``x1``/``x2`` are the number of actors, and ``--actors 4,8,16`` adds more).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

TRAIN = [{"dataset": "synthetic", "dataset_kwargs": {"seed": s}, "learner": "ogm-ge", "epochs": 5, "batch_budget": 64}
         for s in (1, 2, 3)]


def train(backend: str, workers: int, runs: int, address: str | None, per_update: int) -> tuple[float, list]:
    from mmenv.agents.across_runs import train_across_runs

    extra = {"ray_address": address} if backend == "ray" and address else {}
    start = time.perf_counter()
    agent = train_across_runs("reinforce", TRAIN, runs=runs, seed=0, workers=workers, backend=backend,
                              episodes_per_update=per_update, **extra)
    return time.perf_counter() - start, agent.history


class _Echo:
    """An actor that receives what a REINFORCE rollout receives and returns at once."""

    def play(self, config: dict, weights: dict, task: tuple[int, int, int]) -> tuple[list, dict]:
        return [], {"task": task}


def ray_overhead(calls: int = 200) -> dict[str, float]:
    """Milliseconds per rollout call on a local 1-CPU Ray instance with no work in it (median)."""
    import torch
    from mmenv.agents.reinforce import ReinforcePolicy

    from mmenv.cluster import ray_session

    policy = ReinforcePolicy(seed=0, mode="episodic")
    policy.build(2, 2)
    weights = policy.weights()
    with ray_session(num_cpus=1) as ray:
        actor = ray.remote(num_cpus=1)(_Echo).remote()
        ray.get(actor.play.remote({}, weights, (0, 0, 0)))  # the actor is up
        times = []
        for i in range(calls):
            t = time.perf_counter()
            ray.get(actor.play.remote({}, ray.put(weights), (i, 0, 0)))
            times.append(1000 * (time.perf_counter() - t))
    n_bytes = sum(v.numel() * v.element_size() for v in weights.values() if isinstance(v, torch.Tensor))
    return {"median_ms": statistics.median(times), "p90_ms": sorted(times)[int(0.9 * len(times))],
            "weights_bytes": float(n_bytes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=48)
    parser.add_argument("--short", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--actors", default="1,2", help="worker processes / Ray actors to measure")
    parser.add_argument("--per-update", type=int, default=2, help="REINFORCE episodes_per_update (preset: 2)")
    parser.add_argument("--ray-address", default=None, help="a running cluster (default: local Ray instances)")
    parser.add_argument("--skip-process", action="store_true", help="measure the Ray set-ups only")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.short >= args.runs:
        parser.error("--short must be below --runs")

    import torch

    torch.set_num_threads(1)
    counts = [int(x) for x in args.actors.split(",")]
    setups = ([] if args.skip_process else [("process", n) for n in counts]) + [("ray", n) for n in counts]
    walls: dict[str, dict[int, list[float]]] = {f"{b} x{n}": {args.short: [], args.runs: []} for b, n in setups}
    reference: dict[int, list] = {}
    same = True
    load_before = os.getloadavg()
    for _ in range(args.repeats):
        for runs in (args.short, args.runs):
            for backend, n in setups:
                wall, history = train(backend, n, runs, args.ray_address, args.per_update)
                walls[f"{backend} x{n}"][runs].append(wall)
                same &= reference.setdefault(runs, history) == history
                print(f"{backend} x{n}: {runs} runs in {wall:.1f} s", flush=True)
    rows = []
    for name, by_runs in walls.items():
        short, full = statistics.median(by_runs[args.short]), statistics.median(by_runs[args.runs])
        marginal = (args.runs - args.short) / max(full - short, 1e-9)
        rows.append({"setup": name, "wall_short_s": short, "wall_s": full, "runs_per_hour": 3600 * args.runs / full,
                     "marginal_runs_per_hour": 3600 * marginal, "fixed_cost_s": short - args.short / marginal,
                     "walls": by_runs})
    overhead = ray_overhead()
    result = {"ray_call_overhead": overhead, "runs": args.runs, "short": args.short, "repeats": args.repeats, "per_update": args.per_update,
              "ray_address": args.ray_address, "same_history": same, "load_before": load_before,
              "load_after": os.getloadavg(), "cpus": os.cpu_count(), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"\nload average {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; "
          f"same history in every set-up: {same}")
    print(f"Ray call overhead per run (no work, local instance): median {overhead['median_ms']:.2f} ms, "
          f"p90 {overhead['p90_ms']:.2f} ms, weights {overhead['weights_bytes'] / 1024:.1f} KiB")
    print(f"| set-up | {args.runs} runs (s) | runs/hour | marginal runs/hour | fixed cost (s) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['setup']} | {r['wall_s']:.1f} | {r['runs_per_hour']:.0f} | {r['marginal_runs_per_hour']:.0f} | "
              f"{r['fixed_cost_s']:.1f} |")


if __name__ == "__main__":
    main()
