"""Evolution strategies across runs: parameter-space search with paired seeds (``algo="es"``).

Read top to bottom. Across-run REINFORCE explores by sampling every step's proportions; on
a task with five decisions per training run, that noise also moves the very signals a policy
should read (a modality given more by chance rises more), and the proportions' effect on
the final accuracy is a fraction of a point against seed-to-seed differences of several.
Evolution strategies (Salimans et al. 2017, antithetic sampling) explore in *parameter*
space instead: every run is played by a deterministic policy, so a perturbed policy acts
consistently for a whole run.

1. **Policy**: :class:`~mmenv.agents.reinforce.ReinforcePolicy` acting with its Dirichlet
   mean (``deterministic=True``); by default the linear per-modality scorer (``hidden=0``,
   :class:`~mmenv.agents.equivariant.LinearSetScorer`) over the per-modality observation and
   its contrast features (``contrast=True``): ``2 x 2k + g + 1`` weights, so a search in
   parameter space is well posed, and the same agent runs on any number of modalities.
2. **Generation**: one train instance and ``population`` directions ``eps_i ~ N(0, I)``,
   each with its own environment seed; the pair ``theta +- sigma * eps_i`` is played on that
   instance with *that same* seed (common random numbers: the model initialisation and data
   order cancel in the pair's difference, the effect of the policy's difference remains).
   The generation's ``2 x population`` runs share the instance, so with ``batched=True``
   (default) they train together on the batched engine (:func:`mmenv.engine.play_batch`,
   split over ``workers`` processes), one run at a time otherwise; both give the same agent
   to float rounding (tests/test_across_runs.py).
3. **Update**: with ``d_i = R(theta + sigma eps_i) - R(theta - sigma eps_i)`` (the benchmark
   reward's return), the ascent direction is ``g = sum_i (d_i / s) eps_i / population`` with
   ``s`` the generation's standard deviation of ``d`` (so a generation of easy instances does
   not take larger steps), applied by Adam with learning rate ``lr``.
4. **Budget**: ``runs // (2 * population)`` generations; every run's seeds are drawn from
   ``seed`` in advance, so results do not depend on ``workers``.

The returned agent is a REINFORCE policy container (``.pt``, the one saved-agent format)
whose card says ``algo: es``; ``make_policy``, ``mmenv evaluate`` and ``mmenv bench`` play it.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from functools import partial
from typing import Any

import numpy as np
import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from mmenv.cycling import TRAIN_SEED_MIN
from mmenv.errors import InvalidArgumentError
from mmenv.instances import Instance

from .policy import Policy
from .reinforce import ReinforcePolicy
from .rollouts import RolloutWorker, init_worker, worker_play, worker_play_batch
from .saved import TrainedAgent

__all__ = ["train_es", "es_plan"]


def es_plan(num_instances: int, generations: int, population: int, seed: int
            ) -> list[tuple[int, list[int]]]:
    """Per generation: the instance index and, per direction, the environment seed of its pair."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xE5]))
    return [(int(rng.integers(num_instances)), [int(rng.integers(TRAIN_SEED_MIN, 2**31 - 1))
                                                for _ in range(population)]) for _ in range(generations)]


