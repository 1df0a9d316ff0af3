"""Where runs execute: in this process, in local worker processes, or on a Ray cluster.

Every backend takes a list of :class:`~mmenv.experiments.grid.RunSpec` and yields result dicts
as runs finish (any order). Workers set torch to one thread: on a small machine N
single-threaded runs beat one run fighting N threads, and results do not depend on
the thread count.
"""

from __future__ import annotations

import ast
import contextlib
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from typing import Any

from mmenv.errors import InvalidArgumentError, MMEnvError

from .grid import RunSpec, execute_run, new_result

__all__ = ["run_serial", "run_processes", "run_ray", "run_specs", "init_worker", "PoolStartError",
           "main_lacks_guard", "leave_if_reimported", "run_batches", "play_specs"]


class PoolStartError(MMEnvError, RuntimeError):
    """Worker processes could not start, so no run of the sweep could: usually a main script that
    starts the sweep without the ``if __name__ == "__main__":`` guard that spawned workers need.

    Raised here when the pool breaks and the main script has no guard (the message names the
    script), and by :class:`mmenv.experiments.bench_runner.Runner` when every run of a stage
    lost its worker."""


def main_lacks_guard() -> str | None:
    """The path of the main script when it has no ``if __name__ == "__main__":`` block, else None.

    Worker processes are started with spawn: each one re-imports the main script, and a
    script that starts a sweep at its top level starts it again in every worker, which
    Python refuses (the pool breaks before any run). None when there is no main script
    (interactive, ``python -c``) or it cannot be read.
    """
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if not path or not str(path).endswith(".py"):
        return None
    try:
        tree = ast.parse(open(path, encoding="utf-8").read())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            names = [n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)]
            consts = [n.value for n in ast.walk(node.test) if isinstance(n, ast.Constant)]
            if "__name__" in names and "__main__" in consts:
                return None
    return str(path)


def leave_if_reimported() -> None:
    """End this process quietly when it is a worker re-importing a main script that has no guard.

    Called where a sweep starts (``run_comparison``, ``run_bench``, the process pool): in a
    worker still importing the main script (multiprocessing's bootstrapping phase) it exits
    with status 1 instead of printing a traceback per worker; the driver then reports the
    missing ``__main__`` guard in one line (:class:`PoolStartError`).
    """
    import multiprocessing as mp

    if getattr(mp.current_process(), "_inheriting", False):
        raise SystemExit(1)


def _guard_error(script: str) -> PoolStartError:
    return PoolStartError(
        f"worker processes could not start: {script} starts the sweep at import time; put that call under "
        "'if __name__ == \"__main__\":' (workers > 1 start fresh processes that re-import the script), "
        "or use workers=1")


#: Seconds between two checks of the parent process by a worker's watchdog.
WATCHDOG_INTERVAL_S = 0.5


def _watch_parent(parent_pid: int, interval: float) -> None:
    """Exit this process as soon as ``parent_pid`` is no longer its parent (it died).

    A sweep killed with SIGKILL runs no cleanup, and a worker blocked in a long run never
    reads the closed pipe; without this its workers kept training (and holding memory)
    for minutes. ``os._exit``: no cleanup of a run whose driver is gone.
    """
    import time

    while True:
        if os.getppid() != parent_pid:
            os._exit(1)
        time.sleep(interval)


