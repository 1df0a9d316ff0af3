"""Play K runs of one configuration together: policies or fixed schedules, one batch.

:func:`play_batch` is :func:`mmenv.agents.run_policy` for K runs at once (one seed and one
policy each) on the batched engine; every run's :class:`~mmenv.agents.runner.EpisodeRecord`
equals what ``run_policy`` gives for that run alone (to float rounding). :func:`execute_batch`
does the same for a list of :class:`~mmenv.experiments.grid.RunSpec` and returns the result
dicts :func:`~mmenv.experiments.grid.execute_run` writes, grouping the specs that share an
environment configuration (the same instance; seeds and policies may differ).

Configurations the engine cannot batch (:func:`~mmenv.engine.batched.engine_support`)
are played one run at a time by the ordinary path, with the same records.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

import numpy as np

from ..env import DUSEnv, grad_mode_independent
from .batched import BatchedRuns, EngineError, engine_support

__all__ = ["play_batch", "execute_batch", "iter_batches", "BatchedExecutor", "group_key", "schedule_policy"]


def schedule_policy(schedule: Sequence[Sequence[float]]) -> Callable[[Any, Any], np.ndarray]:
    """A callable policy that plays ``schedule[t]`` (proportions) at step t (the last one after)."""
    steps = [np.asarray(p, dtype=np.float64) for p in schedule]
    state = {"t": 0}

    def act(obs: Any, info: Any) -> np.ndarray:
        p = steps[min(state["t"], len(steps) - 1)]
        state["t"] += 1
        return p

    return act


def _shared_env_kwargs(env_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``env_kwargs`` with a data set given by name built once (every run reads the same tensors)."""
    from ..datasets import make_dataset

    kwargs = dict(env_kwargs)
    dataset = kwargs.get("dataset", "synthetic")
    if isinstance(dataset, str):
        kwargs["dataset"] = make_dataset(dataset, **dict(kwargs.pop("dataset_kwargs", None) or {}))
        kwargs.pop("dataset_kwargs", None)
    return kwargs


@grad_mode_independent
def play_batch(env_kwargs: Mapping[str, Any], policies: Sequence[Any], seeds: Sequence[int],
               learn: bool | Sequence[bool] = True, sample_order: str | None = None,
               sample_order_kwargs: Mapping[str, Any] | None = None) -> list[Any]:
    """Play one episode per (policy, seed) pair on K environments built from ``env_kwargs``.

    Args:
        env_kwargs: :class:`~mmenv.env.DUSEnv` keyword arguments, the same for every run
            (no ``log_dir``: batched runs do not write TensorBoard logs).
        policies: one per run: a :class:`mmenv.agents.Policy`, a callable
            ``f(obs, info) -> proportions`` or a schedule (a list of proportions per step).
        seeds: one reset seed per run.
        learn: call ``policy.update`` after each step (per run or for all).
        sample_order, sample_order_kwargs: as :func:`mmenv.agents.assembly.make_run_env`.

    Returns one :class:`~mmenv.agents.runner.EpisodeRecord` per run, in order.
    """
    from mmenv.agents.assembly import make_run_env
    from mmenv.agents.runner import EpisodeRecord, as_policy, run_policy

    k_all = len(policies)
    if len(seeds) != k_all:
        raise EngineError(f"got {len(seeds)} seeds for {k_all} policies; pass one seed per run")
    if env_kwargs.get("log_dir") is not None:
        raise EngineError("play_batch does not write TensorBoard logs; drop log_dir (or play the run alone)")
    learns = [bool(learn)] * k_all if isinstance(learn, (bool, np.bool_)) else [bool(x) for x in learn]
    pols = [as_policy(schedule_policy(cast(Sequence[Sequence[float]], p)) if isinstance(p, (list, tuple, np.ndarray))
                     else p) for p in policies]
    kwargs = _shared_env_kwargs(env_kwargs)
    # A learner (or sample order) given as an object is copied: every run trains its own model.
    envs: list[DUSEnv] = [make_run_env({k: (copy.deepcopy(v) if k in ("learner", "sample_order")
                                            and not isinstance(v, str) else v) for k, v in kwargs.items()},
                                       sample_order, dict(sample_order_kwargs or {})) for _ in range(k_all)]
    if engine_support(envs[0]) is not None:  # one at a time, the ordinary path
        return [run_policy(env, pol, seeds=[seed], learn=lrn)[0] for env, pol, seed, lrn in
                zip(envs, pols, seeds, learns)]

    start = time.perf_counter()
    m = len(envs[0].modalities)
    records, obs, infos = [], [], []
    for env, pol, seed in zip(envs, pols, seeds):
        o, info = env.reset(seed=int(seed))
        pol.reset(env)
        obs.append(o)
        infos.append(info)
        records.append(EpisodeRecord(seed=int(seed), test=None, reward_sum=0.0, steps=0, diverged=False,
                                     wall_time_s=0.0, modalities=list(env.modalities),
                                     initial_discrepancy=np.asarray(o).tolist()))
    engine = BatchedRuns(envs)
    engine.load()
    active = list(range(k_all))
    while active:
        plans = {}
        for k in active:
            env = envs[k]
            proportions = np.asarray(pols[k].act(obs[k], infos[k]), dtype=np.float64).reshape(-1)
            if proportions.shape != (m,):
                raise EngineError(f"policy of run {k} returned {proportions.shape[0]} proportions for {m} modalities")
            props, sizes = env.batch_sizes_for(env.proportions_to_action(proportions))
            val_before = env.validation_metrics()["fused"]["accuracy"] if env.needs_validation else None
            plans[k] = (proportions, props, sizes, val_before)
        groups: dict[int, list[int]] = {}
        for k in active:
            groups.setdefault(envs[k].iteration, []).append(k)
        finished = []
        for members in groups.values():
            packed = engine.step(members, [plans[k][2] for k in members])
            for row, k in enumerate(members):
                proportions, props, sizes, val_before = plans[k]
                nxt, reward, term, trunc, info = envs[k].finish_step(packed[row], engine.last_keys, props, sizes,
                                                                    val_before)
                if learns[k]:
                    pols[k].update(obs[k], proportions, reward, nxt, term, trunc, info)
                rec = records[k]
                rec.add_step(reward, info)
                obs[k], infos[k] = nxt, info
                if term or trunc:
                    rec.test = info.get("test")
                    finished.append(k)
        active = [k for k in active if k not in finished]
    wall = (time.perf_counter() - start) / k_all
    for rec in records:
        rec.wall_time_s = wall
    for env in envs:
        env.close()
    return records


