"""The benchmark pipeline as stages, each a function with typed inputs and outputs.

::

    plan_bench(cfg)                        -> BenchPlan      instance sets, modalities, checks (no run yet)
    run_search(plan, runner)               -> SearchResult   oracle grid on the tuning seeds, oracle choices
    run_tuned(plan, runner, baselines)     -> TunedResult    baselines tuned on the train instances
    run_references(plan, runner)           -> None           reference policies on the evaluation seeds
    run_scoring(plan, runner, search, tuned) -> None         oracle, uniform, tuned baselines on evaluation seeds
    collect(plan, runner, search, tuned)   -> BenchData      every recorded number, built in one place
    run_agents(plan, data, tools, ...)     -> None           agents trained across runs, evaluated, recorded
    run_report(data, out, progress)        -> ReportOutput   tables, CSV, plots, RESULT lines

Runs go through a :class:`~mmenv.experiments.bench_runner.Runner` (resumable; the executor
behind it is replaceable, e.g. by one that plays K runs of an instance together).

Where later additions plug in:

* **a tuned heuristic** (the fixed ratio or DUS-H with parameters tuned on the train
  instances on tuning seeds) is one more :class:`TunedBaseline` in the list passed to
  :func:`run_tuned`: its ``search_specs`` (train instances x tuning seeds x parameters), its
  ``choose`` and the ``candidate`` it plays on a test instance; :func:`run_scoring` and
  :func:`collect` score and record every baseline of the list under its ``label``;
* **several agent seeds per agent row**: :func:`agent_jobs` makes one :class:`AgentJob` per
  (set, agent row, agent seed, number of modalities); every seed's numbers are recorded under
  ``agent:<label>@seed<k>`` and the report aggregates the row over agent seeds x test
  instances x evaluation seeds (:func:`mmenv.experiments.stats.aggregate_agent_seeds`);
* **a batched executor**: :class:`~mmenv.experiments.bench_runner.Executor`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from mmenv.agents.policy import Policy

from mmenv.atomic import atomic_write_text
from mmenv.errors import MMEnvError

from .bench_config import REFERENCE_LABELS, AgentSpec, BenchConfig, BenchConfigError
from .bench_data import BENCH_ENV, BenchData, accuracy, agent_seed_label, run_spec
from .bench_progress import Bar, TrainingProgress, stage_bar
from .bench_runner import Runner, engine_reason
from .grid import RESULT_VERSION, RunSpec, new_result, slugify
from .instances import Instance, InstanceSet, modality_names, resolve_instance_set
from .oracle import (
    Candidate,
    OracleResult,
    TunedConstant,
    candidate_grid,
    constant_candidate,
    search_oracle,
    tuned_constant,
)
from .report import FINISHED, load_results, write_result
from .tuning import TuningError, tuned_heuristic_baselines

__all__ = ["BenchPlan", "plan_bench", "SearchResult", "run_search", "TunedBaseline", "TunedConstantBaseline",
           "TunedResult", "Playable", "run_tuned", "run_references", "run_scoring", "Scored", "collect", "AgentJob", "AgentTools",
           "agent_jobs", "agent_seed_label", "any_m", "resolve_agent_tools", "run_agents", "ReportOutput", "run_report", "BenchRunError",
           "BenchAgentError", "TUNED_BASELINES"]


class BenchRunError(MMEnvError, RuntimeError):
    """The benchmark cannot go on: every run a choice needs failed (the message says where)."""


class BenchAgentError(MMEnvError, RuntimeError):
    """A saved agent (or its summary) in the output folder was refused on resume."""


# ---------------------------------------------------------------------- plan
@dataclass(frozen=True)
class BenchPlan:
    """A preset with its instance sets loaded and every instance's modalities known."""

    cfg: BenchConfig
    sets: list[InstanceSet]
    modalities: dict[str, tuple[str, ...]]      # instance label -> modality names
    out: Path

    def m(self, inst: Instance) -> int:
        return len(self.modalities[inst.label()])

    def headroom_instances(self, iset: InstanceSet) -> list[Instance]:
        return (iset.train if "train" in self.cfg.headroom_splits else []) + iset.test

    def grid(self, m: int) -> list[Candidate]:
        g = self.cfg.grid
        return candidate_grid(m, g["shares"], g["phase_shares"], g["switches"], g.get("three_phase_switches"))

    def uniform(self, inst: Instance) -> Candidate:
        m = self.m(inst)
        return constant_candidate(m, 0, 1.0 / m)

    def spec(self, inst: Instance, c: Playable, seed: int) -> RunSpec:
        return run_spec(inst, c.policy, c.policy_kwargs, seed)