def init_worker(parent_pid: int | None = None) -> None:
    """Per-worker setup: one torch thread (intra- and inter-op), and with ``parent_pid`` a
    watchdog thread that ends the worker when that parent process dies (a parent-death
    watchdog: polls ``os.getppid()`` every :data:`WATCHDOG_INTERVAL_S` seconds); Ctrl-C is
    left to the driver.

    A terminal sends Ctrl-C's SIGINT to every process of the foreground group; workers
    ignore it, so the driver alone handles it (it stops the workers and prints one line)
    instead of every worker printing its own traceback.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent_pid is not None:
        import threading

        threading.Thread(target=_watch_parent, args=(parent_pid, WATCHDOG_INTERVAL_S), daemon=True,
                         name="mmenv-parent-watchdog").start()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


def run_serial(specs: Sequence[RunSpec], out: str, tensorboard: bool) -> Iterator[dict[str, Any]]:
    """Run in this process, one after the other (``workers: 1``)."""
    for spec in specs:
        yield execute_run(spec, out, tensorboard)


@contextlib.contextmanager
def _stopped_on_interrupt(pool: Any) -> Iterator[None]:
    """The lifetime of a local worker pool (``run_processes``, ``run_batches``).

    Ctrl-C stops the runs in progress too (their result files are written by this process
    only, so nothing half-written is left; a re-run resumes the grid). An early stop (or
    Ctrl-C) drops the queued runs instead of finishing them.
    """
    interrupted = False
    try:
        yield
    except KeyboardInterrupt:
        interrupted = True
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()
        raise
    finally:
        pool.shutdown(wait=not interrupted, cancel_futures=True)


def run_processes(specs: Sequence[RunSpec], out: str, tensorboard: bool, workers: int
                  ) -> Iterator[dict[str, Any]]:
    """Run on ``workers`` local processes (spawn: no forked torch state, same on every OS)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    leave_if_reimported()
    from concurrent.futures.process import BrokenProcessPool

    ctx = mp.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init_worker,
                               initargs=(os.getpid(),))
    finished = 0
    with _stopped_on_interrupt(pool):
        futures = {pool.submit(execute_run, asdict(spec), out, tensorboard): spec for spec in specs}
        for future in as_completed(futures):
            spec = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # the worker process itself died (e.g. killed for memory)
                script = main_lacks_guard() if isinstance(exc, BrokenProcessPool) and not finished else None
                if script is not None:
                    raise _guard_error(script) from None
                result = _crashed(spec, exc)
            finished += 1
            yield result


def run_ray(specs: Sequence[RunSpec], out: str, tensorboard: bool, address: str | None = None,
            num_cpus: int | None = None) -> Iterator[dict[str, Any]]:
    """Run on a Ray cluster, one CPU per run, as Ray tasks (``backend: ray``; needs Ray).

    ``address`` (or ``RAY_ADDRESS``) joins an existing cluster; without one a local instance
    with ``num_cpus`` CPUs is started for the duration of the grid (:func:`mmenv.cluster.ray_session`;
    an instance already initialised in this process is used as it is). TensorBoard logs are
    written by the workers under ``out``, so on a multi-node cluster ``out`` should be on a
    shared file system; the result files are written by this (driver) process from the
    returned dicts either way, which is what makes a Ray grid resumable like a local one.
    """
    from mmenv.cluster import ray_session

    with ray_session(address, num_cpus) as ray:

        @ray.remote(num_cpus=1)
        def _remote(spec: dict, out_dir: str, tb: bool) -> dict:
            init_worker()
            return execute_run(spec, out_dir, tb)

        pending = {_remote.remote(asdict(spec), out, tensorboard): spec for spec in specs}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    spec = pending.pop(ref)
                    try:
                        yield ray.get(ref)
                    except Exception as exc:  # a worker died or the task could not run
                        yield _crashed(spec, exc)
        finally:
            # On Ctrl-C (or an early stop) drop the queued runs, as the process pool does;
            # a resume picks them up.
            for ref in pending:
                ray.cancel(ref)


def run_specs(specs: Sequence[RunSpec], out: str, tensorboard: bool, backend: str = "process", workers: int = 1,
              ray_address: str | None = None) -> Iterator[dict[str, Any]]:
    """Run ``specs`` on ``backend`` and yield their results as they finish.

    ``backend="process"``: ``workers`` local processes (this process when ``workers`` is 1
    or there is one run). ``backend="ray"``: Ray tasks on the cluster at ``ray_address``
    (or ``RAY_ADDRESS``), or on a local Ray instance with ``workers`` CPUs.
    """
    if backend == "ray":
        return run_ray(specs, out, tensorboard, address=ray_address, num_cpus=workers)
    if backend != "process":
        raise InvalidArgumentError(f"unknown backend {backend!r}; valid: 'process', 'ray'")
    if workers > 1 and len(specs) > 1:
        return run_processes(specs, out, tensorboard, min(workers, len(specs)))
    return run_serial(specs, out, tensorboard)


