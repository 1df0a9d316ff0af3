"""Agents that learn *across* training runs, on a set of benchmark instances.

The paper's agent learns inside the one training run it controls (online REINFORCE,
:mod:`mmenv.agents.reinforce`); measured, it does not learn there. A run of a small
instance costs a fraction of a CPU second, so an agent can instead be trained over many
runs: every episode is a whole training run of an *instance*
(:class:`mmenv.instances.Instance`: data set x learner x settings) drawn from the train
instances, and the agent is evaluated afterwards on other (held-out) instances and seeds.

This is a way of training the package's own agents, not a framework of its own: the agents
are :class:`~mmenv.agents.reinforce.ReinforcePolicy` and SB3 models
(:func:`mmenv.agents.sb3.make_sb3_agent`), with the ``"across-runs"`` presets of
:data:`mmenv.agents.presets.PRESETS`; SB3 agents train on the instance-cycling environment
(:class:`mmenv.cycling.InstanceCyclingEnv`, what ``gym.make("mmenv/DUSBench-v0",
instances=...)`` builds); a trained agent is saved in the one saved-agent format
(:mod:`mmenv.agents.saved`) that ``make_policy``, ``mmenv evaluate`` and ``mmenv bench`` read.

* :func:`bench_env` builds the benchmark environment of one instance (``mmenv/DUSBench-v0``,
  :mod:`mmenv.wrappers`): the paper's, the extended or the per-modality observation, a reward
  tied to the objective (validation accuracy gain, or final validation accuracy) or Eq. 5.
* :func:`train_across_runs` trains any registered algorithm (:data:`TRAINERS`:
  ``"reinforce"``, ``"ppo"``, ``"sac"``, ``"td3"``, plus those added with
  :func:`register_trainer`) for ``runs`` training runs and returns a :class:`TrainedAgent`.

**The trainer protocol.** A trainer is a callable::

    trainer(instances: list[Instance], *, runs: int, seed: int, reward: str, observation: str,
            workers: int, log_dir: str | None, curve_every: int | None,
            curve_fn: Callable[[Policy], float] | None, backend: str, ray_address: str | None,
            **options) -> TrainedAgent

``instances`` are the train instances (same m); ``options`` are the algorithm's
``"across-runs"`` preset updated with the caller's overrides. It must consume ``runs``
training runs (environment seeds ``>= TRAIN_SEED_MIN``), call ``curve_fn`` on a
deterministic snapshot of its policy at 0, every ``curve_every`` runs and at the end, and
return a :class:`TrainedAgent` whose ``policy`` acts deterministically. ``train_across_runs``
dispatches on ``algo`` through :data:`TRAINERS`, so it is itself the one trainer a caller
needs (``mmenv bench``'s ``trainer`` hook has its signature)::

    from mmenv.agents.across_runs import register_trainer, train_across_runs

    def my_trainer(instances, *, runs, seed, **kw):
        ...                                   # return a TrainedAgent
    register_trainer("my-algo", my_trainer)
    agent = train_across_runs("my-algo", train, runs=100, seed=0)

Seeds. Everything follows from ``seed``: the agent's initialisation, which instance each
training run uses, and each training run's environment seed. Training runs' environment
seeds are drawn from ``[TRAIN_SEED_MIN, 2**31)``, so evaluation on seeds below
``TRAIN_SEED_MIN`` (e.g. ``0, 1, 2, ...``) never reuses a training run's seed.

Parallel runs. ``workers > 1`` plays training runs in that many processes: REINFORCE
collects its ``episodes_per_update`` episodes per update in parallel (the result does not
depend on ``workers``: each episode's instance, environment seed and sampling seed are fixed
in advance; :mod:`mmenv.agents.rollouts`); SB3 agents step a ``SubprocVecEnv`` of ``workers``
environments (SB3 collects from all of them, so there the result depends on ``workers``).

On a cluster. ``backend="ray"`` plays the training runs in ``workers`` Ray actors instead of
local processes (:mod:`mmenv.agents.ray_rollouts`), on a local Ray instance with ``workers``
CPUs or on the cluster at ``ray_address`` / ``RAY_ADDRESS``; the same seeds give the same
agent as ``backend="process"`` with the same ``workers``.

Example::

    from mmenv.agents.across_runs import bench_env, train_across_runs
    from mmenv.agents import run_policy

    train = [{"dataset": "synthetic", "dataset_kwargs": {"seed": s}, "learner": "ogm-ge", "epochs": 5}
             for s in (1, 2, 3)]
    agent = train_across_runs("reinforce", train, runs=200, seed=0)
    test = {"dataset": "synthetic", "dataset_kwargs": {"seed": 9}, "learner": "ogm-ge", "epochs": 5}
    rec = run_policy(bench_env(test, observation=agent.observation), agent.policy, seeds=[0])[0]
    print(rec.test["fused"]["accuracy"], agent.schedule(test, seeds=[0]))
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from functools import partial
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from mmenv.cycling import TRAIN_SEED_MIN, InstanceCyclingEnv
from mmenv.errors import InvalidArgumentError
from mmenv.instances import TASK_KEYS, Instance, as_instance
from mmenv.registry import Registry
from mmenv.wrappers import BENCH_OBSERVATIONS, BENCH_REWARDS, make_bench_env

from .policy import Policy, PolicyError, UnknownPolicyError
from .presets import preset
from .reinforce import ReinforcePolicy
from .rollouts import RolloutWorker, init_worker, play_run, worker_play, worker_play_sampled
from .saved import TrainedAgent

__all__ = ["ALGOS", "BACKENDS", "PRESETS", "TRAIN_SEED_MIN", "INSTANCE_KEYS", "TRAINERS", "Trainer", "bench_env",
           "train_across_runs", "train_reinforce", "train_sb3", "register_trainer", "trainer_for", "TrainedAgent",
           "MultiInstanceEnv"]

ALGOS = ("reinforce", "es", "ppo", "sac", "td3")   # the built-in trainers (TRAINERS may hold more)
BACKENDS = ("process", "ray")  # where training runs are played (local processes or Ray actors)
#: The built-in algorithms' ``"across-runs"`` presets (a view of :data:`mmenv.agents.presets.PRESETS`).
PRESETS: dict[str, dict[str, Any]] = {algo: preset(algo, "across-runs") for algo in ALGOS}
#: The keys a plain-mapping instance may hold (:data:`mmenv.instances.TASK_KEYS`).
INSTANCE_KEYS = TASK_KEYS


class Trainer(Protocol):
    """An across-run trainer (module docstring: the trainer protocol)."""

    def __call__(self, instances: list[Instance], *, runs: int, seed: int, reward: str, observation: str,
                 workers: int, log_dir: str | None, curve_every: int | None,
                 curve_fn: Callable[[Policy], float] | None, backend: str, ray_address: str | None,
                 **options: Any) -> TrainedAgent: ...


# ---------------------------------------------------------------------- environments
def bench_env(instance: Instance | Mapping[str, Any], *, observation: str = "paper", reward: str = "val-acc-gain",
              seed: int | None = None, **env_options: Any) -> gym.Env:
    """The benchmark environment of one instance (``mmenv/DUSBench-v0``'s settings).

    Args:
        instance: a :class:`mmenv.instances.Instance`, or a mapping of its task keys
            (``dataset``, ``dataset_kwargs``, ``learner``, ``learner_kwargs``, ``epochs``,
            ``batch_budget``, ``step_every``; any may be absent: DUSEnv's default).
        observation: ``"paper"``, ``"extended"`` or ``"modal"`` (:mod:`mmenv.observations`).
        reward: ``"val-acc-gain"``, ``"final-val-acc"`` or ``"dus"`` (Eq. 5).
        seed: the first ``reset()`` without a seed uses it.
        **env_options: other DUSEnv settings (``action_space``, ``device``, ...).
    """
    if observation not in BENCH_OBSERVATIONS:
        raise InvalidArgumentError(f"unknown observation {observation!r}; valid: {list(BENCH_OBSERVATIONS)}")
    if reward not in BENCH_REWARDS:
        raise InvalidArgumentError(f"unknown benchmark reward {reward!r}; valid: {list(BENCH_REWARDS)}")
    return make_bench_env(observation=observation, reward=reward, seed=seed, **as_instance(instance).env_kwargs(),
                          **env_options)


class MultiInstanceEnv(InstanceCyclingEnv):
    """The instance-cycling environment with a random instance per run (the signature earlier versions had).

    New code: ``InstanceCyclingEnv(instances, order="random", ...)`` or
    ``gym.make("mmenv/DUSBench-v0", instances=..., order="random")``.
    """

    def __init__(self, instances: Sequence[Instance | Mapping[str, Any]], observation: str = "paper",
                 reward: str = "val-acc-gain", seed: int = 0, action_space: str | None = None) -> None:
        options = {} if action_space is None else {"action_space": action_space}
        super().__init__(instances, observation=observation, reward=reward, seed=seed, order="random", **options)


# ---------------------------------------------------------------------- REINFORCE
def train_reinforce(instances: list[Instance], *, runs: int, seed: int, reward: str = "val-acc-gain",
                    observation: str = "paper", workers: int = 1, log_dir: str | None = None,
                    curve_every: int | None = None, curve_fn: Callable[[Policy], float] | None = None,
                    backend: str = "process", ray_address: str | None = None, **options: Any) -> TrainedAgent:
    """Episodic REINFORCE across runs (the trainer of ``"reinforce"``; ``options``: ReinforceConfig
    fields, e.g. ``policy="equivariant"``, plus ``episodes_per_update``)."""
    per_update = int(options.pop("episodes_per_update", 1))
    group = options.pop("group_size", 1)
    normalize = options.pop("normalize_advantages", True)
    batched = options.pop("batched", True)
    if per_update < 1:
        raise InvalidArgumentError(f"episodes_per_update must be >= 1, got {per_update}")
    if isinstance(group, bool) or not isinstance(group, int) or group < 1 or per_update % group:
        raise InvalidArgumentError(f"group_size must be 1 or an int >= 2 that divides episodes_per_update "
                                   f"({per_update}), got {group!r}")
    if group > runs:
        raise InvalidArgumentError(f"group_size {group} is more than runs={runs}: no group would be played")
    if not isinstance(normalize, bool):
        raise InvalidArgumentError(f"normalize_advantages must be True or False, got {normalize!r}")
    if not isinstance(batched, bool):
        raise InvalidArgumentError(f"batched must be True or False, got {batched!r}")
    policy = ReinforcePolicy(seed=seed, mode="episodic", log_dir=log_dir, **options)
    plan = _reinforce_plan(len(instances), runs, seed, group)
    runs = len(plan)
    # Plays the runs in this process when workers == 1 (its environments are built on first use).
    local = RolloutWorker(instances, observation, reward, one_thread=False)
    # Build the network from the spaces (the observation may be longer than m).
    first = local.env(0)
    policy.build(len(first.get_wrapper_attr("modalities")), int(np.prod(first.observation_space.shape or (0,))))
    history: list[dict] = []
    curve: list[tuple[int, float]] = []
    next_curve = 0
    pool = None
    actors: Any = None  # Ray: an ActorPool of RolloutHosts
    stack = contextlib.ExitStack()
    stack.callback(policy.close)
    stack.callback(local.close)
    try:
        if backend == "ray":
            from .ray_rollouts import RolloutHost, join_ray, kill_actors

            ray = join_ray(stack, ray_address, workers)
            host = ray.remote(num_cpus=1)(RolloutHost)
            hosts = [host.remote(instances, observation, reward) for _ in range(workers)]
            stack.callback(kill_actors, ray, hosts)
            actors = ray.util.ActorPool(hosts)
        elif workers > 1:
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver"),
                                       initializer=init_worker, initargs=(instances, observation, reward))
            stack.callback(pool.shutdown)
        done = 0
        while True:
            last = done >= runs and (not curve or curve[-1][0] != done)
            if curve_fn is not None and curve_every and (done >= next_curve or last):
                curve.append((done, float(curve_fn(policy.snapshot()))))
                next_curve = (done // curve_every + 1) * curve_every
            if done >= runs:
                break
            tasks = plan[done:done + per_update]
            if actors is not None:
                from .ray_rollouts import play_on_actors

                results = play_on_actors(ray, actors, asdict(policy.config), policy.weights(), tasks)
            elif batched:
                results = _play_update(local, pool, asdict(policy.config), policy.weights(), tasks)
            elif pool is None:
                results = []
                for index, env_seed, sample_seed in tasks:
                    transitions, summary = play_run(local.env(index), policy, env_seed, sample_seed)
                    results.append((transitions, {"instance": index, **summary}))
            else:
                results = list(pool.map(partial(worker_play, asdict(policy.config), policy.weights()), tasks))
            episodes = [transitions for transitions, _ in results]
            if group > 1:
                policy.update_on_groups([episodes[i:i + group] for i in range(0, len(episodes), group)],
                                        normalize=normalize)
            else:
                policy.update_on_episodes(episodes)
            for _, summary in results:
                history.append(summary)
            done += len(tasks)
    finally:
        stack.close()
    return TrainedAgent(algo="reinforce", policy=policy.snapshot(), observation=observation, reward=reward, seed=seed,
                        runs=len(history), curve=curve, history=history)


#: Runs of one instance in one update played as one batch of the engine from this many on; fewer
#: are played one at a time (two runs of 8-32 ms iterations gain nothing from a batch).
MIN_BATCH_RUNS = 4


def _play_update(local: RolloutWorker, pool: ProcessPoolExecutor | None, config: dict[str, Any],
                 weights: dict[str, Any], tasks: list[tuple[int, int, int]]) -> list[tuple[list, dict[str, Any]]]:
    """An update's runs, in plan order: those that share an instance (at least ``MIN_BATCH_RUNS``)
    as one batch of the batched engine each, the rest one at a time; on the pool's workers when
    there is a pool. Every run uses the same weights, so batching does not change the algorithm."""
    groups: dict[int, list[int]] = {}
    for pos, task in enumerate(tasks):
        groups.setdefault(task[0], []).append(pos)
    jobs = []   # (positions, batched)
    for positions in groups.values():
        if len(positions) >= MIN_BATCH_RUNS:
            jobs.append((positions, True))
        else:
            jobs.extend(([pos], False) for pos in positions)
    results: list[Any] = [None] * len(tasks)
    if pool is None:
        outs = [local.play_sampled(config, weights, [tasks[p] for p in positions]) if together
                else [local.play(config, weights, tasks[positions[0]])] for positions, together in jobs]
    else:
        futures: list[Any] = [pool.submit(worker_play_sampled, config, weights, [tasks[p] for p in positions])
                              if together else pool.submit(worker_play, config, weights, tasks[positions[0]])
                              for positions, together in jobs]
        outs = [f.result() if together else [f.result()] for f, (_, together) in zip(futures, jobs)]
    for (positions, _), out in zip(jobs, outs):
        for pos, result in zip(positions, out):
            results[pos] = result
    return results


def _reinforce_plan(num_instances: int, runs: int, seed: int, group: int) -> list[tuple[int, int, int]]:
    """Every training run's (instance, environment seed, sampling seed), fixed in advance so that
    results do not depend on ``workers``. With ``group > 1`` the runs come in groups of ``group``
    that share the instance and the environment seed (common random numbers for the
    leave-one-out baseline) and differ in their action samples; a last, incomplete group is
    dropped (``runs`` rounds down to a multiple of ``group``)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    if group == 1:
        return [(int(rng.integers(num_instances)), int(rng.integers(TRAIN_SEED_MIN, 2**31 - 1)),
                 int(rng.integers(0, 2**31 - 1))) for _ in range(runs)]
    plan: list[tuple[int, int, int]] = []
    for _ in range(runs // group):
        index, env_seed = int(rng.integers(num_instances)), int(rng.integers(TRAIN_SEED_MIN, 2**31 - 1))
        plan.extend((index, env_seed, int(rng.integers(0, 2**31 - 1))) for _ in range(group))
    return plan


# ---------------------------------------------------------------------- Stable-Baselines3
def _cycling_env(instances: list[Instance], observation: str, reward: str, seed: int) -> gym.Env:
    import torch

    torch.set_num_threads(1)
    return InstanceCyclingEnv(instances, observation=observation, reward=reward, seed=seed, order="random",
                              action_space="symmetric")


class RunsCallback(BaseCallback):
    """Counts finished training runs, records them and the learning curve, stops after ``runs``."""

    def __init__(self, runs: int, curve_every: int | None, curve_fn: Callable[[Policy], float] | None,
                 log: bool) -> None:
        super().__init__()
        self.runs, self.curve_every, self.curve_fn, self.log = runs, curve_every, curve_fn, log
        self.done = 0
        self.history: list[dict] = []
        self.curve: list[tuple[int, float]] = []
        self.next_curve = 0

    def _score(self) -> float:
        from .sb3 import SB3Policy

        assert self.curve_fn is not None  # only called when a curve is asked for
        return float(self.curve_fn(SB3Policy(self.model, deterministic=True)))

    def _point(self) -> None:
        if self.curve_fn is not None and self.curve_every and self.done >= self.next_curve:
            self.curve.append((self.done, self._score()))
            self.next_curve = (self.done // self.curve_every + 1) * self.curve_every

    def _on_training_start(self) -> None:
        self._point()

    def _on_training_end(self) -> None:
        if self.curve_fn is not None and self.curve_every and (not self.curve or self.curve[-1][0] != self.done):
            self.curve.append((self.done, self._score()))

    def _on_step(self) -> bool:
        for info, finished in zip(self.locals["infos"], self.locals["dones"]):
            if finished and "run" in info:
                self.done += 1
                self.history.append(info["run"])
                if self.log and info["run"]["test_accuracy"] is not None:
                    self.logger.record("across_runs/test_accuracy", info["run"]["test_accuracy"])
                    self.logger.record("across_runs/return", info["run"]["return"])
        self._point()
        return self.done < self.runs


def train_sb3(algo: str, instances: list[Instance], *, runs: int, seed: int, reward: str = "val-acc-gain",
              observation: str = "paper", workers: int = 1, log_dir: str | None = None,
              curve_every: int | None = None, curve_fn: Callable[[Policy], float] | None = None,
              backend: str = "process", ray_address: str | None = None, **options: Any) -> TrainedAgent:
    """An SB3 algorithm across runs on the instance-cycling environment (the trainer of ``"ppo"``,
    ``"sac"``, ``"td3"``; ``options``: :func:`~mmenv.agents.sb3.make_sb3_agent` arguments, e.g.
    ``policy="equivariant"``)."""
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    from .sb3 import SB3Policy, make_sb3_agent

    fns: list[Callable[[], gym.Env]] = [partial(_cycling_env, instances, observation, reward, seed * 1000 + i)
                                        for i in range(workers)]
    stack = contextlib.ExitStack()
    venv: Any
    if backend == "ray":
        from .ray_rollouts import RayVecEnv, join_ray

        venv = RayVecEnv(fns, join_ray(stack, ray_address, workers))
    else:
        venv = DummyVecEnv(fns) if workers == 1 else SubprocVecEnv(fns, start_method="forkserver")
    try:
        model = make_sb3_agent(algo, venv, tensorboard_log=log_dir, seed=seed, verbose=0, setting="across-runs",
                               **options)
    except BaseException:
        venv.close()
        stack.close()
        raise
    callback = RunsCallback(runs, curve_every, curve_fn, log=log_dir is not None)
    try:
        # No step budget: the callback stops training after `runs` finished runs.
        model.learn(total_timesteps=10**12, callback=callback)
        # Built while the environments are open: the policy reads their action-space name.
        policy = SB3Policy(model, deterministic=True)
    finally:
        venv.close()
        stack.close()
    if callback.done < runs:
        raise RuntimeError(f"SB3 stopped after {callback.done} of {runs} runs")  # internal invariant
    return TrainedAgent(algo=algo, policy=policy, observation=observation, reward=reward, seed=seed,
                        runs=callback.done, curve=callback.curve, history=callback.history)


# ---------------------------------------------------------------------- the trainer registry
#: Across-run trainers by algorithm (:class:`Trainer`); installed packages can add some through
#: the entry-point group ``mmenv.trainers``.
TRAINERS: Registry = Registry("across-run trainer", "mmenv.trainers", construct=False, param="algo",
                              unknown_error=UnknownPolicyError)
TRAINERS.register("reinforce", train_reinforce)
TRAINERS.register("es", "mmenv.agents.es:train_es")
for _algo in ("ppo", "sac", "td3"):
    TRAINERS.register(_algo, partial(train_sb3, _algo))


def register_trainer(algo: str, trainer: Trainer | str, overwrite: bool = False) -> None:
    """Register ``trainer`` (a :class:`Trainer` or ``"module:function"``) under ``algo``.

    ``train_across_runs(algo, ...)`` and ``mmenv bench``'s agents (``algo:`` in a preset) then
    use it; its ``options`` are the caller's overrides (no preset unless ``algo`` has one).
    """
    TRAINERS.register(algo, trainer, overwrite=overwrite)


def trainer_for(algo: str) -> Trainer:
    """The trainer registered for ``algo`` (an error listing the registered ones otherwise)."""
    key = str(algo).lower()
    if key in ("dqn", "qrdqn", "qr-dqn", "maskableppo", "maskable-ppo"):
        raise PolicyError(f"unknown across-run algorithm {algo!r}: it needs a discrete action space, while DUS "
                          f"actions are continuous proportions; registered: {TRAINERS.names()}")
    if key not in TRAINERS:
        raise UnknownPolicyError(f"unknown across-run algorithm {algo!r}; registered: {TRAINERS.names()} "
                                 "(add one with mmenv.agents.across_runs.register_trainer)")
    return TRAINERS.get_factory(key)


# ---------------------------------------------------------------------- entry point
def train_across_runs(algo: str, train_instances: Sequence[Instance | Mapping[str, Any]], *, runs: int, seed: int,
                      reward: str = "val-acc-gain", observation: str = "paper", workers: int = 1,
                      log_dir: str | None = None, curve_every: int | None = None,
                      curve_fn: Callable[[Policy], float] | None = None, backend: str = "process",
                      ray_address: str | None = None, **overrides: Any) -> TrainedAgent:
    """Train ``algo`` over ``runs`` whole training runs of instances drawn from ``train_instances``.

    Args:
        algo: a registered trainer (:data:`TRAINERS`): ``"reinforce"`` (episodic REINFORCE),
            ``"ppo"``, ``"sac"``, ``"td3"``, or one added with :func:`register_trainer`.
        train_instances: :class:`mmenv.instances.Instance` objects (or mappings of their task
            keys), all with the same number of modalities; one is drawn uniformly for every run.
        runs: training runs (episodes) to consume; REINFORCE and single-worker SB3 consume
            exactly this many; with ``workers > 1`` SB3 stops at the first step after which
            ``runs`` runs have finished (several workers may finish a run on that step, so
            ``agent.runs`` may exceed ``runs`` by up to ``workers - 1``). Grouped REINFORCE
            (``group_size=G``) rounds ``runs`` down to a multiple of G, ES to a multiple of
            ``2 * population`` (whole groups and generations).
        seed: seeds everything (agent, instance draws, environment seeds; module docstring).
        reward, observation: as in :func:`bench_env`.
        workers: processes (or Ray actors) playing training runs in parallel.
        backend: ``"process"`` (local worker processes when ``workers > 1``) or ``"ray"``
            (``workers`` Ray actors, one CPU each, :mod:`mmenv.agents.ray_rollouts`; same
            result as ``"process"`` with the same ``workers``).
        ray_address: with ``backend="ray"``, the cluster to join (default ``RAY_ADDRESS``,
            else a local Ray instance with ``workers`` CPUs).
        log_dir: TensorBoard directory (REINFORCE statistics, SB3's own logs).
        curve_every, curve_fn: every ``curve_every`` runs (and at 0 and at the end),
            ``curve_fn(policy)`` scores a deterministic snapshot of the policy (e.g. mean
            held-out accuracy); the pairs land in ``agent.curve``.
        **overrides: replace entries of the algorithm's ``"across-runs"`` preset
            (:data:`mmenv.agents.presets.PRESETS`; e.g. ``lr=3e-3``, ``episodes_per_update=4``,
            ``learning_rate=3e-4``, ``policy="equivariant"``).
    """
    trainer = trainer_for(algo)
    algo = str(algo).lower()
    if not isinstance(runs, int) or runs < 1:
        raise InvalidArgumentError(f"runs must be a positive int, got {runs!r}")
    if not isinstance(workers, int) or workers < 1:
        raise InvalidArgumentError(f"workers must be a positive int, got {workers!r}")
    if backend not in BACKENDS:
        raise InvalidArgumentError(f"unknown backend {backend!r}; valid: {list(BACKENDS)}")
    if ray_address is not None and backend != "ray":
        raise InvalidArgumentError("ray_address is only used with backend='ray'")
    if curve_every is not None and curve_every < 1:
        raise InvalidArgumentError(f"curve_every must be a positive int, got {curve_every!r}")
    if observation not in BENCH_OBSERVATIONS:
        raise InvalidArgumentError(f"unknown observation {observation!r}; valid: {list(BENCH_OBSERVATIONS)}")
    if reward not in BENCH_REWARDS:
        raise InvalidArgumentError(f"unknown benchmark reward {reward!r}; valid: {list(BENCH_REWARDS)}")
    instances = [as_instance(inst, name=f"train-{i}") for i, inst in enumerate(train_instances)]
    if not instances:
        raise InvalidArgumentError("no train instances given")
    options = {**preset(algo, "across-runs"), **overrides}
    start = time.perf_counter()
    agent = trainer(instances, runs=runs, seed=seed, reward=reward, observation=observation, workers=workers,
                    log_dir=log_dir, curve_every=curve_every, curve_fn=curve_fn, backend=backend,
                    ray_address=ray_address, **dict(options))
    agent.preset = options
    agent.wall_time_s = time.perf_counter() - start
    agent.train_instances = [inst.name for inst in instances]
    agent.policy.card = agent.card
    return agent