def plan_bench(cfg: BenchConfig, out: str | Path | None = None, progress: bool = False) -> BenchPlan:
    """Load the preset's instance sets and check what needs their data (before any run):
    at least two modalities per instance, a batch budget of at least one sample per
    modality, and an oracle grid with a candidate besides uniform for every number of modalities."""
    sets = [resolve_instance_set(s["name"], cfg.base_dir).select(s.get("train"), s.get("test"))
            for s in cfg.instance_sets]
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise BenchConfigError(f"bench preset {cfg.source}: instance set listed twice: {names}")
    instances = [inst for iset in sets for inst in iset.instances]
    modalities: dict[str, tuple[str, ...]] = {}
    with stage_bar("bench plan (data sets)", len(instances), "instance", progress) as bar:
        for inst in instances:
            modalities[inst.label()] = modality_names(inst)
            bar.update(1)
    plan = BenchPlan(cfg, sets, modalities, Path(cfg.out if out is None else out))
    _check_plan(plan)
    return plan


def _check_plan(plan: BenchPlan) -> None:
    src = plan.cfg.source
    for iset in plan.sets:
        for inst in iset.instances:
            m = plan.m(inst)
            if m < 2:
                raise BenchConfigError(f"bench preset {src}: instance {inst.label()} has {m} modality; the "
                                       "benchmark compares how a budget is split, which needs at least 2")
            if inst.batch_budget < m:
                raise BenchConfigError(f"bench preset {src}: instance {inst.label()}: env.batch_budget "
                                       f"{inst.batch_budget} is below its {m} modalities (one sample each)")
        for inst in plan.headroom_instances(iset):
            if len(plan.grid(plan.m(inst))) < 2:
                raise BenchConfigError(f"bench preset {src}: key 'grid': gives no candidate but uniform for the "
                                       f"{plan.m(inst)} modalities of {inst.label()}; add shares other than "
                                       f"{1 / plan.m(inst):.3g}")


def _acc(runner: Runner, plan: BenchPlan, inst: Instance, c: Candidate, seed: int) -> float:
    return accuracy(runner.get(plan.spec(inst, c, seed)))


# ---------------------------------------------------------------------- search
@dataclass
class SearchResult:
    """The oracle of every headroom instance, chosen on the tuning seeds."""

    oracles: dict[str, OracleResult] = field(default_factory=dict)   # instance label -> choice


def search_specs(plan: BenchPlan) -> list[RunSpec]:
    """The oracle grid on every headroom instance x tuning seeds."""
    return [plan.spec(inst, c, seed) for iset in plan.sets for inst in plan.headroom_instances(iset)
            for c in plan.grid(plan.m(inst)) for seed in plan.cfg.tuning_seeds]


def run_search(plan: BenchPlan, runner: Runner) -> SearchResult:
    runner.run(search_specs(plan), "search")
    result = SearchResult()
    for iset in plan.sets:
        for inst in plan.headroom_instances(iset):
            try:
                result.oracles[inst.label()] = search_oracle(plan.grid(plan.m(inst)),
                                                             partial(_acc, runner, plan, inst),
                                                             plan.cfg.tuning_seeds)
            except ValueError as exc:
                raise BenchRunError(f"{inst.label()}: {exc}; the failed runs' errors are in "
                                    f"{runner.runs_dir}") from None
    return result


# ---------------------------------------------------------------------- tuned baselines
class Playable(Protocol):
    """What a tuned baseline plays on an instance: a policy name and its keywords (an oracle
    :class:`~mmenv.experiments.oracle.Candidate` is one; a tuned DUS-H would be ``("dus-h", {...})``)."""

    @property
    def policy(self) -> str: ...

    @property
    def policy_kwargs(self) -> dict[str, Any]: ...


class TunedBaseline(Protocol):
    """A non-learning baseline whose parameters are tuned on a set's train instances."""

    label: str

    def search_specs(self, plan: BenchPlan, iset: InstanceSet) -> list[RunSpec]:
        """Runs on the train instances x tuning seeds that the choice reads."""
        ...

    def choose(self, plan: BenchPlan, iset: InstanceSet, runner: Runner) -> Any:
        """The tuned parameters (an object with a ``label``)."""
        ...

    def candidate(self, choice: Any, m: int) -> Playable | None:
        """What the choice plays on an instance with ``m`` modalities (``None``: not defined there)."""
        ...