# ---------------------------------------------------------------------- batches of runs
def play_specs(specs: Sequence[dict[str, Any]], batched: bool = True) -> list[dict[str, Any]]:
    """One task of :func:`run_batches`: the result dicts of ``specs`` (``RunSpec`` fields as dicts).

    ``batched``: K runs of one configuration trained together
    (:func:`mmenv.engine.execute_batch`, which falls back to one run at a time where the
    engine cannot train the configuration); else one after the other (:func:`execute_run`).
    No TensorBoard logs either way.
    """
    if batched:
        from mmenv.engine import execute_batch

        return execute_batch([RunSpec(**s) for s in specs])
    return [execute_run(s, None, False) for s in specs]


def run_batches(batches: Sequence[tuple[Sequence[RunSpec], bool]], backend: str = "process", workers: int = 1,
                ray_address: str | None = None) -> Iterator[dict[str, Any]]:
    """Play each batch ``(specs, batched)`` as one task (:func:`play_specs`) and yield every
    run's result as its batch finishes (batches in any order).

    ``backend="process"``: ``workers`` local processes (this process with one worker or one
    batch); ``backend="ray"``: one Ray task per batch (one CPU each). A batch whose worker
    dies yields a ``failed`` result per run, as :func:`run_processes` does per run.
    """
    payloads = [([asdict(s) for s in specs], bool(batched)) for specs, batched in batches]
    if backend == "ray":
        yield from _batches_ray(batches, payloads, ray_address, workers)
        return
    if backend != "process":
        raise ValueError(f"unknown backend {backend!r}; valid: 'process', 'ray'")
    if workers <= 1 or len(batches) <= 1:
        for dicts, batched in payloads:
            yield from play_specs(dicts, batched)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    leave_if_reimported()
    pool = ProcessPoolExecutor(max_workers=min(workers, len(batches)), mp_context=mp.get_context("spawn"),
                               initializer=init_worker, initargs=(os.getpid(),))
    finished = 0
    with _stopped_on_interrupt(pool):
        futures = {pool.submit(play_specs, dicts, batched): i for i, (dicts, batched) in enumerate(payloads)}
        for future in as_completed(futures):
            specs = batches[futures[future]][0]
            try:
                results = future.result()
            except Exception as exc:  # the worker process itself died (e.g. killed for memory)
                script = main_lacks_guard() if isinstance(exc, BrokenProcessPool) and not finished else None
                if script is not None:
                    raise _guard_error(script) from None
                results = [_crashed(s, exc) for s in specs]
            finished += 1
            yield from results


def _batches_ray(batches: Sequence[tuple[Sequence[RunSpec], bool]], payloads: list[tuple[list[dict], bool]],
                 address: str | None, num_cpus: int | None) -> Iterator[dict[str, Any]]:
    """:func:`run_batches` on Ray: one task per batch (see :func:`run_ray` for the session)."""
    from mmenv.cluster import ray_session

    with ray_session(address, num_cpus) as ray:

        @ray.remote(num_cpus=1)
        def _remote(dicts: list[dict], batched: bool) -> list[dict]:
            init_worker()
            return play_specs(dicts, batched)

        pending = {_remote.remote(dicts, batched): i for i, (dicts, batched) in enumerate(payloads)}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    specs = batches[pending.pop(ref)][0]
                    try:
                        results = ray.get(ref)
                    except Exception as exc:  # a worker died or the task could not run
                        results = [_crashed(s, exc) for s in specs]
                    yield from results
        finally:
            for ref in pending:
                ray.cancel(ref)


def _crashed(spec: RunSpec, exc: BaseException) -> dict[str, Any]:
    return new_result(spec, error=f"worker crashed: {type(exc).__name__}: {exc}")
