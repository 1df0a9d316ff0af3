"""Agents that learn *across* training runs, on a set of benchmark instances.

The paper's agent learns inside the one training run it controls (online REINFORCE,
:mod:`mmenv.agents.reinforce`); measured, it does not learn there. A run of a small
instance costs a fraction of a CPU second, so an agent can instead be trained over many
runs: every episode is a whole training run of an *instance* (data set x learner x
settings) drawn from the train instances, and the agent is evaluated afterwards on other
(held-out) instances and seeds.

* :func:`bench_env` builds the benchmark environment of one instance (``mmenv/DUSBench-v0``,
  :mod:`mmenv.wrappers`): the paper's observation or the extended one, a reward tied to the
  objective (validation accuracy gain, or final validation accuracy) or Eq. 5.
* :func:`train_across_runs` trains ``"reinforce"`` (episodic REINFORCE,
  :class:`~mmenv.agents.reinforce.ReinforcePolicy`), ``"ppo"``, ``"sac"`` or ``"td3"``
  (Stable-Baselines3) for exactly ``runs`` training runs and returns a :class:`TrainedAgent`.
* :data:`PRESETS` are hyper-parameters that learn in this setting (docs/agents.md).

Seeds. Everything follows from ``seed``: the agent's initialisation, which instance each
training run uses, and each training run's environment seed. Training runs' environment
seeds are drawn from ``[TRAIN_SEED_MIN, 2**31)``, so evaluation on seeds below
``TRAIN_SEED_MIN`` (e.g. ``0, 1, 2, ...``) never reuses a training run's seed.

Parallel runs. ``workers > 1`` plays training runs in that many processes: REINFORCE
collects its ``episodes_per_update`` episodes per update in parallel (the result does not
depend on ``workers``: each episode's instance, environment seed and sampling seed are fixed
in advance); SB3 agents step a ``SubprocVecEnv`` of ``workers`` environments (SB3 collects
from all of them, so there the result depends on ``workers``). The batched
:class:`mmenv.vector_env.DUSVectorEnv` is not used: it runs one configuration of the
Baseline learner only, while a train set mixes instances and learners.

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
import copy
import inspect
import json
import multiprocessing
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import gymnasium as gym
import numpy as np
import torch

from mmenv.env import DUSEnv
from mmenv.wrappers import BENCH_OBSERVATIONS, BENCH_REWARDS, make_bench_env

from .policy import Policy, PolicyError
from .reinforce import ReinforcePolicy
from .safe_load import agent_load_errors

__all__ = ["ALGOS", "BACKENDS", "PRESETS", "TRAIN_SEED_MIN", "INSTANCE_KEYS", "bench_env", "train_across_runs",
           "TrainedAgent", "MultiInstanceEnv"]

ALGOS = ("reinforce", "ppo", "sac", "td3")
BACKENDS = ("process", "ray")  # where training runs are played (local processes or Ray actors)
TRAIN_SEED_MIN = 2**24
FORMAT = "mmenv-across-runs-v1"
SB3_META = "mmenv_across_runs.json"  # extra entry in an SB3 .zip; SB3's loader ignores it

# DUSEnv arguments an instance may set (the benchmark sets the reward itself).
INSTANCE_KEYS = tuple(k for k in inspect.signature(DUSEnv.__init__).parameters if k not in ("self", "reward"))

# Hyper-parameters that learn across runs (measured: docs/agents.md, "Learning across runs").
# Episodes are short (one step per epoch), so every algorithm works on whole runs:
# gamma = 1 makes a run's return its final validation accuracy minus its initial one.
PRESETS: dict[str, dict[str, Any]] = {
    # Episodic REINFORCE with a Dirichlet policy; one update per `episodes_per_update` runs.
    "reinforce": dict(lr=3e-3, gamma=1.0, ent_coef=1e-3, baseline_momentum=0.9, episodes_per_update=2),
    # PPO: a rollout of 4 runs per environment, small initial action noise (the default
    # std 1 on a [-1, 1] action space mostly hits the bounds), lr 1e-3.
    "ppo": dict(n_steps=20, batch_size=20, n_epochs=10, learning_rate=1e-3, gamma=1.0, gae_lambda=1.0,
                ent_coef=0.0, log_std_init=-1.0),
    "sac": dict(learning_starts=20, batch_size=64, train_freq=1, gradient_steps=1, buffer_size=20_000,
                learning_rate=1e-3, gamma=1.0, ent_coef="auto"),
    "td3": dict(learning_starts=20, batch_size=64, train_freq=1, gradient_steps=1, buffer_size=20_000,
                learning_rate=1e-3, gamma=1.0, action_noise_sigma=0.2),
}
_POLICY_KWARGS = ("log_std_init",)  # PRESETS entries that go to SB3's policy_kwargs


# ---------------------------------------------------------------------- environments
def _check_instance(instance: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(instance, Mapping):
        raise TypeError(f"an instance is a mapping of DUSEnv arguments, got {type(instance).__name__}")
    unknown = sorted(set(instance) - set(INSTANCE_KEYS))
    if unknown:
        hint = " (the benchmark sets the reward: pass reward= to bench_env)" if "reward" in unknown else ""
        raise ValueError(f"unknown instance key(s) {unknown}{hint}; valid: {sorted(INSTANCE_KEYS)}")
    return dict(instance)


def bench_env(instance: Mapping[str, Any], *, observation: str = "paper", reward: str = "val-acc-gain",
              seed: int | None = None) -> gym.Env:
    """The benchmark environment of one instance (``mmenv/DUSBench-v0``'s settings).

    Args:
        instance: DUSEnv arguments as a plain dict: ``dataset``, ``dataset_kwargs``,
            ``learner``, ``learner_kwargs``, ``epochs``, ``batch_budget``, ``step_every``
            (any may be absent: DUSEnv's default), or any other DUSEnv argument but ``reward``.
        observation: ``"paper"`` (cumulative discrepancy) or ``"extended"`` (:mod:`mmenv.wrappers`).
        reward: ``"val-acc-gain"``, ``"final-val-acc"`` or ``"dus"`` (Eq. 5).
        seed: the first ``reset()`` without a seed uses it.
    """
    if observation not in BENCH_OBSERVATIONS:
        raise ValueError(f"unknown observation {observation!r}; valid: {list(BENCH_OBSERVATIONS)}")
    if reward not in BENCH_REWARDS:
        raise ValueError(f"unknown benchmark reward {reward!r}; valid: {list(BENCH_REWARDS)}")
    return make_bench_env(observation=observation, reward=reward, seed=seed, **_check_instance(instance))


class MultiInstanceEnv(gym.Env):
    """One environment whose every episode is a training run of an instance drawn at random.

    Each ``reset`` draws an instance (uniformly) and an environment seed in
    ``[TRAIN_SEED_MIN, 2**31)`` from its own generator (seeded by ``seed``), so the
    sequence of runs is a function of ``seed`` alone. All instances must have the same
    number of modalities (the spaces must agree). At the end of each run ``info["run"]``
    summarises it (instance index, seed, return, Eq. 5 return, proportions per step, test
    accuracy) and ``info["instance"]`` names the instance.
    """

    metadata = {"render_modes": []}

    def __init__(self, instances: Sequence[Mapping[str, Any]], observation: str = "paper",
                 reward: str = "val-acc-gain", seed: int = 0, action_space: str | None = None) -> None:
        super().__init__()
        if not instances:
            raise ValueError("no train instances given")
        self.instances = [_check_instance(inst) for inst in instances]
        if action_space is not None:
            self.instances = [{**inst, "action_space": action_space} for inst in self.instances]
        self.envs = [bench_env(inst, observation=observation, reward=reward) for inst in self.instances]
        first = self.envs[0]
        for i, env in enumerate(self.envs[1:], start=1):
            if env.observation_space != first.observation_space or env.action_space != first.action_space:
                raise ValueError(f"instance {i} has other spaces ({env.observation_space}, {env.action_space}) than "
                                 f"instance 0 ({first.observation_space}, {first.action_space}): train instances "
                                 "must have the same number of modalities")
        self.observation_space = first.observation_space
        self.action_space = first.action_space
        self.modalities = first.get_wrapper_attr("modalities")
        # How an SB3 policy trained here maps its actions to proportions (SB3Policy reads it).
        self.action_space_name = first.get_wrapper_attr("action_space_name")
        self.softmax_scale = first.get_wrapper_attr("softmax_scale")
        self.rng = np.random.default_rng(seed)
        self.current = 0
        self._run: dict[str, Any] = {}

    @property
    def env(self) -> gym.Env:
        """The benchmark environment of the current run's instance."""
        return self.envs[self.current]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.current = int(self.rng.integers(len(self.envs)))
        env_seed = int(self.rng.integers(TRAIN_SEED_MIN, 2**31 - 1))
        obs, info = self.env.reset(seed=env_seed)
        self._run = {"instance": self.current, "seed": env_seed, "return": 0.0, "reward_dus": 0.0,
                     "proportions": []}
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._run["return"] += float(reward)
        self._run["reward_dus"] += float(info["reward_dus"])
        self._run["proportions"].append([float(p) for p in info["proportions"]])
        if terminated or truncated:
            test = info.get("test")
            self._run["test_accuracy"] = None if test is None else float(test["fused"]["accuracy"])
            info["run"] = dict(self._run)
            info["instance"] = self.current
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        for env in self.envs:
            env.close()


# ---------------------------------------------------------------------- the trained agent
@dataclass
class TrainedAgent:
    """An agent trained across runs.

    ``policy`` acts on ``bench_env(instance, observation=agent.observation)`` through
    :func:`mmenv.agents.run_policy` (REINFORCE with the Dirichlet mean, SB3 with its
    deterministic action). ``curve`` holds ``(runs consumed, curve_fn(policy))`` pairs;
    ``history`` one summary per training run (instance index, environment seed, return,
    Eq. 5 return, proportions per step, test accuracy).
    """

    algo: str
    policy: Policy
    observation: str
    reward: str
    seed: int
    runs: int
    curve: list[tuple[int, float]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    preset: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float = 0.0

    def meta(self) -> dict[str, Any]:
        return {"format": FORMAT, "algo": self.algo, "observation": self.observation, "reward": self.reward,
                "seed": self.seed, "runs": self.runs, "curve": [list(c) for c in self.curve],
                "history": self.history, "preset": {k: v for k, v in self.preset.items() if _plain(v)},
                "wall_time_s": self.wall_time_s}

    def save(self, path: str | Path) -> Path:
        """Save to ``path``: REINFORCE as ``.pt`` (:func:`mmenv.checkpoint.atomic_save`), SB3 as ``.zip``.

        The file stays loadable by :func:`mmenv.agents.make_policy`; :meth:`load` also
        restores the training metadata (observation, curve, history).
        """
        path = Path(path)
        if self.algo == "reinforce":
            if path.suffix != ".pt":
                raise PolicyError(f"a REINFORCE agent is saved as .pt, got {path.name!r}")
            from mmenv.checkpoint import atomic_save

            assert isinstance(self.policy, ReinforcePolicy)
            atomic_save({**self.policy.save_payload(), "across_runs": self.meta()}, path)
        else:
            if path.suffix != ".zip":
                raise PolicyError(f"an SB3 agent is saved as .zip, got {path.name!r}")
            path.parent.mkdir(parents=True, exist_ok=True)
            self.policy.save(path)
            with zipfile.ZipFile(path, "a") as zf:
                zf.writestr(SB3_META, json.dumps(self.meta()))
        return path

    @classmethod
    @agent_load_errors("across-run agent")
    def load(cls, path: str | Path) -> "TrainedAgent":
        """Restore an agent saved by :meth:`save` (deterministic policy)."""
        path = Path(path)
        if not path.is_file():
            raise PolicyError(f"no saved agent at {path}")
        if path.suffix == ".zip":
            from .sb3 import SB3Policy

            with zipfile.ZipFile(path) as zf:
                if SB3_META not in zf.namelist():
                    raise PolicyError(f"{path} is an SB3 model without across-run metadata; "
                                      "load it with mmenv.agents.make_policy")
                meta = json.loads(zf.read(SB3_META))
            policy: Policy = SB3Policy.load(path, algo=meta["algo"], deterministic=True)
        else:
            from mmenv.checkpoint import load as safe_load

            state = safe_load(path)  # never unpickles code (issue 12): the allow-listed safe loader
            meta = state.get("across_runs") if isinstance(state, dict) else None
            if meta is None:
                raise PolicyError(f"{path} has no across-run metadata; load it with mmenv.agents.make_policy")
            policy = ReinforcePolicy.load(path, deterministic=True)
        return cls(algo=meta["algo"], policy=policy, observation=meta["observation"], reward=meta["reward"],
                   seed=meta["seed"], runs=meta["runs"], curve=[(int(r), float(v)) for r, v in meta["curve"]],
                   history=meta["history"], preset=meta.get("preset", {}), wall_time_s=meta.get("wall_time_s", 0.0))

    def schedule(self, instance: Mapping[str, Any], seeds: Sequence[int] = (0,)) -> np.ndarray:
        """The learned schedule on ``instance``: proportions per step, ``[seeds, steps, m]``."""
        from .runner import run_policy

        env = bench_env(instance, observation=self.observation, reward="dus")
        records = run_policy(env, self.policy, episodes=len(seeds), seeds=list(seeds), learn=False)
        env.close()
        return np.asarray([r.proportions for r in records], dtype=np.float64)


def _plain(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool)) or value is None


# ---------------------------------------------------------------------- REINFORCE
_WORKER: dict[str, Any] = {}


def _init_worker(instances: list[dict], observation: str, reward: str) -> None:
    torch.set_num_threads(1)
    _WORKER.clear()
    _WORKER.update(instances=instances, observation=observation, reward=reward, envs={})


def _worker_env(index: int) -> gym.Env:
    envs = _WORKER["envs"]
    if index not in envs:
        envs[index] = bench_env(_WORKER["instances"][index], observation=_WORKER["observation"],
                                reward=_WORKER["reward"])
    return envs[index]


def _play(env: gym.Env, policy: ReinforcePolicy, env_seed: int, sample_seed: int):
    """One training run with ``policy`` sampling from a generator seeded by ``sample_seed``."""
    policy.generator.manual_seed(sample_seed)
    obs, info = env.reset(seed=env_seed)
    base: Any = env.unwrapped
    policy.reset(base)
    transitions, props, ret, dus = [], [], 0.0, 0.0
    done = False
    while not done:
        p = np.asarray(policy.act(obs, info), dtype=np.float64)
        next_obs, reward, terminated, truncated, info = env.step(base.proportions_to_action(p))
        transitions.append((np.asarray(obs, dtype=np.float32), p, float(reward)))
        props.append([float(x) for x in info["proportions"]])
        ret += float(reward)
        dus += float(info["reward_dus"])
        obs = next_obs
        done = terminated or truncated
    test = info.get("test")
    summary = {"seed": env_seed, "return": ret, "reward_dus": dus, "proportions": props,
               "test_accuracy": None if test is None else float(test["fused"]["accuracy"])}
    return transitions, summary


def _worker_play(config: dict, weights: dict, task: tuple[int, int, int]):
    index, env_seed, sample_seed = task
    policy = ReinforcePolicy(**{k: v for k, v in config.items() if k != "seed"}, seed=config["seed"])
    policy._build(config["num_modalities"], config["obs_dim"])
    assert policy.net is not None
    policy.net.load_state_dict(weights)
    transitions, summary = _play(_worker_env(index), policy, env_seed, sample_seed)
    return transitions, {"instance": index, **summary}


def _deterministic_copy(policy: ReinforcePolicy) -> ReinforcePolicy:
    snap = copy.deepcopy(policy)
    snap.deterministic = True
    snap.log_dir = None
    snap._writer = None
    return snap


def _train_reinforce(instances, runs, seed, reward, observation, workers, log_dir, curve_every, curve_fn,
                     options, backend="process", ray_address=None) -> TrainedAgent:
    per_update = int(options.pop("episodes_per_update", 1))
    if per_update < 1:
        raise ValueError(f"episodes_per_update must be >= 1, got {per_update}")
    policy = ReinforcePolicy(seed=seed, mode="episodic", log_dir=log_dir, **options)
    # The plan of every run is fixed in advance, so results do not depend on `workers`.
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5EED]))
    plan = [(int(rng.integers(len(instances))), int(rng.integers(TRAIN_SEED_MIN, 2**31 - 1)),
             int(rng.integers(0, 2**31 - 1))) for _ in range(runs)]
    # Build the network from the spaces (the observation may be longer than m).
    envs = {0: bench_env(instances[0], observation=observation, reward=reward)}
    policy._build(len(envs[0].get_wrapper_attr("modalities")), int(np.prod(envs[0].observation_space.shape or (0,))))
    history: list[dict] = []
    curve: list[tuple[int, float]] = []
    next_curve = 0
    pool = None
    actors: Any = None  # Ray: an ActorPool of RolloutHosts
    stack = contextlib.ExitStack()
    if backend == "ray":
        from .ray_rollouts import RolloutHost

        try:
            ray = _join_ray(stack, ray_address, workers)
        except ValueError:
            policy.close()
            for env in envs.values():
                env.close()
            raise
        host = ray.remote(num_cpus=1)(RolloutHost)
        hosts = [host.remote(instances, observation, reward) for _ in range(workers)]
        stack.callback(_kill_actors, ray, hosts)
        actors = ray.util.ActorPool(hosts)
    elif workers > 1:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver"),
                                   initializer=_init_worker, initargs=(instances, observation, reward))
    try:
        done = 0
        while True:
            last = done >= runs and (not curve or curve[-1][0] != done)
            if curve_fn is not None and curve_every and (done >= next_curve or last):
                curve.append((done, float(curve_fn(_deterministic_copy(policy)))))
                next_curve = (done // curve_every + 1) * curve_every
            if done >= runs:
                break
            tasks = plan[done:done + per_update]
            if actors is not None:
                from .ray_rollouts import play_on_actors

                assert policy.net is not None
                weights = {k: v.clone() for k, v in policy.net.state_dict().items()}
                results = play_on_actors(ray, actors, asdict(policy.config), weights, tasks)
            elif pool is None:
                results = []
                for index, env_seed, sample_seed in tasks:
                    if index not in envs:
                        envs[index] = bench_env(instances[index], observation=observation, reward=reward)
                    transitions, summary = _play(envs[index], policy, env_seed, sample_seed)
                    results.append((transitions, {"instance": index, **summary}))
            else:
                config = asdict(policy.config)
                assert policy.net is not None
                weights = {k: v.clone() for k, v in policy.net.state_dict().items()}
                results = list(pool.map(partial(_worker_play, config, weights), tasks))
            policy.update_on_episodes([transitions for transitions, _ in results])
            for _, summary in results:
                history.append(summary)
            done += len(tasks)
    finally:
        if pool is not None:
            pool.shutdown()
        stack.close()
        for env in envs.values():
            env.close()
        policy.close()
    final = _deterministic_copy(policy)
    return TrainedAgent(algo="reinforce", policy=final, observation=observation, reward=reward, seed=seed,
                        runs=len(history), curve=curve, history=history)


def _join_ray(stack: contextlib.ExitStack, ray_address: str | None, workers: int) -> Any:
    """Enter a Ray session on ``stack`` and check it has CPUs for ``workers`` actors; on a
    ValueError the stack is closed (the session ended) before it propagates."""
    from mmenv.cluster import ray_session

    ray = stack.enter_context(ray_session(ray_address, num_cpus=workers))
    try:
        _check_cpus(ray, workers)
    except ValueError:
        stack.close()
        raise
    return ray


def _check_cpus(ray: Any, workers: int) -> None:
    """Refuse more actors than the cluster has CPUs: the extra ones would wait forever."""
    from mmenv.cluster import cluster_cpus

    cpus = cluster_cpus(ray)
    if workers > cpus:
        raise ValueError(f"workers={workers} Ray actors need {workers} CPUs, but the Ray cluster has {cpus}: "
                         "lower workers or add nodes (ray start --address=HEAD:6379 on another machine)")


def _kill_actors(ray: Any, actors: Sequence[Any]) -> None:
    """Free the actors' CPUs (on a joined cluster they would outlive the training otherwise)."""
    with contextlib.suppress(Exception):
        ray.get([a.close.remote() for a in actors])
    for a in actors:
        with contextlib.suppress(Exception):
            ray.kill(a)


# ---------------------------------------------------------------------- Stable-Baselines3
def _make_multi(instances, observation, reward, seed):
    torch.set_num_threads(1)
    return MultiInstanceEnv(instances, observation=observation, reward=reward, seed=seed, action_space="symmetric")


def _train_sb3(algo, instances, runs, seed, reward, observation, workers, log_dir, curve_every, curve_fn,
               options, backend="process", ray_address=None) -> TrainedAgent:
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.noise import NormalActionNoise
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    from .sb3 import SB3Policy, _algo_class

    fns: list[Callable[[], gym.Env]] = [partial(_make_multi, instances, observation, reward, seed * 1000 + i) for i in range(workers)]
    stack = contextlib.ExitStack()
    venv: Any
    if backend == "ray":
        from .ray_rollouts import RayVecEnv

        venv = RayVecEnv(fns, _join_ray(stack, ray_address, workers))
    else:
        venv = DummyVecEnv(fns) if workers == 1 else SubprocVecEnv(fns, start_method="forkserver")
    options = dict(options)
    policy_kwargs = dict(options.pop("policy_kwargs", {}) or {})
    for key in _POLICY_KWARGS:
        if key in options:
            value = options.pop(key)
            if algo in ("ppo", "a2c"):  # a Gaussian policy's initial log-std; SAC/TD3 have none
                policy_kwargs[key] = value
    sigma = options.pop("action_noise_sigma", None)
    if algo == "td3" and sigma is not None and "action_noise" not in options:
        m = int(np.prod(venv.action_space.shape or (1,)))
        options["action_noise"] = NormalActionNoise(np.zeros(m), sigma * np.ones(m))
    try:
        model = _algo_class(algo)("MlpPolicy", venv, seed=seed, device="cpu", tensorboard_log=log_dir, verbose=0,
                                  policy_kwargs=policy_kwargs or None, **options)
    except BaseException:
        venv.close()
        stack.close()
        raise

    class RunsCallback(BaseCallback):
        """Counts finished training runs, records them and the curve, stops after ``runs``."""

        def __init__(self) -> None:
            super().__init__()
            self.done = 0
            self.history: list[dict] = []
            self.curve: list[tuple[int, float]] = []
            self.next_curve = 0

        def _point(self) -> None:
            if curve_fn is not None and curve_every and self.done >= self.next_curve:
                self.curve.append((self.done, float(curve_fn(SB3Policy(self.model, deterministic=True)))))
                self.next_curve = (self.done // curve_every + 1) * curve_every

        def _on_training_start(self) -> None:
            self._point()

        def _on_training_end(self) -> None:
            if curve_fn is not None and curve_every and (not self.curve or self.curve[-1][0] != self.done):
                self.curve.append((self.done, float(curve_fn(SB3Policy(self.model, deterministic=True)))))

        def _on_step(self) -> bool:
            for info, finished in zip(self.locals["infos"], self.locals["dones"]):
                if finished and "run" in info:
                    self.done += 1
                    self.history.append(info["run"])
                    if log_dir is not None and info["run"]["test_accuracy"] is not None:
                        self.logger.record("across_runs/test_accuracy", info["run"]["test_accuracy"])
                        self.logger.record("across_runs/return", info["run"]["return"])
            self._point()
            return self.done < runs

    callback = RunsCallback()
    try:
        # No step budget: the callback stops training after `runs` finished runs.
        model.learn(total_timesteps=10**12, callback=callback)
        # Built while the environments are open: the policy reads their action-space name.
        policy = SB3Policy(model, deterministic=True)
    finally:
        venv.close()
        stack.close()
    if callback.done < runs:
        raise RuntimeError(f"SB3 stopped after {callback.done} of {runs} runs (this is a bug)")
    return TrainedAgent(algo=algo, policy=policy, observation=observation,
                        reward=reward, seed=seed, runs=callback.done, curve=callback.curve, history=callback.history)


# ---------------------------------------------------------------------- entry point
def train_across_runs(algo: str, train_instances: Sequence[Mapping[str, Any]], *, runs: int, seed: int,
                      reward: str = "val-acc-gain", observation: str = "paper", workers: int = 1,
                      log_dir: str | None = None, curve_every: int | None = None,
                      curve_fn: Callable[[Policy], float] | None = None, backend: str = "process",
                      ray_address: str | None = None, **overrides: Any) -> TrainedAgent:
    """Train ``algo`` over ``runs`` whole training runs of instances drawn from ``train_instances``.

    Args:
        algo: ``"reinforce"`` (episodic REINFORCE), ``"ppo"``, ``"sac"`` or ``"td3"``.
        train_instances: instances (:func:`bench_env`'s ``instance``), all with the same
            number of modalities; one is drawn uniformly for every run.
        runs: training runs (episodes) to consume; REINFORCE and single-worker SB3 consume
            exactly this many; with ``workers > 1`` SB3 stops at the first step after which
            ``runs`` runs have finished (several workers may finish a run on that step, so
            ``agent.runs`` may exceed ``runs`` by up to ``workers - 1``).
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
        **overrides: replace :data:`PRESETS` entries (e.g. ``lr=3e-3``, ``episodes_per_update=4``,
            ``learning_rate=3e-4``).
    """
    algo = algo.lower()
    if algo not in ALGOS:
        raise PolicyError(f"unknown across-run algorithm {algo!r}; valid: {list(ALGOS)}")
    if not isinstance(runs, int) or runs < 1:
        raise ValueError(f"runs must be a positive int, got {runs!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, got {workers!r}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {list(BACKENDS)}")
    if ray_address is not None and backend != "ray":
        raise ValueError("ray_address is only used with backend='ray'")
    if curve_every is not None and curve_every < 1:
        raise ValueError(f"curve_every must be a positive int, got {curve_every!r}")
    if observation not in BENCH_OBSERVATIONS:
        raise ValueError(f"unknown observation {observation!r}; valid: {list(BENCH_OBSERVATIONS)}")
    if reward not in BENCH_REWARDS:
        raise ValueError(f"unknown benchmark reward {reward!r}; valid: {list(BENCH_REWARDS)}")
    instances = [_check_instance(inst) for inst in train_instances]
    if not instances:
        raise ValueError("no train instances given")
    options = {**PRESETS[algo], **overrides}
    import time

    start = time.perf_counter()
    if algo == "reinforce":
        agent = _train_reinforce(instances, runs, seed, reward, observation, workers, log_dir, curve_every,
                                 curve_fn, dict(options), backend, ray_address)
    else:
        agent = _train_sb3(algo, instances, runs, seed, reward, observation, workers, log_dir, curve_every,
                           curve_fn, dict(options), backend, ray_address)
    agent.preset = options
    agent.wall_time_s = time.perf_counter() - start
    return agent
