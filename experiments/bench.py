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

Every run of steps 1-2 goes through the resumable backends of ``mmenv compare``
(:mod:`mmenv.experiments.backends`: local processes, or Ray tasks with ``--backend ray``;
one JSON per run under ``OUT/runs``, written by this process, so a run's key and result do
not depend on the backend and either backend resumes the other's output); agents are saved
under ``OUT/agents`` and their evaluation runs under ``OUT/runs`` too, so a rerun skips all
finished work. Every run uses the environment's reward ``"dus"`` (Eq. 5, cheap: no
validation pass), so a run's ``reward_sum`` is its Eq. 5 return.

Example::

    mmenv bench --preset quick                    # <= 10 min on 2 CPU cores
    mmenv bench --preset full --workers 8 --out runs/bench-full
    mmenv bench --preset full --backend ray --ray-address auto   # on a running Ray cluster

From Python::

    from mmenv.experiments.bench import run_bench
    from mmenv.experiments.bench_config import load_bench_config
    summary = run_bench(load_bench_config("quick", overrides={"out": "runs/q"}))
    print(summary.result_lines)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import yaml

from mmenv.atomic import atomic_write_text

from .bench_config import REFERENCE_LABELS, AgentSpec, BenchConfig, BenchConfigError, list_bench_presets, \
    load_bench_config
from .compare import add_sweep_arguments
from .grid import RESULT_VERSION, RunSpec, slugify
from .instances import Instance, InstanceSet, load_instance_set
from .oracle import Candidate, OracleResult, TunedConstant, candidate_grid, constant_candidate, search_oracle, \
    tuned_constant
from .report import FINISHED, load_results, write_result

__all__ = ["run_bench", "BenchSummary", "BenchData", "add_parser", "run", "accuracy", "BENCH_ENV"]

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
    runs_executed: int = 0
    runs_reused: int = 0
    failed: list[str] = field(default_factory=list)

    def record(self, inst: Instance, label: str, seed: int, result: dict[str, Any]) -> None:
        key = (inst.label(), label)
        self.acc.setdefault(key, {})[int(seed)] = accuracy(result)
        rs = result.get("reward_sum") if result.get("status") == "ok" else None
        self.eq5.setdefault(key, {})[int(seed)] = float(rs) if rs is not None else float("nan")
        if result.get("proportions"):
            self.schedules.setdefault(key, {})[int(seed)] = result["proportions"]
        if result.get("status") not in FINISHED:
            self.failed.append(f"{inst.label()} {label} seed {seed}: {result.get('error', result.get('status'))}")

    def values(self, inst: Instance, label: str, seeds: Sequence[int]) -> np.ndarray:
        d = self.acc.get((inst.label(), label), {})
        return np.asarray([d.get(int(s), float("nan")) for s in seeds], dtype=np.float64)


@dataclass
class BenchSummary:
    """What ``run_bench`` produced."""

    data: BenchData
    report: Any                      # mmenv.experiments.bench_report.Report
    result_lines: list[str]
    files: list[Path]
    wall_time_s: float


# ---------------------------------------------------------------------- running grid runs
class _Runner:
    """Runs :class:`RunSpec` lists through the resumable pool of ``mmenv compare``."""

    def __init__(self, cfg: BenchConfig, out: Path, force: bool, progress: bool,
                 ray_address: str | None = None) -> None:
        self.cfg, self.out, self.force, self.progress = cfg, out, force, progress
        self.ray_address = ray_address
        self.runs_dir = out / "runs"
        self.results: dict[str, dict[str, Any]] = {}
        self.executed = 0
        self.reused = 0

    def run(self, specs: Iterable[RunSpec], stage: str) -> None:
        from .backends import run_specs

        unique: dict[str, RunSpec] = {}
        for s in specs:
            unique.setdefault(s.key, s)
        keys = [k for k in unique if k not in self.results]
        on_disk = {} if self.force else load_results(self.runs_dir, keys)
        todo = []
        for k in keys:
            if k in on_disk and on_disk[k].get("status") in FINISHED:
                self.results[k] = on_disk[k]
                self.reused += 1
            else:
                todo.append(unique[k])
        if not todo:
            return
        stream = run_specs(todo, str(self.out), False, self.cfg.backend, self.cfg.workers, self.ray_address)
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(todo), desc=f"bench {stage}", unit="run")
        try:
            for result in stream:
                write_result(self.runs_dir, result)
                self.results[result["key"]] = result
                self.executed += 1
                if bar is not None:
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()

    def get(self, spec: RunSpec) -> dict[str, Any] | None:
        return self.results.get(spec.key)