class TunedConstantBaseline:
    """One ``(modality j, share s)`` for the whole train set (:func:`mmenv.experiments.oracle.tuned_constant`).

    Uniform runs on every train instance and tuning seed are part of its search (the gain
    of a share is measured against them), whatever shares the preset lists.
    """

    label = "tuned-constant"

    def search_specs(self, plan: BenchPlan, iset: InstanceSet) -> list[RunSpec]:
        m_min = min(plan.m(i) for i in iset.train)
        cands = [(inst, constant_candidate(plan.m(inst), j, s)) for inst in iset.train for j in range(m_min)
                 for s in plan.cfg.tuned_constant_shares]
        cands += [(inst, plan.uniform(inst)) for inst in iset.train]
        return [plan.spec(inst, c, seed) for inst, c in cands for seed in plan.cfg.tuning_seeds]

    def choose(self, plan: BenchPlan, iset: InstanceSet, runner: Runner) -> TunedConstant:
        mods = {i: plan.m(i) for i in iset.train}

        def gain(inst: Instance, c: Candidate, seed: int) -> float:
            return _acc(runner, plan, inst, c, seed) - _acc(runner, plan, inst, plan.uniform(inst), seed)

        try:
            return tuned_constant(iset.train, mods, gain, plan.cfg.tuning_seeds, plan.cfg.tuned_constant_shares)
        except ValueError as exc:
            raise BenchRunError(f"instance set {iset.name!r}: {exc}; the failed runs' errors are in "
                                f"{runner.runs_dir}") from None

    def candidate(self, choice: TunedConstant, m: int) -> Candidate | None:
        return choice.candidate(m) if choice.modality < m else None


#: The tuned baselines every benchmark measures, in report order: the tuned constant, then the
#: tuned fixed ratio and the tuned DUS-H (:mod:`mmenv.experiments.tuning`: ratio / beta x
#: direction from :func:`~mmenv.experiments.tuning.heuristic_grid`), all chosen on the train
#: instances x tuning seeds and scored on the test instances x evaluation seeds.
TUNED_BASELINES: tuple[TunedBaseline, ...] = (TunedConstantBaseline(),) + tuned_heuristic_baselines()


@dataclass
class TunedResult:
    """Per instance set, per baseline label: the tuned choice."""

    baselines: tuple[TunedBaseline, ...]
    choices: dict[str, dict[str, Any]] = field(default_factory=dict)   # set name -> label -> choice
    errors: list[str] = field(default_factory=list)                    # rules that could not be tuned


def run_tuned(plan: BenchPlan, runner: Runner, baselines: Sequence[TunedBaseline] = TUNED_BASELINES) -> TunedResult:
    runner.run([s for iset in plan.sets for b in baselines for s in b.search_specs(plan, iset)], "tuning")
    result = TunedResult(tuple(baselines))
    for iset in plan.sets:
        result.choices[iset.name] = {}
        for b in baselines:
            try:
                result.choices[iset.name][b.label] = b.choose(plan, iset, runner)
            except TuningError as exc:
                # a tuned rule whose every setting crashed on the train instances is left out of
                # the tables (its crashed runs are in OUT/runs), the benchmark goes on
                result.errors.append(f"instance set {iset.name!r}: {b.label} not tuned: {exc}")
    return result


# ---------------------------------------------------------------------- reference and scoring runs
@dataclass(frozen=True)
class Scored:
    """One evaluation number to record: ``policy`` label on ``inst`` with run seed ``seed``."""

    inst: Instance
    label: str
    seed: int
    spec: RunSpec


def _reference_entries(plan: BenchPlan, inst: Instance) -> list[Scored]:
    """The reference policies but uniform (recorded with every uniform run) on a test instance."""
    return [Scored(inst, REFERENCE_LABELS[ref], seed, run_spec(inst, ref, plan.cfg.reference_kwargs.get(ref, {}), seed))
            for ref in plan.cfg.references if ref != "uniform" for seed in plan.cfg.eval_seeds]


def run_references(plan: BenchPlan, runner: Runner) -> None:
    """Every reference (uniform included) on every test instance x evaluation seeds."""
    specs = [run_spec(inst, ref, plan.cfg.reference_kwargs.get(ref, {}), seed) for iset in plan.sets
             for inst in iset.test for ref in plan.cfg.references for seed in plan.cfg.eval_seeds]
    runner.run(specs, "references")