def group_key(spec: Any) -> str:
    """What runs of one batch must share: everything of a RunSpec but its seed and policy."""
    return json.dumps({"dataset": spec.dataset, "learner": spec.learner, "env": spec.env,
                       "dataset_kwargs": spec.dataset_kwargs, "learner_kwargs": spec.learner_kwargs,
                       "sample_order": spec.sample_order, "sample_order_kwargs": spec.sample_order_kwargs},
                      sort_keys=True, default=str)


def execute_batch(specs: Sequence[Any], max_batch: int = 256) -> list[dict[str, Any]]:
    """Result dicts of :func:`~mmenv.experiments.grid.execute_run` (``out=None``, no TensorBoard)
    for ``specs``, played in batches of the same configuration; the order of ``specs`` is kept.

    A batch that fails is played again one run at a time, so one bad run fails alone.
    """
    from mmenv.experiments.grid import RunSpec

    specs = [RunSpec(**s) if isinstance(s, dict) else s for s in specs]
    by_key = {}
    for result in iter_batches(specs, max_batch):
        by_key[result["key"]] = result
    return [by_key[s.key] for s in specs]


class BatchedExecutor:
    """An executor for :class:`mmenv.experiments.bench_runner.Runner`: ``executor(specs, out)``
    yields one result dict per spec (:func:`~mmenv.experiments.grid.execute_run`'s layout),
    a batch of the same configuration at a time, in this process."""

    def __init__(self, max_batch: int = 256) -> None:
        self.max_batch = max_batch

    def __call__(self, specs: Sequence[Any], out: Any = None) -> Iterator[dict[str, Any]]:
        return iter_batches(list(specs), self.max_batch)


def iter_batches(specs: Sequence[Any], max_batch: int = 256) -> Iterator[dict[str, Any]]:
    """Yield the result dict of every spec, one batch (same configuration) after another."""
    from mmenv.agents.assembly import build_policy, close_policy, record_fields
    from mmenv.experiments.grid import RunSpec, execute_run, new_result

    specs = [RunSpec(**s) if isinstance(s, dict) else s for s in specs]
    order: dict[str, list[int]] = {}
    for i, spec in enumerate(specs):
        order.setdefault(group_key(spec), []).append(i)
    for members in order.values():
        for lo in range(0, len(members), max_batch):
            chunk = members[lo:lo + max_batch]
            first = specs[chunk[0]]
            start = time.perf_counter()
            try:
                built = [build_policy(specs[i].policy_name, seed=specs[i].seed, policy_kwargs=specs[i].policy_kwargs)
                         for i in chunk]
                env_kwargs = dict(first.env, dataset=first.dataset, learner=first.learner,
                                  dataset_kwargs=first.dataset_kwargs or None,
                                  learner_kwargs=first.learner_kwargs or None)
                records = play_batch(env_kwargs, [p for p, _ in built], [specs[i].seed for i in chunk],
                                     learn=[lrn for _, lrn in built], sample_order=first.sample_order,
                                     sample_order_kwargs=first.sample_order_kwargs)
            except Exception:  # noqa: BLE001 - the ordinary path reports each run's own failure
                for i in chunk:
                    yield execute_run(specs[i], out=None, tensorboard=False)
                continue
            wall = (time.perf_counter() - start) / len(chunk)
            for i, (policy, _), record in zip(chunk, built, records):
                result = new_result(specs[i])
                result.update(record_fields(record), status="diverged" if record.diverged else "ok")
                if record.diverged:
                    result["error"] = "training loss became NaN/inf (episode truncated with info['diverged'])"
                close_policy(policy)
                result["wall_time_s"] = wall
                yield result
