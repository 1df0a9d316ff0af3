"""Connecting to Ray: a local instance or an existing cluster, shared by every Ray code path.

``mmenv compare --backend ray``, ``mmenv bench --backend ray`` and
``train_across_runs(..., backend="ray")`` all go through :func:`ray_session`:

* ``address`` (or the ``RAY_ADDRESS`` environment variable) joins a running cluster
  (``ray start --head`` on one node, ``ray start --address=HEAD:6379`` on the others);
* without one, a local Ray instance is started for the duration of the block, with
  ``num_cpus`` CPUs (all of this machine's when ``None``) and no dashboard;
* if Ray is already initialised in this process (e.g. by the caller, or a test fixture),
  that instance is used as it is and left running.

Workers run with one torch thread (``OMP_NUM_THREADS=1``): many single-threaded runs beat
one run fighting for threads, and results do not depend on the thread count.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import ClusterError, InvalidArgumentError

__all__ = ["import_ray", "ray_session", "cluster_cpus"]

INSTALL_HINT = "pip install 'mmenv[ray]' (or pip install ray)"


def import_ray() -> Any:
    """Import Ray, or raise :class:`~mmenv.errors.ClusterError` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ClusterError(f"the Ray backend needs Ray: {INSTALL_HINT}; or use the process backend") from exc
    return ray


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[Any]:
    """Yield the ``ray`` module, connected; shut down on exit only what was started here.

    Args:
        address: a cluster's address (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``);
            ``None`` reads ``RAY_ADDRESS`` and, without it, starts a local instance.
        num_cpus: CPUs of a *local* instance (ignored when joining a cluster: the cluster's
            nodes declare their own).
    """
    if num_cpus is not None and (not isinstance(num_cpus, int) or num_cpus < 1):
        raise InvalidArgumentError(f"num_cpus must be a positive int or None, got {num_cpus!r}")
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        address = address or os.environ.get("RAY_ADDRESS") or None
        # Workers started from a source checkout (no install) still import this package.
        root = str(Path(__file__).resolve().parent.parent)
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
        runtime_env = {"env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1",
                                    # plugin modules register names in code: workers import them too
                                    "MMENV_PLUGINS": os.environ.get("MMENV_PLUGINS", "")}}
        # A local instance needs no dashboard; joining a cluster keeps the cluster's settings.
        local: dict[str, Any] = {} if address else {"include_dashboard": False, "num_cpus": num_cpus}
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, runtime_env=runtime_env, **local)
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()


def cluster_cpus(ray: Any) -> int:
    """CPUs the connected cluster declares (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))