def _scoring_entries(plan: BenchPlan, inst: Instance, search: SearchResult, tuned: TunedResult) -> list[Scored]:
    """The oracle (headroom instances) and the tuned baselines (test instances) on evaluation seeds."""
    cfg = plan.cfg
    out: list[Scored] = []
    if inst.label() in search.oracles:
        best = search.oracles[inst.label()].best
        out += [Scored(inst, "oracle", seed, plan.spec(inst, best, seed)) for seed in cfg.eval_seeds]
    if inst.split == "test":
        for b in tuned.baselines:
            if b.label not in tuned.choices[inst.set_name]:
                continue
            c = b.candidate(tuned.choices[inst.set_name][b.label], plan.m(inst))
            if c is not None:
                out += [Scored(inst, b.label, seed, plan.spec(inst, c, seed)) for seed in cfg.eval_seeds]
    return out


def run_scoring(plan: BenchPlan, runner: Runner, search: SearchResult, tuned: TunedResult) -> None:
    """The choices on the evaluation seeds, and uniform on the evaluation and curve seeds
    (the curve seeds normalise the agents' learning curves)."""
    cfg = plan.cfg
    specs: list[RunSpec] = []
    for iset in plan.sets:
        for inst in plan.headroom_instances(iset):
            specs += [e.spec for e in _scoring_entries(plan, inst, search, tuned) if e.label == "oracle"]
            seeds = cfg.eval_seeds + (cfg.curve_seeds if inst.split == "test" else [])
            specs += [plan.spec(inst, plan.uniform(inst), seed) for seed in seeds]
        for inst in iset.test:
            specs += [e.spec for e in _scoring_entries(plan, inst, search, tuned) if e.label != "oracle"]
    runner.run(specs, "scoring")


def collect(plan: BenchPlan, runner: Runner, search: SearchResult, tuned: TunedResult) -> BenchData:
    """Every number of the search, reference and scoring runs in one :class:`BenchData`.

    Per instance: uniform on every seed it ran with, the oracle, the references and the
    tuned baselines on the evaluation seeds (runs without a result are left out).
    """
    cfg = plan.cfg
    data = BenchData(cfg, plan.sets, modalities=dict(plan.modalities), oracles=dict(search.oracles))
    data.tuned = {name: choices["tuned-constant"] for name, choices in tuned.choices.items()
                  if "tuned-constant" in choices}
    data.tuned_heuristics = {name: {label: c for label, c in choices.items() if label != "tuned-constant"}
                             for name, choices in tuned.choices.items()}
    data.tuning_errors = list(tuned.errors)
    for iset in plan.sets:
        for inst in iset.instances:
            entries = [Scored(inst, "uniform", seed, plan.spec(inst, plan.uniform(inst), seed))
                       for seed in cfg.tuning_seeds + cfg.eval_seeds + cfg.curve_seeds]
            scoring = _scoring_entries(plan, inst, search, tuned)
            entries += [e for e in scoring if e.label == "oracle"]
            if inst.split == "test":
                entries += _reference_entries(plan, inst)
            entries += [e for e in scoring if e.label != "oracle"]
            for e in entries:
                result = runner.get(e.spec)
                if result is not None:
                    data.record(e.inst, e.label, e.seed, result)
    data.policies = ["oracle"] + [b.label for b in tuned.baselines] + [
        REFERENCE_LABELS[r] for r in cfg.references if r != "uniform"]
    return data


# ---------------------------------------------------------------------- agents
@dataclass(frozen=True)
class AgentJob:
    """One agent to train: an agent row of the preset with one agent seed, on one set's train
    instances with ``m`` modalities (``m == 0``: every train instance, whatever its number of
    modalities, for a per-modality policy that runs on any m)."""

    set_name: str
    spec: AgentSpec
    m: int
    train: tuple[Instance, ...]
    test: tuple[Instance, ...]
    digest: str
    path: Path
    seed: int = 0

    @property
    def label(self) -> str:
        """The agent's row in the tables (every agent seed of the row shares it)."""
        return f"agent:{self.spec.label}"

    @property
    def seed_label(self) -> str:
        """This agent seed's own label in the recorded numbers (results.csv, scores.csv)."""
        return agent_seed_label(self.label, self.seed)

    @property
    def m_tag(self) -> str:
        return "many" if self.m == 0 else f"m{self.m}"

    @property
    def key(self) -> str:
        return f"{self.set_name}/{self.spec.label}/{self.m_tag}/seed{self.seed}"

    @property
    def tag(self) -> str:
        return f"{slugify(self.set_name)}/{slugify(self.spec.label)}-{self.m_tag}-seed{self.seed}"

    @property
    def summary_path(self) -> Path:
        return self.path.with_suffix(".json")

    def eval_specs(self, seeds: Sequence[int]) -> dict[tuple[str, int], RunSpec]:
        """The agent's evaluation runs: (test instance label, seed) -> spec."""
        return {(inst.label(), seed): run_spec(inst, f"agent-{self.spec.label}", {"agent": self.digest}, seed)
                for inst in self.test for seed in seeds}


