"""How the benchmark's runs are executed: one :class:`Runner` in front of a replaceable executor.

Every stage of :mod:`mmenv.experiments.bench_stages` hands its runs to :meth:`Runner.run` as a
list of :class:`~mmenv.experiments.grid.RunSpec` and reads results back with
:meth:`Runner.get`. The runner makes the benchmark resumable (one JSON per run under
``OUT/runs``, written by this process; a finished run on disk is reused) and shows the
stage's progress; the runs themselves go to an :class:`Executor`: any callable
``executor(specs, out) -> iterator of result dicts`` (results in any order, one per spec,
in :func:`~mmenv.experiments.grid.execute_run`'s layout). :class:`BackendExecutor` uses the
backends of ``mmenv compare`` (local processes or Ray tasks); an executor that trains K
runs of one instance together in the same kernels plugs in here, with no change to the stages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, Sequence

from .backends import PoolStartError
from .bench_progress import stage_bar
from .grid import RunSpec
from .report import FINISHED, load_results, write_result

__all__ = ["Executor", "BackendExecutor", "Runner", "PoolStartError"]




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