def _play_generation(local: RolloutWorker, pool: ProcessPoolExecutor | None, config: dict[str, Any],
                     weights: list[dict[str, torch.Tensor]], index: int, env_seeds: list[int], batched: bool,
                     workers: int) -> list[dict[str, Any]]:
    """A summary per run (``seed``, ``return``, ``proportions``, ``test_accuracy``), in order."""
    if batched:
        size = -(-len(weights) // max(1, workers if pool is not None else 1))
        chunks = [(weights[i:i + size], env_seeds[i:i + size]) for i in range(0, len(weights), size)]
        if pool is None:
            return [r for w, s in chunks for r in local.play_batch(config, w, index, s)]
        parts = pool.map(worker_play_batch, [config] * len(chunks), [w for w, _ in chunks], [index] * len(chunks),
                         [s for _, s in chunks])
        return [r for part in parts for r in part]
    tasks = [(index, s, 0) for s in env_seeds]
    if pool is None:
        results = [local.play(config, w, t, deterministic=True) for w, t in zip(weights, tasks)]
    else:
        results = list(pool.map(partial(worker_play, config, deterministic=True), weights, tasks))
    keys = ("instance", "seed", "return", "proportions", "test_accuracy")
    return [{k: summary[k] for k in keys} for _, summary in results]


def train_es(instances: list[Instance], *, runs: int, seed: int, reward: str = "val-acc-gain",
             observation: str = "modal", workers: int = 1, log_dir: str | None = None,
             curve_every: int | None = None, curve_fn: Callable[[Policy], float] | None = None,
             backend: str = "process", ray_address: str | None = None, population: int = 8,
             sigma: float = 0.5, lr: float = 0.1, batched: bool = True, **options: Any) -> TrainedAgent:
    """Antithetic ES with paired seeds (module docstring); ``options``: ReinforceConfig fields of the
    policy (``hidden``, ``contrast``, ``init_concentration``, ``policy``)."""
    if backend != "process":
        raise InvalidArgumentError("algo 'es' plays its runs in local processes only; use backend='process'")
    if isinstance(population, bool) or not isinstance(population, int) or population < 2:
        raise InvalidArgumentError(f"population must be an int >= 2 (the spread of a generation's pair differences "
                                   f"scales its step), got {population!r}")
    for name, value in (("sigma", sigma), ("lr", lr)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise InvalidArgumentError(f"{name} must be a finite number > 0, got {value!r}")
    if not isinstance(batched, bool):
        raise InvalidArgumentError(f"batched must be True or False, got {batched!r}")
    generations = runs // (2 * population)
    if generations < 1:
        raise InvalidArgumentError(f"es needs runs >= 2 * population ({2 * population}) for one generation, "
                                   f"got runs={runs}")
    policy = ReinforcePolicy(seed=seed, mode="episodic", log_dir=log_dir, **options)
    local = RolloutWorker(instances, observation, reward, one_thread=False)
    first = local.env(0)
    policy.build(len(first.get_wrapper_attr("modalities")), int(np.prod(first.observation_space.shape or (0,))))
    net, _ = policy._built()
    theta = parameters_to_vector(net.parameters()).detach().clone().double()
    param = torch.nn.Parameter(theta.clone())
    optimizer = torch.optim.Adam([param], lr=lr)
    noise = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, 0xE5, 1]).generate_state(1)[0]))
    plan = es_plan(len(instances), generations, population, seed)
    config = asdict(policy.config)
    history: list[dict] = []
    curve: list[tuple[int, float]] = []
    stack = contextlib.ExitStack()
    stack.callback(policy.close)
    stack.callback(local.close)

    def weights_of(vector: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            vector_to_parameters(vector.float(), net.parameters())
        return {k: v.detach().clone() for k, v in net.state_dict().items()}

    def snapshot() -> Policy:
        weights_of(param.detach())
        return policy.snapshot()

    try:
        pool = None
        if workers > 1:
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver"),
                                       initializer=init_worker, initargs=(instances, observation, reward))
            stack.callback(pool.shutdown)
        if curve_fn is not None and curve_every:
            curve.append((0, float(curve_fn(snapshot()))))
        next_curve = curve_every or 0
        for generation, (index, pair_seeds) in enumerate(plan):
            eps = torch.randn(population, param.numel(), generator=noise, dtype=torch.float64)
            weights = [weights_of(param.detach() + sign * sigma * eps[i]) for i in range(population)
                       for sign in (1.0, -1.0)]
            env_seeds = [s for s in pair_seeds for _ in range(2)]
            results = _play_generation(local, pool, config, weights, index, env_seeds, batched, workers)
            returns = np.array([summary["return"] for summary in results]).reshape(population, 2)
            diff = returns[:, 0] - returns[:, 1]
            scale = float(diff.std())
            if scale > 0:
                step = (torch.as_tensor(diff / scale)[:, None] * eps).sum(0) / population
                optimizer.zero_grad()
                param.grad = -step                       # Adam minimises: ascend the return
                optimizer.step()
            for summary in results:
                history.append({"generation": generation, **summary})
            done = len(history)
            if curve_fn is not None and curve_every and (done >= next_curve or generation == generations - 1):
                curve.append((done, float(curve_fn(snapshot()))))
                next_curve = (done // curve_every + 1) * curve_every
            policy.num_updates += 1
            if log_dir is not None:
                policy._log(es_return=float(returns.mean()), es_pair_diff_std=scale,
                            es_param_norm=float(param.detach().norm()))
        final = snapshot()
    finally:
        stack.close()
    return TrainedAgent(algo="es", policy=final, observation=observation, reward=reward, seed=seed,
                        runs=len(history), curve=curve, history=history)