def _agent_hash(spec: AgentSpec, train: Sequence[Instance], seed: int) -> str:
    """The agent's identity: its row's settings with this one seed, and its train instances
    (another seed in the row's list does not change an agent that was trained already)."""
    agent = {k: v for k, v in asdict(spec).items() if k != "seeds"}
    agent["seed"] = int(seed)
    payload = {"agent": agent, "train": sorted(i.task_key() for i in train), "version": RESULT_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:10]


def any_m(spec: AgentSpec) -> bool:
    """Whether one agent of this row serves every number of modalities: the package's
    REINFORCE with the per-modality network (``options: {policy: equivariant}``), whose weights
    run on any m. (SB3's equivariant policies read a fixed-size observation space, so they
    stay one agent per m.) ES (:mod:`mmenv.agents.es`) trains the same network, equivariant by default."""
    if spec.algo == "es":
        return spec.options.get("policy", "equivariant") == "equivariant"
    return spec.algo == "reinforce" and spec.options.get("policy") == "equivariant"


def agent_jobs(plan: BenchPlan) -> list[AgentJob]:
    """One job per instance set x agent row x agent seed x number of modalities among its
    train instances (one for all of them when the row's policy runs on any m: :func:`any_m`)."""
    jobs = []
    for iset in plan.sets:
        groups: dict[int, list[Instance]] = {}
        for inst in iset.train:
            groups.setdefault(plan.m(inst), []).append(inst)
        for spec in plan.cfg.agents:
            rows = {0: list(iset.train)} if any_m(spec) else groups
            for seed in spec.seeds:
                for m, train in sorted(rows.items()):
                    digest = _agent_hash(spec, train, seed)
                    suffix = ".pt" if spec.algo in ("reinforce", "es") else ".zip"
                    m_tag = "many" if m == 0 else f"m{m}"
                    path = plan.out / "agents" / (f"{slugify(iset.name)}__{slugify(spec.label)}__{m_tag}__"
                                                  f"seed{seed}__{digest}{suffix}")
                    test = tuple(i for i in iset.test if m == 0 or plan.m(i) == m)
                    jobs.append(AgentJob(iset.name, spec, m, tuple(train), test, digest, path, seed))
    return jobs


class Trainer(Protocol):
    """:func:`mmenv.agents.across_runs.train_across_runs`'s signature; returns an object with
    ``policy`` (and optionally ``observation``, ``runs``, ``curve``, ``save(path)``)."""

    def __call__(self, algo: str, train_instances: list[dict[str, Any]], *, runs: int, seed: int, reward: str,
                 observation: str, workers: int, log_dir: str | None, curve_every: int | None,
                 curve_fn: Callable[[Any], float] | None, **options: Any) -> Any: ...


@dataclass
class AgentTools:
    """How agents are trained, played and reloaded; ``default``: the package's own trainer
    (whose training runs the progress bar can count, :class:`~mmenv.experiments.bench_progress.TrainingProgress`)."""

    trainer: Trainer
    env_factory: Callable[..., Any]
    loader: Callable[[str], Any] | None
    default: bool = False


def resolve_agent_tools(cfg: BenchConfig, trainer: Trainer | None = None, env_factory: Callable[..., Any] | None = None,
                        loader: Callable[[str], Any] | None = None, ray_address: str | None = None) -> AgentTools:
    """The given trainer / environment factory / loader, the package's own for those not given."""
    if trainer is not None and env_factory is not None:
        return AgentTools(trainer, env_factory, loader)
    from mmenv.agents.across_runs import TrainedAgent, bench_env, train_across_runs

    if trainer is not None:
        return AgentTools(trainer, bench_env, loader)
    default: Trainer = train_across_runs
    if cfg.backend == "ray":
        # The agents' training runs are played in Ray actors (same agent as on processes).
        default = partial(train_across_runs, backend="ray", ray_address=ray_address)
    return AgentTools(default, env_factory or bench_env, loader or TrainedAgent.load, default=True)


