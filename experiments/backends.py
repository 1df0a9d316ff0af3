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
from pathlib import Path
from typing import Any, Iterator, Sequence

from .grid import RunSpec, execute_run, new_result

__all__ = ["run_serial", "run_processes", "run_ray", "init_worker"]


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


def run_ray(specs: Sequence[RunSpec], out: str, tensorboard: bool, address: str | None = None
            ) -> Iterator[dict[str, Any]]:
    """Run on a Ray cluster, one CPU per run (``backend: ray``; needs ``pip install 'mmenv[ray]'``).

    ``address`` (or ``RAY_ADDRESS``) joins an existing cluster; without one Ray starts a
    local instance. TensorBoard logs are written by the workers under ``out``, so on a
    multi-node cluster ``out`` should be on a shared file system; the result files are
    written by this (driver) process from the returned dicts either way.
    """
    try:
        import ray
    except ImportError as exc:
        raise ValueError("backend 'ray' needs Ray: pip install 'mmenv[ray]' (or use --backend process)") from exc

    root = str(Path(__file__).resolve().parent.parent)
    started_here = not ray.is_initialized()
    if started_here:
        # Workers must import this checkout even when mmenv is not installed.
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        address = address or os.environ.get("RAY_ADDRESS")
        # A local instance needs no dashboard; joining a cluster keeps the cluster's settings.
        local = {} if address else {"include_dashboard": False}
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1",
                                           # plugin modules register names in code: workers import them too
                                           "MMENV_PLUGINS": os.environ.get("MMENV_PLUGINS", "")}}, **local)

    @ray.remote(num_cpus=1)
    def _remote(spec: dict, out_dir: str, tb: bool) -> dict:
        init_worker()
        return execute_run(spec, out_dir, tb)

    try:
        pending = {_remote.remote(asdict(spec), out, tensorboard): spec for spec in specs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                spec = pending.pop(ref)
                try:
                    yield ray.get(ref)
                except Exception as exc:  # a worker died or the task could not run
                    yield _crashed(spec, exc)
    finally:
        if started_here:
            ray.shutdown()


def _crashed(spec: RunSpec, exc: BaseException) -> dict[str, Any]:
    return new_result(spec, error=f"worker crashed: {type(exc).__name__}: {exc}")
