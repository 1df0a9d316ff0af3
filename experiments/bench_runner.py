"""How the benchmark's runs are executed: one :class:`Runner` in front of a replaceable executor.

Every stage of :mod:`mmenv.experiments.bench_stages` hands its runs to :meth:`Runner.run` as a
list of :class:`~mmenv.experiments.grid.RunSpec` and reads results back with
:meth:`Runner.get`. The runner makes the benchmark resumable (one JSON per run under
``OUT/runs``, written by this process; a finished run on disk is reused) and shows the
stage's progress; the runs themselves go to an :class:`Executor`: any callable
``executor(specs, out) -> iterator of result dicts`` (results in any order, one per spec,
in :func:`~mmenv.experiments.grid.execute_run`'s layout). :class:`BackendExecutor` uses the
backends of ``mmenv compare`` (local processes or Ray tasks) and plays one run per task;
:class:`BatchedExecutor` groups the runs by instance and plays each group K runs at a time
on the batched engine (:mod:`mmenv.engine`), one batch per task, with the same result
dicts (keys, fields, numbers to float rounding), so either executor resumes the other's output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from .backends import PoolStartError
from .bench_progress import stage_bar
from .grid import RunSpec
from .report import FINISHED, load_results, write_result

__all__ = ["Executor", "BackendExecutor", "BatchedExecutor", "make_executor", "EXECUTORS", "Runner",
           "PoolStartError"]

#: The executors a preset (``executor:``) or ``mmenv bench --executor`` can name.
EXECUTORS = ("batched", "single")




class Executor(Protocol):
    """Plays runs: yields one result dict per spec, in any order (see the module docstring)."""

    def __call__(self, specs: Sequence[RunSpec], out: Path) -> Iterator[dict[str, Any]]: ...


class BackendExecutor:
    """Runs through :func:`mmenv.experiments.backends.run_specs` (no per-run TensorBoard logs)."""

    def __init__(self, backend: str = "process", workers: int = 1, ray_address: str | None = None) -> None:
        self.backend, self.workers, self.ray_address = backend, workers, ray_address

    def __call__(self, specs: Sequence[RunSpec], out: Path) -> Iterator[dict[str, Any]]:
        from . import backends

        return backends.run_specs(list(specs), str(out), False, self.backend, self.workers, self.ray_address)


def engine_reason(spec: RunSpec) -> str | None:
    """``None`` when the batched engine trains ``spec``'s configuration and is worth it, else
    why not: :func:`mmenv.engine.engine_support` on the run's environment, and on a CPU no
    convolutional encoder (AV-digits' sequence and image encoders: batched, their runs
    measured 0.5x-0.95x the speed of one at a time, so they are played one run per task).
    An environment that cannot be built is left to the one-run path, which reports it."""
    from mmenv.agents.assembly import make_run_env
    from torch import nn

    from mmenv.engine import engine_support

    try:
        env = make_run_env(dict(spec.env, dataset=spec.dataset, learner=spec.learner,
                                dataset_kwargs=spec.dataset_kwargs or None,
                                learner_kwargs=spec.learner_kwargs or None),
                           spec.sample_order, spec.sample_order_kwargs)
    except Exception as exc:  # noqa: BLE001 - the run itself reports it, one at a time
        return f"the environment cannot be built ({type(exc).__name__}: {exc})"
    try:
        reason = engine_support(env)
        if reason is None and str(getattr(env, "device", "cpu")).startswith("cpu"):
            env.reset(seed=0)                      # builds the model (once per configuration)
            if any(isinstance(m, nn.modules.conv._ConvNd) for m in env.learner.model.modules()):
                reason = ("convolutional encoders on a CPU: the engine's batched convolutions measured slower than "
                          "one run at a time (docs/performance.md, section 6)")
        return reason
    except Exception as exc:  # noqa: BLE001 - the run itself reports it, one at a time
        return f"the environment cannot be reset ({type(exc).__name__}: {exc})"
    finally:
        env.close()


class BatchedExecutor:
    """Plays the runs of one configuration (one instance: data set, learner, their keywords,
    epochs, budget; seeds and policies differ) K at a time on the batched engine.

    Runs are grouped with :func:`mmenv.engine.executor.group_key`; a group is cut into
    batches of at most ``max_batch`` runs, and into smaller ones when there are fewer
    batches than ``workers`` (so every worker has work). Each batch is one task on the
    backend (:func:`mmenv.experiments.backends.run_batches`). A configuration the engine
    cannot train (an imperative plug-in learner, decoded media, batch norm, another
    optimizer: ``support(spec)`` says why) is played one run per task as
    :class:`BackendExecutor` does. ``reasons`` keeps, per group, why it was not batched.

    Args:
        backend, workers, ray_address: as :class:`BackendExecutor`.
        max_batch: the most runs trained together in one task (memory grows with it).
        support: ``spec -> None | reason`` (default :func:`engine_reason`, asked once per group).
    """

    def __init__(self, backend: str = "process", workers: int = 1, ray_address: str | None = None,
                 max_batch: int = 64, support: Callable[[RunSpec], str | None] | None = None) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.backend, self.workers, self.ray_address = backend, workers, ray_address
        self.max_batch = max_batch
        self.support = support or engine_reason
        self.reasons: dict[str, str] = {}
        self._known: dict[str, str | None] = {}

    def batches(self, specs: Sequence[RunSpec]) -> list[tuple[list[RunSpec], bool]]:
        """The tasks for ``specs``: ``(runs, batched)``, every spec in exactly one."""
        from mmenv.engine.executor import group_key

        groups: dict[str, list[RunSpec]] = {}
        for spec in specs:
            groups.setdefault(group_key(spec), []).append(spec)
        batched: list[list[RunSpec]] = []
        single: list[RunSpec] = []
        for key, members in groups.items():
            if key not in self._known:
                self._known[key] = self.support(members[0])
            if self._known[key] is None:
                batched.append(members)
            else:
                self.reasons[key] = str(self._known[key])
                single += members
        n_batched = sum(len(g) for g in batched)
        # at least `workers` tasks when there are enough runs, never over max_batch runs
        size = max(1, min(self.max_batch, math.ceil(n_batched / max(1, self.workers)))) if n_batched else 1
        tasks = [(g[lo:lo + size], True) for g in batched for lo in range(0, len(g), size)]
        tasks.sort(key=lambda t: -len(t[0]))          # longest first: the pool ends together
        return tasks + [([s], False) for s in single]

    def __call__(self, specs: Sequence[RunSpec], out: Path) -> Iterator[dict[str, Any]]:
        from . import backends

        return backends.run_batches(self.batches(specs), self.backend, self.workers, self.ray_address)


def make_executor(name: str, backend: str = "process", workers: int = 1,
                  ray_address: str | None = None) -> Executor:
    """The executor a preset names: ``"batched"`` (:class:`BatchedExecutor`, the default) or
    ``"single"`` (:class:`BackendExecutor`: one run per task, as before the engine)."""
    if name == "batched":
        return BatchedExecutor(backend, workers, ray_address)
    if name == "single":
        return BackendExecutor(backend, workers, ray_address)
    raise ValueError(f"unknown executor {name!r}; valid: {', '.join(EXECUTORS)}")


class Runner:
    """Resumable execution of :class:`RunSpec` lists (module docstring).

    Args:
        out: the benchmark's output folder (results under ``out/runs``).
        executor: where runs are played.
        force: run again what is finished on disk.
        progress: show a progress bar per :meth:`run` call.
    """

    def __init__(self, out: Path, executor: Executor, force: bool = False, progress: bool = True) -> None:
        self.out, self.executor, self.force, self.progress = Path(out), executor, force, progress
        self.runs_dir = self.out / "runs"
        self.results: dict[str, dict[str, Any]] = {}
        self.executed = 0
        self.reused = 0

    def run(self, specs: Iterable[RunSpec], stage: str) -> None:
        """Make sure every spec has a result: reuse finished ones on disk, play the others."""
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
        # every stage shows its bar, runs found finished (here or on disk) counted as done
        with stage_bar(f"bench {stage}", len(unique), "run", self.progress, len(unique) - len(todo)) as bar:
            if not todo:
                return
            broken = 0
            for result in self.executor(todo, self.out):
                write_result(self.runs_dir, result)
                self.results[result["key"]] = result
                self.executed += 1
                broken += "BrokenProcessPool" in str(result.get("error", ""))
                bar.update(1)
        if broken == len(todo):
            raise PoolStartError(
                f"every {stage} run's worker process died at start ({self.runs_dir}: 'BrokenProcessPool'); in a "
                "script, run the benchmark under `if __name__ == \"__main__\":` (worker processes are spawned and "
                "import the script), or use workers: 1")

    def get(self, spec: RunSpec) -> dict[str, Any] | None:
        return self.results.get(spec.key)