#: Benchmark observations that _Observed can rebuild from a run's observation and info alone.
_OBSERVER_SAFE = ("paper", "extended")


def _play(env_factory: Callable[..., Any], policy: Any, observation: str, inst: Instance,
          seeds: Sequence[int], batched: bool = False) -> list[Any]:
    """Episodes of a fixed (not learning) ``policy`` on ``inst``, one per seed; with ``batched``
    (the package's environment factory only) trained together by :func:`_play_batched`."""
    from mmenv.agents import run_policy

    # Observations that read each run's own validation accuracy ("modal") are made by the
    # wrapper around that run's env: the batched engine's observer (_Observed) has no such env.
    if batched and len(seeds) > 1 and observation in _OBSERVER_SAFE:
        return _play_batched(policy, observation, inst, seeds)
    env = env_factory(inst.env_kwargs(), observation=observation, reward=BENCH_ENV["reward"])
    try:
        return run_policy(env, policy, episodes=len(seeds), seeds=list(seeds), learn=False)
    finally:
        env.close()


class _Observed(Policy):
    """One run's view of a fixed policy through the benchmark's observation
    (:class:`mmenv.wrappers.DUSBench`): the batched engine plays bare ``DUSEnv`` runs, so
    the observation the policy would see through the wrapper is made here, per run."""

    def __init__(self, policy: Any, bench: Any) -> None:
        from mmenv.agents.runner import as_policy

        self.policy, self.bench = as_policy(policy), bench
        self.name = getattr(self.policy, "name", "policy")
        self.first: Any = None

    def reset(self, env: Any) -> None:
        self.policy.reset(env)
        self.first = None

    def act(self, obs: Any, info: Any) -> Any:
        # reset's observation is made without the step info, as DUSBench.reset does
        seen = self.bench._observe(obs, None if self.first is None else info)
        if self.first is None:
            self.first = seen
        return self.policy.act(seen, info)



def _play_batched(policy: Any, observation: str, inst: Instance, seeds: Sequence[int]) -> list[Any]:
    """:func:`_play` on the batched engine (:func:`mmenv.engine.play_batch`, one batch of
    ``len(seeds)`` runs; a configuration the engine cannot train is played one run at a
    time there): the same records as ``run_policy`` on ``bench_env`` with the benchmark's
    reward, whose observation :class:`_Observed` reproduces. The policy object is shared
    by the runs, so this is for policies that keep no state between steps (the package's
    trained agents act on the observation alone, deterministically)."""
    from mmenv.agents.across_runs import bench_env

    from mmenv.engine import play_batch

    bench = bench_env(inst.env_kwargs(), observation=observation, reward=BENCH_ENV["reward"])
    try:
        views = [_Observed(policy, bench) for _ in seeds]
        records = play_batch(dict(inst.env_kwargs(), reward=BENCH_ENV["reward"]), views, list(seeds), learn=False)
    finally:
        bench.close()
    for view, record in zip(views, records):
        if view.first is not None:
            record.initial_discrepancy = np.asarray(view.first).tolist()
    return records


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


def _training_hook(job: AgentJob, tools: AgentTools, log_dir: str | None, bar: Bar, curve_every: int | None,
                   curve_fn: Callable[[Any], float] | None) -> TrainingProgress | None:
    """A per-run progress counter on the trainer's ``curve_fn`` seam, where the runs per call
    are known: the package's REINFORCE without a TensorBoard writer (its snapshots deep-copy
    the policy, which an open writer forbids) and its SB3 algorithms with one worker."""
    if not tools.default:
        return None
    spec = job.spec
    if spec.algo == "reinforce" and log_dir is None:
        from mmenv.agents.across_runs import PRESETS

        per_call = int(spec.options.get("episodes_per_update", PRESETS["reinforce"].get("episodes_per_update", 1)))
        return TrainingProgress(bar, spec.runs, per_call, curve_every, curve_fn)
    if spec.algo == "es":   # a curve_fn call after every generation of 2 x population runs
        from mmenv.agents.across_runs import PRESETS

        per_call = 2 * int(spec.options.get("population", PRESETS["es"]["population"]))
        return TrainingProgress(bar, spec.runs, per_call, curve_every, curve_fn)
    if spec.algo != "reinforce" and spec.workers == 1:
        return TrainingProgress(bar, spec.runs, 1, curve_every, curve_fn)
    return None


