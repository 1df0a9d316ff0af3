"""How long ``mmenv bench`` takes with the batched and the one-run-at-a-time executors.

Two modes:

* ``--whole``: run the preset (agents included unless ``--no-agents``) once per executor in
  a fresh output folder and print ``RESULT bench_<preset>_seconds <wall s>`` for the
  batched executor and ``RESULT bench_<preset>_seconds_single <wall s>`` for the single
  one (measured wall time on this machine, whatever its load).
* default, **an estimate from a fixed subset** (labelled ``_estimate``): the runs of the
  preset's search, tuning, reference and scoring stages are counted from its plan (no run
  played); a fixed subset of them is played by each executor in this process (one
  thread): per instance set, its first test instance's oracle grid on the first tuning
  seed and its reference policies on the first evaluation seed. Their CPU seconds per run
  times the set's run count, divided by ``min(workers, --cores)`` (the runs of a stage
  are independent), plus ``--agent-runs-timed`` of each agent's training runs timed the
  same way, scaled to the agent's run count and divided by ``min(its workers, --cores)``,
  plus the agents' evaluation and learning-curve runs at the single runs' cost, gives the
  wall time on a quiet machine with ``--cores`` (default 2) free cores. Lines ``RESULT bench_<preset>_seconds_estimate <s>`` (batched) and
  ``RESULT bench_<preset>_seconds_estimate_single <s>``, and the stage-runs speed-up
  ``RESULT bench_<preset>_stage_speedup <x>`` (single CPU s / batched CPU s, same runs).

CPU time, not wall time, for the estimate: on a shared machine waiting for a core is not
the benchmark's cost. Both executors are timed in the same process, back to back.

    OMP_NUM_THREADS=1 PYTHONPATH=. nice python benchmarks/bench_timing.py --preset quick
    OMP_NUM_THREADS=1 PYTHONPATH=. nice python benchmarks/bench_timing.py --preset full
    OMP_NUM_THREADS=1 PYTHONPATH=. nice python benchmarks/bench_timing.py --preset quick --whole --no-agents
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmenv.experiments.bench_config import BenchConfig, load_bench_config
from mmenv.experiments.bench_data import run_spec
from mmenv.experiments.bench_runner import make_executor
from mmenv.experiments.bench_stages import TUNED_BASELINES, BenchPlan, TunedConstantBaseline, plan_bench
from mmenv.experiments.grid import RunSpec
from mmenv.experiments.instances import InstanceSet
from mmenv.experiments.oracle import constant_candidate

CLOCK = time.process_time


def stage_specs(plan: BenchPlan, iset: InstanceSet) -> list[RunSpec]:
    """The unique runs of the search, tuning, reference and scoring stages on ``iset``.

    The scoring stage plays the oracle chosen by the search and the tuned constant; its
    number of runs does not depend on which candidates win, so stand-ins are counted.
    """
    cfg = plan.cfg
    specs = [plan.spec(inst, c, s) for inst in plan.headroom_instances(iset) for c in plan.grid(plan.m(inst))
             for s in cfg.tuning_seeds]
    specs += [s for baseline in TUNED_BASELINES for s in baseline.search_specs(plan, iset)]
    for inst in iset.test:
        specs += [run_spec(inst, ref, cfg.reference_kwargs.get(ref, {}), s) for ref in cfg.references
                  for s in cfg.eval_seeds]
        tuned = constant_candidate(plan.m(inst), 0, cfg.tuned_constant_shares[0])
        specs += [plan.spec(inst, tuned, s) for s in cfg.eval_seeds]
    for inst in plan.headroom_instances(iset):
        oracle = plan.grid(plan.m(inst))[-1]
        specs += [plan.spec(inst, oracle, s) for s in cfg.eval_seeds]
        seeds = cfg.eval_seeds + (cfg.curve_seeds if inst.split == "test" else [])
        specs += [plan.spec(inst, plan.uniform(inst), s) for s in seeds]
    return list({s.key: s for s in specs}.values())


def tuned_rule_scoring_runs(plan: BenchPlan, iset: InstanceSet) -> int:
    """The scoring runs of the tuned rules other than the constant (fixed ratio, DUS-H, val-gain:
    one per test instance x evaluation seed each); counted, not built, since which setting wins
    is only known after the tuning stage."""
    rules = [b for b in TUNED_BASELINES if not isinstance(b, TunedConstantBaseline)]
    return len(rules) * len(iset.test) * len(plan.cfg.eval_seeds)


def agent_side_runs(plan: BenchPlan) -> int:
    """Runs the agents play besides training, one at a time in the driver: their
    evaluation (test instances x evaluation seeds) and learning-curve points (test
    instances x curve seeds, every ``curve_every`` training runs and at the start)."""
    from mmenv.experiments.bench_stages import agent_jobs

    cfg, n = plan.cfg, 0
    for job in agent_jobs(plan):
        n += len(job.test) * len(cfg.eval_seeds)
        if cfg.curve_every and job.test:
            n += (job.spec.runs // cfg.curve_every + 1) * len(job.test) * len(cfg.curve_seeds)
    return n


def subset_specs(plan: BenchPlan, iset: InstanceSet) -> list[RunSpec]:
    """The fixed subset of ``iset``: its first test instance's oracle grid on the first
    tuning seed and its reference policies on the first evaluation seed."""
    cfg = plan.cfg
    inst = iset.test[0]
    specs = [plan.spec(inst, c, cfg.tuning_seeds[0]) for c in plan.grid(plan.m(inst))]
    specs += [run_spec(inst, ref, cfg.reference_kwargs.get(ref, {}), cfg.eval_seeds[0]) for ref in cfg.references]
    return list({s.key: s for s in specs}.values())


def time_executor(name: str, specs: list[RunSpec]) -> tuple[float, list[dict[str, Any]]]:
    """CPU seconds of this process to play ``specs`` with executor ``name`` (one worker)."""
    executor = make_executor(name, "process", 1)
    with tempfile.TemporaryDirectory() as tmp:
        start = CLOCK()
        results = list(executor(specs, Path(tmp)))
        return CLOCK() - start, results


def time_agents(cfg: BenchConfig, plan: BenchPlan, runs: int, cores: int) -> float:
    """CPU seconds of the preset's agents' training, from ``runs`` timed runs of each agent job
    (one per agent row, instance set, number of modalities and agent seed, as the benchmark
    trains them: :func:`~mmenv.experiments.bench_stages.agent_jobs`)."""
    from mmenv.agents.across_runs import train_across_runs
    from mmenv.experiments.bench_stages import agent_jobs

    total = 0.0
    for job in agent_jobs(plan):
        spec = job.spec
        train = [i.env_kwargs() for i in job.train]
        start = CLOCK()
        train_across_runs(spec.algo, train, runs=runs, seed=job.seed, reward=spec.reward,
                          observation=spec.observation, workers=1, **spec.options)
        per_run = (CLOCK() - start) / runs
        workers = max(1, min(spec.workers, cores))
        total += per_run * spec.runs / workers
        print(f"  agent {job.key}: {per_run:.2f} CPU s per training run (from {runs}) x {spec.runs} runs / "
              f"{workers} worker(s)", flush=True)
    return total


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def estimate(cfg: BenchConfig, agent_runs: int, cores: int) -> None:
    plan = plan_bench(cfg, tempfile.mkdtemp(prefix="bench-timing-"))
    workers = max(1, min(cfg.workers, cores))
    print(f"{cfg.name}: workers {cfg.workers}, estimate for {cores} free cores; load average {_load()}", flush=True)
    time_executor("batched", subset_specs(plan, plan.sets[0])[:2])   # warm-up: imports, first reset's costs
    stage = {"batched": 0.0, "single": 0.0}
    timed = {"batched": 0.0, "single": 0.0}
    single_per_run = []
    for iset in plan.sets:
        total, subset = stage_specs(plan, iset), subset_specs(plan, iset)
        count = len(total) + tuned_rule_scoring_runs(plan, iset)
        print(f" {iset.name}: {count} stage runs (search, tuning, references, scoring); timed subset "
              f"{len(subset)} runs of {iset.test[0].label()}", flush=True)
        for name in ("batched", "single"):
            cpu, results = time_executor(name, subset)
            bad = [r["key"] for r in results if r.get("status") != "ok"]
            timed[name] += cpu
            stage[name] += cpu / len(subset) * count
            print(f"  {name}: {cpu:.1f} CPU s for {len(subset)} runs ({cpu / len(subset):.3f} s/run); load average "
                  f"{_load()}" + (f"; not ok: {bad}" if bad else ""), flush=True)
        single_per_run.append(timed["single"] / len(subset))
    agents = time_agents(cfg, plan, agent_runs, cores) if cfg.agents and agent_runs > 0 else 0.0
    side = agent_side_runs(plan) if cfg.agents and agent_runs > 0 else 0
    agents += side * float(np.mean(single_per_run))
    print(f"  agents: {agents:.0f} s (training on their own workers, and {side} evaluation / curve runs one at a "
          f"time); load average {_load()}", flush=True)
    slug = cfg.name.replace("-", "_")
    print(f"RESULT bench_{slug}_stage_speedup {timed['single'] / timed['batched']:.2f}")
    for name, suffix in (("batched", ""), ("single", "_single")):
        stages = stage[name] / workers
        print(f"  estimate {name}: stages {stages:.0f} s + agents {agents:.0f} s (quiet machine, {workers} worker(s) "
              f"on {cores} cores)")
        print(f"RESULT bench_{slug}_seconds_estimate{suffix} {stages + agents:.0f}", flush=True)


def whole(cfg: BenchConfig, no_agents: bool) -> None:
    from mmenv.experiments.bench import run_bench

    slug = cfg.name.replace("-", "_")
    for name, suffix in (("batched", ""), ("single", "_single")):
        out = Path(tempfile.mkdtemp(prefix=f"bench-timing-{name}-"))
        cfg_run = load_bench_config(cfg.source, {"out": str(out / "out"), "executor": name})
        cfg_run.plots = False
        if no_agents:
            cfg_run.agents = []
        load = os.getloadavg()[0]
        start = time.perf_counter()
        summary = run_bench(cfg_run, progress=False)
        wall = time.perf_counter() - start
        print(f"  {name}: {summary.data.runs_executed} runs, {wall:.1f} s wall (load average {load:.1f} -> "
              f"{os.getloadavg()[0]:.1f})", flush=True)
        print(f"RESULT bench_{slug}_seconds{suffix} {wall:.1f}", flush=True)
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--whole", action="store_true", help="run the whole preset per executor (wall time)")
    parser.add_argument("--no-agents", action="store_true", help="leave the agents out (both modes)")
    parser.add_argument("--agent-runs-timed", type=int, default=4, help="training runs timed per agent (estimate)")
    parser.add_argument("--cores", type=int, default=2,
                        help="free cores of the machine estimated for (workers beyond them do not help)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = load_bench_config(args.preset)
    if args.whole:
        whole(cfg, args.no_agents)
    else:
        estimate(cfg, 0 if args.no_agents else args.agent_runs_timed, args.cores)


if __name__ == "__main__":
    main()
