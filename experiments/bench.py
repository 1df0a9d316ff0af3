"""``mmenv bench``: a benchmark in which sampling policies can be told apart.

For every instance set of the preset (:mod:`mmenv.experiments.instances`):

1. **Search runs** (tuning seeds): the oracle grid (:func:`~mmenv.experiments.oracle.candidate_grid`)
   on every test instance (and train instance, with ``headroom_splits: [train, test]``), and the
   constant shares on every train instance for the tuned constant. **Reference runs**
   (evaluation seeds): uniform, DUS-H, the fixed ratio, DUS w/o RL and the paper's online
   REINFORCE on every test instance.
2. **Choices**: per instance the oracle (best mean on the tuning seeds); per set the tuned
   constant (best mean gain over the train instances on the tuning seeds).
   **Scoring runs** (evaluation and curve seeds): the oracle, uniform and the tuned constant.
3. **Agents** (:func:`mmenv.agents.across_runs.train_across_runs`) train on the train
   instances (one agent per number of modalities), with a learning curve on the curve
   seeds of the test instances, and are evaluated on the test instances x evaluation seeds.
4. **Report**: headroom (oracle - uniform, paired 95% t CI over evaluation seeds), normalised
   scores ``(acc - uniform) / (oracle - uniform)`` on test instances whose headroom CI
   excludes 0, their IQM and mean with stratified bootstrap 95% CIs, raw accuracy
   differences, the Eq. 5 return's rank correlation with test accuracy, plots, CSV,
   ``results.md`` and TensorBoard logs (:mod:`mmenv.experiments.bench_report`).

The steps are the stages of :mod:`mmenv.experiments.bench_stages` (typed inputs and
outputs; a new tuned baseline, agent seed or run executor plugs in there). Every run of
steps 1-2 goes through the resumable backends of ``mmenv compare``
(:mod:`mmenv.experiments.backends`: local processes, or Ray tasks with ``--backend ray``;
one JSON per run under ``OUT/runs``, written by this process, so a run's key and result do
not depend on the backend and either backend resumes the other's output); agents are saved
under ``OUT/agents`` and their evaluation runs under ``OUT/runs`` too, so a rerun skips all
finished work. A benchmark holds the lock of its output folder (:mod:`mmenv.locks`, the
one ``mmenv compare`` takes): a second benchmark or comparison on the same folder refuses
to start and names the holder's PID. A saved agent there that cannot be loaded is an
error, not a reason to train over it. Every run uses the environment's reward ``"dus"`` (Eq. 5, cheap: no
validation pass), so a run's ``reward_sum`` is its Eq. 5 return.

Example::

    mmenv bench --preset quick                    # progress bars on stderr throughout
    mmenv bench --preset full --workers 8 --out runs/bench-full
    mmenv bench --preset full --backend ray --ray-address auto   # on a running Ray cluster
    mmenv bench --preset quick --agent my_pkg.agents:factory --agent ppo.zip   # agents of one's own

From Python::

    from mmenv.experiments.bench import run_bench
    from mmenv.experiments.bench_config import load_bench_config
    summary = run_bench(load_bench_config("quick", overrides={"out": "runs/q"}))
    print(summary.result_lines)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mmenv.atomic import atomic_write_text
from mmenv.locks import FolderLock

from .bench_agents_cli import BenchAgent, resolve_bench_agents
from .bench_config import BenchConfig, BenchConfigError, list_bench_presets, load_bench_config
from .bench_data import BENCH_ENV, BenchData, accuracy, run_spec
from .bench_runner import EXECUTORS, Executor, Runner, make_executor
from .bench_stages import (
    BenchPlan,
    collect,
    plan_bench,
    resolve_agent_tools,
    run_agents,
    run_references,
    run_report,
    run_scoring,
    run_search,
    run_tuned,
)
from .compare import add_sweep_arguments
from .instances import resolve_instance_set

__all__ = ["run_bench", "BenchSummary", "BenchData", "add_parser", "run", "accuracy", "run_spec", "BENCH_ENV"]


@dataclass
class BenchSummary:
    """What ``run_bench`` produced."""

    data: BenchData
    report: Any                      # mmenv.experiments.bench_report.Report
    result_lines: list[str]
    files: list[Path]
    wall_time_s: float


def run_bench(cfg: BenchConfig, force: bool = False, progress: bool = True,
              trainer: Callable[..., Any] | None = None, env_factory: Callable[..., Any] | None = None,
              agent_loader: Callable[[str], Any] | None = None, ray_address: str | None = None,
              executor: Executor | None = None, agents: Sequence[BenchAgent | str] = ()) -> BenchSummary:
    """Run (or resume) the benchmark ``cfg``; write the report under ``cfg.out``.

    ``trainer``, ``env_factory`` and ``agent_loader`` default to
    :func:`mmenv.agents.across_runs.train_across_runs`, ``bench_env`` and ``TrainedAgent.load``
    (same signatures); pass others to benchmark an agent of one's own (docs/benchmark.md).
    ``executor`` plays the search, reference and scoring runs
    (:class:`~mmenv.experiments.bench_runner.Executor`; default: the preset's ``executor``,
    ``batched`` (K runs of an instance trained together) or ``single``, on its backend).
    ``agents``: agents of one's own besides the preset's (``mmenv bench --agent``): a
    registered name, a ``module:attribute`` path or a saved agent file each, or a
    :class:`~mmenv.experiments.bench_agents_cli.BenchAgent`; evaluated on the test instances
    (trained first if a trainer) with the preset's cached search, reference and scoring runs.

    With ``cfg.backend == "ray"`` one Ray connection (:func:`mmenv.cluster.ray_session`: the
    cluster at ``ray_address`` / ``RAY_ADDRESS``, or a local instance with ``cfg.workers``
    CPUs) serves the whole benchmark: the search, reference and scoring runs are Ray tasks,
    and the default trainer plays the agents' training runs in Ray actors.

    Everything that can be checked is checked before the first run (the preset when it was
    read, the instances' modalities here); the output folder is locked for the whole
    benchmark (:class:`mmenv.locks.FolderLock`, shared with ``mmenv compare``).
    """
    from .backends import leave_if_reimported
    from .compare import check_out_dir
    from .config import ConfigError

    leave_if_reimported()  # a worker re-importing an unguarded script: the driver reports it

    start = time.perf_counter()
    try:
        out = check_out_dir(cfg.out)
    except ConfigError as exc:
        raise BenchConfigError(str(exc)) from None
    extra = resolve_bench_agents(agents, cfg)
    plan = plan_bench(cfg, out, progress)
    tools = resolve_agent_tools(cfg, trainer, env_factory, agent_loader, ray_address) if cfg.agents else None
    with FolderLock(out, "mmenv bench"):
        if cfg.backend != "ray":
            return _run_stages(plan, executor, force, progress, tools, start, extra)
        from mmenv.cluster import ray_session

        # A local instance gets enough CPUs for the widest agent too (its actors take one each).
        cpus = max([cfg.workers] + [a.workers for a in cfg.agents])
        with ray_session(ray_address, num_cpus=cpus):
            return _run_stages(plan, executor or make_executor(cfg.executor, "ray", cfg.workers, ray_address), force,
                               progress, tools, start, extra, ray_address)


def _run_stages(plan: BenchPlan, executor: Executor | None, force: bool, progress: bool, tools: Any,
                start: float, extra: Sequence[BenchAgent] = (), ray_address: str | None = None) -> BenchSummary:
    """search -> tuned baselines -> references -> scoring -> collect -> agents (the preset's,
    then ``extra``) -> report."""
    cfg = plan.cfg
    atomic_write_text(plan.out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    runner = Runner(plan.out, executor or make_executor(cfg.executor, cfg.backend, cfg.workers), force, progress)
    search = run_search(plan, runner)
    tuned = run_tuned(plan, runner)
    run_references(plan, runner)
    run_scoring(plan, runner, search, tuned)
    data = collect(plan, runner, search, tuned)
    if tools is not None:
        run_agents(plan, data, tools, force, progress)
    for agent in extra:
        agent.run(plan, data, force, progress, ray_address)
    data.runs_executed, data.runs_reused = runner.executed, runner.reused
    output = run_report(data, plan.out, progress)
    return BenchSummary(data, output.report, output.report.result_lines, output.files, time.perf_counter() - start)


# ---------------------------------------------------------------------- command line
def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``bench`` to an argparse sub-command group (sets ``func=run``)."""
    p = subparsers.add_parser(
        "bench", help="benchmark sampling policies on held-out instances: headroom, oracle, tuned constant, agents",
        description="Run a benchmark preset: oracle search and reference policies per instance, the tuned "
                    "constant, agents trained across runs, evaluation on held-out test instances. Resumable; "
                    f"presets: {', '.join(list_bench_presets())} (experiments/bench_presets/*.yaml). Writes "
                    "OUT/results.md, OUT/*.csv, OUT/plots/*.png, OUT/tb/ and ends with RESULT lines.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--preset", default="quick", help="preset name or path of a YAML preset")
    add_sweep_arguments(p, out_help="output directory (default: the preset's out)",
                        backend_help="process (this machine) or ray (Ray tasks; agents' runs in Ray actors)")
    p.add_argument("--executor", choices=EXECUTORS, default=None,
                   help="batched: runs of one instance trained K at a time (mmenv.engine); single: one run per "
                        "task (default: the preset's, else batched)")
    p.add_argument("--agent-runs", type=int, default=None, help="training runs of every agent (overrides the preset)")
    p.add_argument("--agent", action="append", default=[], metavar="SPEC",
                   help="benchmark an agent of your own besides the preset's (repeatable): a registered trainer or "
                        "policy name, a Python path my_pkg.module:factory (a policy factory or a trainer), or a "
                        "saved agent file (SB3 .zip, mmenv .pt); LABEL=SPEC names its row. Reuses the search, "
                        "reference and scoring runs already in --out")
    p.add_argument("--no-agents", action="store_true", help="skip the preset's agents (not those given with --agent)")
    p.add_argument("--leaderboard", metavar="OUT", default=None,
                   help="run nothing: rank every policy and agent of the benchmark output folder OUT "
                        "(Markdown table; also written as OUT/leaderboard.csv)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """``mmenv bench``: run the preset, print the summary; the last lines are the RESULT lines.

    Exit status 1 (after the RESULT lines and a one-line summary) when any run crashed. With
    ``--leaderboard OUT`` it runs nothing and prints the ranking of the folder OUT instead.
    """
    if getattr(args, "leaderboard", None):
        from .leaderboard import main as leaderboard_main

        return leaderboard_main(args.leaderboard)
    cfg = _cli_config(args)
    agents = resolve_bench_agents(args.agent, cfg, args.agent_runs)
    n_train = n_test = 0
    for s in cfg.instance_sets:
        iset = resolve_instance_set(s["name"], cfg.base_dir).select(s.get("train"), s.get("test"))
        n_train, n_test = n_train + len(iset.train), n_test + len(iset.test)
    print(f"bench {cfg.name}: {len(cfg.instance_sets)} instance set(s), {n_train} train / {n_test} test instances; "
          f"tuning seeds {cfg.tuning_seeds}, evaluation seeds {cfg.eval_seeds}; "
          f"{len(cfg.agents) + len(agents)} agent(s); {cfg.workers} worker(s) [{cfg.backend}] ({cfg.executor} executor) "
          f"-> {cfg.out}", flush=True)
    summary = run_bench(cfg, force=args.force, progress=not args.no_progress, ray_address=args.ray_address,
                        agents=agents)
    print()
    print(summary.report.console)
    print()
    print(f"{summary.data.runs_executed} run(s) executed, {summary.data.runs_reused} reused; "
          f"wall time {summary.wall_time_s:.1f} s")
    for path in summary.files:
        print(f"wrote {path}")
    for line in summary.result_lines:
        print(line)
    if summary.data.failed:
        print(f"FAILED: {len(summary.data.failed)} run(s) crashed, e.g. {summary.data.failed[0]}; their errors are "
              f"in {Path(cfg.out) / 'runs'}/*.json (\"status\": \"failed\") and {Path(cfg.out) / 'results.md'}",
              file=sys.stderr, flush=True)
        return 1
    return 0


def _cli_config(args: argparse.Namespace) -> BenchConfig:
    """The preset with the command line's overrides, checked before anything runs."""
    if args.workers is not None and args.workers < 1:
        raise BenchConfigError(f"--workers must be >= 1, got {args.workers}")
    if args.agent_runs is not None and args.agent_runs < 1:
        raise BenchConfigError(f"--agent-runs must be >= 1, got {args.agent_runs}")
    if args.ray_address is not None and args.backend not in (None, "ray"):
        raise BenchConfigError("--ray-address needs --backend ray (or backend: ray in the preset)")
    overrides: dict[str, Any] = {"out": args.out, "workers": args.workers, "backend": args.backend,
                                 "executor": getattr(args, "executor", None)}
    if args.no_plots:
        overrides["plots"] = False
    if args.no_tensorboard:
        overrides["tensorboard"] = False
    cfg = load_bench_config(args.preset, overrides)
    if args.ray_address is not None and cfg.backend != "ray":
        raise BenchConfigError("--ray-address needs --backend ray (or backend: ray in the preset)")
    if args.no_agents:
        cfg.agents = []
    if args.agent_runs is not None:
        for a in cfg.agents:
            a.runs = args.agent_runs
    return cfg