def agent_summary(job: AgentJob, agent: Any, wall: float) -> dict[str, Any]:
    """What ``OUT/agents/<file>.json`` and the report keep of a trained agent."""
    spec = job.spec
    return {"set": job.set_name, "label": spec.label, "algo": spec.algo, "m": job.m,
            "observation": getattr(agent, "observation", spec.observation),
            "reward": spec.reward, "runs": int(getattr(agent, "runs", spec.runs)),
            "seed": job.seed, "train_wall_time_s": wall,
            "curve": [[int(r), float(v)] for r, v in getattr(agent, "curve", [])],
            "train_instances": [i.name for i in job.train], "digest": job.digest}


def _train_agent(job: AgentJob, plan: BenchPlan, data: BenchData, tools: AgentTools,
                 progress: bool) -> tuple[Any, dict[str, Any]]:
    cfg, spec = plan.cfg, job.spec
    curve_fn = _curve_fn(data, job.test, spec.observation, tools.env_factory) if job.test else None
    curve_every = cfg.curve_every if job.test else None
    # REINFORCE's learning-curve snapshots deep-copy the policy, which fails while its
    # TensorBoard writer is open: it logs no training scalars when a curve is taken (the
    # curve itself is logged below).
    log_dir = str(plan.out / "tb" / job.tag) if cfg.tensorboard and not (
        spec.algo == "reinforce" and job.test and cfg.curve_every) else None
    with stage_bar(f"bench train {job.tag}", spec.runs, "run", progress) as bar:
        hook = _training_hook(job, tools, log_dir, bar, curve_every, curve_fn)
        seam: dict[str, Any] = {"curve_every": curve_every, "curve_fn": curve_fn} if hook is None else \
            {"curve_every": 1, "curve_fn": hook}
        t0 = time.perf_counter()
        agent = tools.trainer(spec.algo, [i.env_kwargs() for i in job.train], runs=spec.runs, seed=job.seed,
                              reward=spec.reward, observation=spec.observation, workers=spec.workers,
                              log_dir=log_dir, **seam, **spec.options)
        wall = time.perf_counter() - t0
        if hook is not None:
            agent.curve = hook.curve(list(agent.curve))
        bar.update(max(0, spec.runs - bar.n))
    summary = agent_summary(job, agent, wall)
    save = getattr(agent, "save", None)
    if callable(save):
        try:
            save(job.path)
            summary["path"] = str(job.path)
        except Exception as exc:  # noqa: BLE001 - an unsaved agent only costs a resume
            summary["save_error"] = f"{type(exc).__name__}: {exc}"
    atomic_write_text(job.summary_path, json.dumps(summary, indent=1))
    if cfg.tensorboard and summary["curve"]:
        _log_curve(plan.out / "tb" / job.tag / "curve", summary["curve"])
    return agent, summary


def _read_summary(job: AgentJob) -> dict[str, Any]:
    try:
        summary = json.loads(job.summary_path.read_text())
    except (OSError, ValueError) as exc:
        raise BenchAgentError(f"agent summary {job.summary_path} cannot be read ({exc}); delete it and "
                              f"{job.path.name} (or run with --force) to train the agent again") from None
    if not (isinstance(summary, dict) and isinstance(summary.get("observation"), str)):
        raise BenchAgentError(f"agent summary {job.summary_path} is not this benchmark's (no 'observation'); delete "
                              f"it and {job.path.name} (or run with --force) to train the agent again")
    return summary


def _load_agent(job: AgentJob, tools: AgentTools, force: bool) -> tuple[Any, dict[str, Any]] | None:
    """The saved agent and its summary; ``None`` when there is none to reuse. A file there
    that is refused is an error, never silently trained over."""
    if force or tools.loader is None or not job.path.exists():
        return None
    if not job.summary_path.exists():
        raise BenchAgentError(f"saved agent {job.path} has no summary {job.summary_path.name}: it was not written "
                              "by a finished benchmark; delete it (or run with --force) to train the agent again")
    summary = _read_summary(job)
    try:
        agent = tools.loader(str(job.path))
    except Exception as exc:  # noqa: BLE001 - every refusal becomes one package error naming the file
        raise BenchAgentError(f"saved agent {job.path} was refused ({type(exc).__name__}: {exc}); delete it (or run "
                              "with --force) to train the agent again") from None
    return agent, summary