# ---------------------------------------------------------------------- agents
def _default_trainer() -> tuple[Callable[..., Any], Callable[..., Any], Callable[[str], Any] | None]:
    """``(train_across_runs, bench_env, TrainedAgent.load)`` of :mod:`mmenv.agents.across_runs`."""
    try:
        from mmenv.agents.across_runs import TrainedAgent, bench_env, train_across_runs
    except ImportError as exc:  # pragma: no cover - the module ships with the package
        raise RuntimeError("mmenv bench needs mmenv.agents.across_runs to train agents; run without agents "
                           "(--no-agents) or install the full package") from exc
    return train_across_runs, bench_env, TrainedAgent.load


def _agent_hash(spec: AgentSpec, train: Sequence[Instance]) -> str:
    payload = {"agent": asdict(spec), "train": sorted(i.task_key() for i in train), "version": RESULT_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _episode_result(spec: RunSpec, record: Any, wall: float) -> dict[str, Any]:
    """An evaluation episode as a result dict in ``execute_run``'s layout."""
    status = "diverged" if record.diverged else "ok"
    return {"version": RESULT_VERSION, "key": spec.key, "spec": asdict(spec), "dataset": spec.dataset,
            "learner": spec.learner, "policy": spec.policy, "seed": spec.seed, "sample_order": "shuffle",
            "status": status, "error": "" if status == "ok" else "training loss became NaN/inf", "traceback": "",
            "test": record.test, "reward_sum": record.reward_sum, "steps": record.steps, "wall_time_s": wall,
            "modalities": list(record.modalities), "batch_sizes": record.batch_sizes,
            "discrepancy": record.discrepancy, "proportions": record.proportions,
            "initial_discrepancy": record.initial_discrepancy, "rewards": record.rewards}


def _play(env_factory: Callable[..., Any], policy: Any, observation: str, inst: Instance,
          seeds: Sequence[int]) -> list[Any]:
    from mmenv.agents import run_policy

    env = env_factory(inst.env_kwargs(), observation=observation, reward=BENCH_ENV["reward"])
    try:
        return run_policy(env, policy, episodes=len(seeds), seeds=list(seeds), learn=False)
    finally:
        env.close()


# ---------------------------------------------------------------------- the pipeline
def _grid(cfg: BenchConfig, m: int) -> list[Candidate]:
    g = cfg.grid
    return candidate_grid(m, g["shares"], g["phase_shares"], g["switches"], g.get("three_phase_switches"))


def run_bench(cfg: BenchConfig, force: bool = False, progress: bool = True,
              trainer: Callable[..., Any] | None = None, env_factory: Callable[..., Any] | None = None,
              agent_loader: Callable[[str], Any] | None = None, ray_address: str | None = None) -> BenchSummary:
    """Run (or resume) the benchmark ``cfg``; write the report under ``cfg.out``.

    ``trainer``, ``env_factory`` and ``agent_loader`` default to
    :func:`mmenv.agents.across_runs.train_across_runs`, ``bench_env`` and ``TrainedAgent.load``
    (same signatures); pass others to benchmark an agent of one's own (docs/benchmark.md).

    With ``cfg.backend == "ray"`` one Ray connection (:func:`mmenv.cluster.ray_session`: the
    cluster at ``ray_address`` / ``RAY_ADDRESS``, or a local instance with ``cfg.workers``
    CPUs) serves the whole benchmark: the search, reference and scoring runs are Ray tasks,
    and the default trainer plays the agents' training runs in Ray actors.
    """
    from .backends import leave_if_reimported

    leave_if_reimported()  # a worker re-importing an unguarded script: the driver reports it
    if cfg.backend != "ray":
        return _run_bench(cfg, force, progress, trainer, env_factory, agent_loader, None)
    from mmenv.cluster import ray_session

    # A local instance gets enough CPUs for the widest agent too (its actors take one each).
    cpus = max([cfg.workers] + [a.workers for a in cfg.agents])
    with ray_session(ray_address, num_cpus=cpus):
        return _run_bench(cfg, force, progress, trainer, env_factory, agent_loader, ray_address)


def _run_bench(cfg: BenchConfig, force: bool, progress: bool, trainer: Callable[..., Any] | None,
               env_factory: Callable[..., Any] | None, agent_loader: Callable[[str], Any] | None,
               ray_address: str | None) -> BenchSummary:
    from .bench_report import build_report, write_outputs

    start = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    sets = [load_instance_set(s["name"]).select(s.get("train"), s.get("test")) for s in cfg.instance_sets]
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise BenchConfigError(f"instance set listed twice in the preset: {names}")
    data = BenchData(cfg, sets)
    runner = _Runner(cfg, out, force, progress, ray_address)
    tuning, evals, curves = cfg.tuning_seeds, cfg.eval_seeds, cfg.curve_seeds
    ref_labels = [REFERENCE_LABELS[r] for r in cfg.references]

    def headroom_instances(iset: InstanceSet) -> list[Instance]:
        return (iset.train if "train" in cfg.headroom_splits else []) + iset.test

    for iset in sets:
        for inst in iset.instances:
            data.modalities[inst.label()] = _modalities(inst)

    # 1. search runs (tuning seeds) and reference runs (evaluation seeds)
    specs: list[RunSpec] = []
    for iset in sets:
        m_min = min(len(data.modalities[i.label()]) for i in iset.train)
        for inst in iset.train:
            m = len(data.modalities[inst.label()])
            for j in range(m_min):
                for s in cfg.tuned_constant_shares:
                    c = constant_candidate(m, j, s)
                    specs += [run_spec(inst, c.policy, c.policy_kwargs, seed) for seed in tuning]
        for inst in headroom_instances(iset):
            for c in _grid(cfg, len(data.modalities[inst.label()])):
                specs += [run_spec(inst, c.policy, c.policy_kwargs, seed) for seed in tuning]
        for inst in iset.test:
            for ref in cfg.references:
                specs += [run_spec(inst, ref, cfg.reference_kwargs.get(ref, {}), seed) for seed in evals]
    runner.run(specs, "search")

    def acc_of(inst: Instance, c: Candidate, seed: int) -> float:
        return accuracy(runner.get(run_spec(inst, c.policy, c.policy_kwargs, seed)))

    # 2. choices, then scoring runs
    specs = []
    for iset in sets:
        for inst in headroom_instances(iset):
            m = len(data.modalities[inst.label()])
            res = search_oracle(_grid(cfg, m), partial(acc_of, inst), tuning)
            data.oracles[inst.label()] = res
            uni = constant_candidate(m, 0, 1.0 / m)
            specs += [run_spec(inst, res.best.policy, res.best.policy_kwargs, seed) for seed in evals]
            # uniform on the curve seeds normalises the agents' learning curves
            seeds = evals + (curves if inst.split == "test" else [])
            specs += [run_spec(inst, uni.policy, uni.policy_kwargs, seed) for seed in seeds]
        mods = {i: len(data.modalities[i.label()]) for i in iset.train}

        def gain(inst: Instance, c: Candidate, seed: int, mods: dict[Instance, int] = mods) -> float:
            return acc_of(inst, c, seed) - acc_of(inst, constant_candidate(mods[inst], 0, 1.0 / mods[inst]), seed)

        tc = tuned_constant(iset.train, mods, gain, tuning, cfg.tuned_constant_shares)
        data.tuned[iset.name] = tc
        for inst in iset.test:
            m = len(data.modalities[inst.label()])
            if tc.modality < m:
                c = tc.candidate(m)
                specs += [run_spec(inst, c.policy, c.policy_kwargs, seed) for seed in evals]
    runner.run(specs, "scoring")

    # collect the search, reference and scoring results
    for iset in sets:
        tc = data.tuned[iset.name]
        for inst in iset.instances:
            m = len(data.modalities[inst.label()])
            uni = constant_candidate(m, 0, 1.0 / m)
            for seed in tuning + evals + curves:
                r = runner.get(run_spec(inst, uni.policy, uni.policy_kwargs, seed))
                if r is not None:
                    data.record(inst, "uniform", seed, r)
            if inst.label() in data.oracles:
                best = data.oracles[inst.label()].best
                for seed in evals:
                    r = runner.get(run_spec(inst, best.policy, best.policy_kwargs, seed))
                    if r is not None:
                        data.record(inst, "oracle", seed, r)
            if inst.split == "test":
                for ref in cfg.references:
                    if ref == "uniform":
                        continue
                    for seed in evals:
                        r = runner.get(run_spec(inst, ref, cfg.reference_kwargs.get(ref, {}), seed))
                        if r is not None:
                            data.record(inst, REFERENCE_LABELS[ref], seed, r)
                if tc.modality < m:
                    c = tc.candidate(m)
                    for seed in evals:
                        r = runner.get(run_spec(inst, c.policy, c.policy_kwargs, seed))
                        if r is not None:
                            data.record(inst, "tuned-constant", seed, r)
    data.policies = ["oracle", "tuned-constant"] + [lab for lab in ref_labels if lab != "uniform"]

    # 3. agents trained across runs
    if cfg.agents:
        _run_agents(cfg, data, out, force, trainer, env_factory, agent_loader, ray_address)
    data.runs_executed, data.runs_reused = runner.executed, runner.reused

    # 4. report
    report = build_report(data)
    files = write_outputs(report, data, out)
    return BenchSummary(data, report, report.result_lines, files, time.perf_counter() - start)


def _modalities(inst: Instance) -> tuple[str, ...]:
    from .instances import modality_names

    return modality_names(inst)


def _run_agents(cfg: BenchConfig, data: BenchData, out: Path, force: bool, trainer: Callable[..., Any] | None,
                env_factory: Callable[..., Any] | None, agent_loader: Callable[[str], Any] | None,
                ray_address: str | None = None) -> None:
    if trainer is None or env_factory is None:
        default_train, default_env, default_load = _default_trainer()
        if trainer is None:
            trainer, agent_loader = default_train, agent_loader or default_load
            if cfg.backend == "ray":
                # The agents' training runs are played in Ray actors (same agent as on processes).
                trainer = partial(default_train, backend="ray", ray_address=ray_address)
        env_factory = env_factory or default_env
    for iset in data.sets:
        groups: dict[int, list[Instance]] = {}
        for inst in iset.train:
            groups.setdefault(len(data.modalities[inst.label()]), []).append(inst)
        for spec in cfg.agents:
            label = f"agent:{spec.label}"
            if label not in data.agent_labels:
                data.agent_labels.append(label)
            for m, train in sorted(groups.items()):
                test = [i for i in iset.test if len(data.modalities[i.label()]) == m]
                digest = _agent_hash(spec, train)
                tag = f"{slugify(iset.name)}/{slugify(spec.label)}-m{m}"
                suffix = ".pt" if spec.algo == "reinforce" else ".zip"
                path = out / "agents" / f"{slugify(iset.name)}__{slugify(spec.label)}__m{m}__{digest}{suffix}"
                summary_path = path.with_suffix(".json")
                eval_specs = {(inst.label(), seed): run_spec(inst, f"agent-{spec.label}", {"agent": digest}, seed)
                              for inst in test for seed in cfg.eval_seeds}
                done = {} if force else load_results(out / "runs", [s.key for s in eval_specs.values()])
                have_all = all(done.get(s.key, {}).get("status") in FINISHED for s in eval_specs.values())
                summary: dict[str, Any] = {}
                if have_all and summary_path.exists() and not force:
                    summary = json.loads(summary_path.read_text())
                    results = done
                else:
                    agent = None
                    if path.exists() and summary_path.exists() and agent_loader is not None and not force:
                        try:
                            agent = agent_loader(str(path))
                            summary = json.loads(summary_path.read_text())
                        except Exception:  # noqa: BLE001 - a stale or unreadable file: train again
                            agent = None
                    if agent is None:
                        curve_fn = _curve_fn(data, test, spec.observation, env_factory)
                        # REINFORCE's learning-curve snapshots deep-copy the policy, which fails while
                        # its TensorBoard writer is open: it logs no training scalars when a curve is
                        # taken (the curve itself is logged below).
                        log_dir = str(out / "tb" / tag) if cfg.tensorboard and not (
                            spec.algo == "reinforce" and test and cfg.curve_every) else None
                        t0 = time.perf_counter()
                        agent = trainer(spec.algo, [i.env_kwargs() for i in train], runs=spec.runs, seed=spec.seed,
                                        reward=spec.reward, observation=spec.observation, workers=spec.workers,
                                        log_dir=log_dir, curve_every=cfg.curve_every if test else None,
                                        curve_fn=curve_fn if test else None, **spec.options)
                        summary = {"set": iset.name, "label": spec.label, "algo": spec.algo, "m": m,
                                   "observation": getattr(agent, "observation", spec.observation),
                                   "reward": spec.reward, "runs": int(getattr(agent, "runs", spec.runs)),
                                   "seed": spec.seed, "train_wall_time_s": time.perf_counter() - t0,
                                   "curve": [[int(r), float(v)] for r, v in getattr(agent, "curve", [])],
                                   "train_instances": [i.name for i in train], "digest": digest}
                        save = getattr(agent, "save", None)
                        if callable(save):
                            try:
                                save(path)
                                summary["path"] = str(path)
                            except Exception as exc:  # noqa: BLE001 - an unsaved agent only costs a resume
                                summary["save_error"] = f"{type(exc).__name__}: {exc}"
                        atomic_write_text(summary_path, json.dumps(summary, indent=1))
                        if cfg.tensorboard and summary["curve"]:
                            _log_curve(out / "tb" / tag / "curve", summary["curve"])
                    results = {}
                    for inst in test:
                        seeds = list(cfg.eval_seeds)
                        t0 = time.perf_counter()
                        records = _play(env_factory, agent.policy, summary["observation"], inst, seeds)
                        wall = (time.perf_counter() - t0) / max(1, len(seeds))
                        for seed, rec in zip(seeds, records):
                            res = _episode_result(eval_specs[(inst.label(), seed)], rec, wall)
                            write_result(out / "runs", res)
                            results[res["key"]] = res
                data.agents[f"{iset.name}/{spec.label}/m{m}"] = summary
                for inst in test:
                    for seed in cfg.eval_seeds:
                        r = results.get(eval_specs[(inst.label(), seed)].key)
                        if r is not None:
                            data.record(inst, label, seed, r)


def _curve_fn(data: BenchData, test: Sequence[Instance], observation: str,
              env_factory: Callable[..., Any]) -> Callable[[Any], float]:
    """Held-out score of a policy snapshot, on the curve seeds of the test instances.

    Per instance ``mean_s (acc_s - uniform_s) / H`` over the curve seeds ``s``, with ``H`` the
    instance's headroom on the evaluation seeds, averaged over the instances with ``H > 0``;
    without such an instance, the mean accuracy gain over uniform in points.
    """
    seeds = list(data.cfg.curve_seeds)

    def score(policy: Any) -> float:
        normalised, gains = [], []
        for inst in test:
            headroom = float(np.nanmean(data.values(inst, "oracle", data.cfg.eval_seeds))
                             - np.nanmean(data.values(inst, "uniform", data.cfg.eval_seeds)))
            records = _play(env_factory, policy, observation, inst, seeds)
            acc = np.asarray([float(((r.test or {}).get("fused") or {}).get("accuracy", math.nan)) for r in records])
            gain = float(np.mean(acc - data.values(inst, "uniform", seeds)))
            gains.append(100.0 * gain)
            if math.isfinite(headroom) and headroom > 0:
                normalised.append(gain / headroom)
        vals = normalised or gains
        return float(np.nanmean(vals)) if vals else float("nan")

    return score


def _log_curve(log_dir: Path, curve: Sequence[Sequence[float]]) -> None:
    try:
        from mmenv.tb import make_writer
    except ImportError:  # pragma: no cover
        return
    writer = make_writer(str(log_dir))
    try:
        for runs, value in curve:
            writer.add_scalar("heldout_score", float(value), int(runs))
    finally:
        writer.close()


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
    p.add_argument("--agent-runs", type=int, default=None, help="training runs of every agent (overrides the preset)")
    p.add_argument("--no-agents", action="store_true", help="skip the agents trained across runs")
    p.add_argument("--leaderboard", metavar="OUT", default=None,
                   help="run nothing: rank every policy and agent of the benchmark output folder OUT "
                        "(Markdown table; also written as OUT/leaderboard.csv)")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """``mmenv bench``: run the preset, print the summary; the last lines are the RESULT lines."""
    if getattr(args, "leaderboard", None):
        from .leaderboard import main as leaderboard_main

        return leaderboard_main(args.leaderboard)
    overrides: dict[str, Any] = {"out": args.out, "workers": args.workers, "backend": args.backend}
    if args.workers is not None and args.workers < 1:
        raise BenchConfigError(f"--workers must be >= 1, got {args.workers}")
    if args.no_plots:
        overrides["plots"] = False
    if args.no_tensorboard:
        overrides["tensorboard"] = False
    cfg = load_bench_config(args.preset, overrides)
    if args.no_agents:
        cfg.agents = []
    if args.agent_runs is not None:
        if args.agent_runs < 1:
            raise BenchConfigError(f"--agent-runs must be >= 1, got {args.agent_runs}")
        for a in cfg.agents:
            a.runs = args.agent_runs
    n_train = n_test = 0
    for s in cfg.instance_sets:
        iset = load_instance_set(s["name"]).select(s.get("train"), s.get("test"))
        n_train, n_test = n_train + len(iset.train), n_test + len(iset.test)
    print(f"bench {cfg.name}: {len(cfg.instance_sets)} instance set(s), {n_train} train / {n_test} test instances; "
          f"tuning seeds {cfg.tuning_seeds}, evaluation seeds {cfg.eval_seeds}; "
          f"{len(cfg.agents)} agent(s); {cfg.workers} worker(s) [{cfg.backend}] -> {cfg.out}", flush=True)
    if args.ray_address is not None and cfg.backend != "ray":
        raise BenchConfigError("--ray-address needs --backend ray (or backend: ray in the preset)")
    summary = run_bench(cfg, force=args.force, progress=not args.no_progress, ray_address=args.ray_address)
    print()
    print(summary.report.console)
    print()
    print(f"{summary.data.runs_executed} run(s) executed, {summary.data.runs_reused} reused; "
          f"wall time {summary.wall_time_s:.1f} s")
    for path in summary.files:
        print(f"wrote {path}")
    if summary.data.failed:
        print(f"{len(summary.data.failed)} run(s) failed or diverged, e.g. {summary.data.failed[0]}")
    for line in summary.result_lines:
        print(line)
    return 0
