"""Where runs execute: in this process, in local worker processes, or on a Ray cluster.

Every backend takes a list of :class:`~mmenv.experiments.grid.RunSpec` and yields result dicts
as runs finish (any order). Workers set torch to one thread: on a small machine N
single-threaded runs beat one run fighting N threads, and results do not depend on
the thread count.
"""

from __future__ import annotations

import os
import signal
from dataclasses import asdict
from typing import Any, Iterator, Sequence

from .grid import RunSpec, execute_run, new_result
from mmenv.errors import InvalidArgumentError

__all__ = ["run_serial", "run_processes", "run_ray", "run_specs", "init_worker"]


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


def run_processes(specs: Sequence[RunSpec], out: str, tensorboard: bool, workers: int
                  ) -> Iterator[dict[str, Any]]:
    """Run on ``workers`` local processes (spawn: no forked torch state, same on every OS)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init_worker,
                               initargs=(os.getpid(),))
    interrupted = False
    try:
        futures = {pool.submit(execute_run, asdict(spec), out, tensorboard): spec for spec in specs}
        for future in as_completed(futures):
            spec = futures[future]
            try:
                yield future.result()
            except Exception as exc:  # the worker process itself died (e.g. killed for memory)
                yield _crashed(spec, exc)
    except KeyboardInterrupt:
        # Ctrl-C: stop the runs in progress too (their result files are written by this
        # process only, so nothing half-written is left); a re-run resumes the grid.
        interrupted = True
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()
        raise
    finally:
        # An early stop (or Ctrl-C) drops the queued runs instead of finishing the grid.
        pool.shutdown(wait=not interrupted, cancel_futures=True)


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


def _crashed(spec: RunSpec, exc: BaseException) -> dict[str, Any]:
    return new_result(spec, error=f"worker crashed: {type(exc).__name__}: {exc}")