def _episode_result(spec: RunSpec, record: Any, wall: float) -> dict[str, Any]:
    """An evaluation episode as a run result (:func:`~mmenv.experiments.grid.new_result`'s layout)."""
    from mmenv.agents.assembly import record_fields

    diverged = bool(record.diverged)
    result = new_result(spec, status="diverged" if diverged else "ok",
                        error="training loss became NaN/inf" if diverged else "")
    result.update(record_fields(record), wall_time_s=wall)
    return result


def _batched_eval(plan: BenchPlan, tools: AgentTools) -> bool:
    """Agents' evaluation runs on the batched engine: with the batched executor, the
    package's trainer (deterministic agents that keep no state between steps) and its
    environment factory; any other agent is played one run at a time, as before."""
    from mmenv.agents.across_runs import bench_env

    return plan.cfg.executor == "batched" and tools.default and tools.env_factory is bench_env


def _evaluate_agent(job: AgentJob, agent: Any, observation: str, plan: BenchPlan, tools: AgentTools,
                    bar: Bar) -> dict[str, dict[str, Any]]:
    specs = job.eval_specs(plan.cfg.eval_seeds)
    seeds = list(plan.cfg.eval_seeds)
    results = {}
    for inst in job.test:
        t0 = time.perf_counter()
        batched = _batched_eval(plan, tools) and engine_reason(specs[(inst.label(), seeds[0])]) is None
        records = _play(tools.env_factory, agent.policy, observation, inst, seeds, batched=batched)
        wall = (time.perf_counter() - t0) / max(1, len(seeds))
        for seed, rec in zip(seeds, records):
            res = _episode_result(specs[(inst.label(), seed)], rec, wall)
            write_result(plan.out / "runs", res)
            results[res["key"]] = res
        bar.update(len(seeds))
    return results


def _agent_results(job: AgentJob, plan: BenchPlan, data: BenchData, tools: AgentTools, force: bool,
                   progress: bool) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The agent's summary and evaluation results: reused when finished, else (re)made."""
    specs = job.eval_specs(plan.cfg.eval_seeds)
    done = {} if force else load_results(plan.out / "runs", [s.key for s in specs.values()])
    if not force and job.summary_path.exists() and all(done.get(s.key, {}).get("status") in FINISHED
                                                       for s in specs.values()):
        return _read_summary(job), done
    loaded = _load_agent(job, tools, force)
    agent, summary = loaded if loaded is not None else _train_agent(job, plan, data, tools, progress)
    with stage_bar(f"bench evaluate {job.tag}", len(specs), "run", progress) as bar:
        results = _evaluate_agent(job, agent, summary["observation"], plan, tools, bar)
    return summary, results


def run_agents(plan: BenchPlan, data: BenchData, tools: AgentTools, force: bool = False,
               progress: bool = True, jobs: Sequence[AgentJob] | None = None) -> None:
    """Train (or reload) every agent job, evaluate it on its test instances, record the numbers."""
    jobs = agent_jobs(plan) if jobs is None else jobs
    for job in jobs:
        if job.label not in data.agent_labels:
            data.agent_labels.append(job.label)
        seeds = data.agent_seeds.setdefault(job.label, [])
        if job.seed not in seeds:
            seeds.append(job.seed)
    with stage_bar("bench agents", len(jobs), "agent", progress) as bar:
        for job in jobs:
            summary, results = _agent_results(job, plan, data, tools, force, progress)
            data.agents[job.key] = summary
            for (label, seed), spec in job.eval_specs(plan.cfg.eval_seeds).items():
                r = results.get(spec.key)
                if r is not None:
                    data.record(next(i for i in job.test if i.label() == label), job.seed_label, seed, r)
            bar.update(1)


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


# ---------------------------------------------------------------------- report
@dataclass
class ReportOutput:
    """The computed report and the files written."""

    report: Any                 # mmenv.experiments.bench_report.Report
    files: list[Path]


def run_report(data: BenchData, out: Path, progress: bool = True) -> ReportOutput:
    from .bench_report import build_report, write_outputs

    with stage_bar("bench report", 2, "step", progress) as bar:
        report = build_report(data)
        bar.update(1)
        files = write_outputs(report, data, out)
        bar.update(1)
    return ReportOutput(report, files)
