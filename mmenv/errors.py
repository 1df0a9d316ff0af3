"""The package's error classes share one base, :class:`MMEnvError`.

Every error mmenv raises on purpose (a bad name, a bad keyword, a malformed data set or
config, an action it cannot apply, a file it refuses to load) derives from
:class:`MMEnvError`, so a caller can catch the package's own errors in one clause and
still let genuine bugs through::

    try:
        env = DUSEnv(learner="mla", learner_kwargs={"lrr": 0.1})
    except mmenv.MMEnvError as exc:
        print(f"error: {exc}")          # one line; ``mmenv`` on the command line does the same

Most of them also derive from ``ValueError`` (and the unknown-keyword error from
``TypeError``), the built-in class the same mistake raised before they existed, so
``except ValueError`` in existing code keeps working.

This module lists every error class of the package (a test keeps the list complete): the
general ones are defined here; those that belong to one part of the package are defined
next to it and re-exported here on first use (:data:`DEFINED_IN`), so that importing this
module imports nothing else::

    MMEnvError
    ├── RegistryError (ValueError)
    │   └── UnknownNameError (KeyError)
    │       └── UnknownPolicyError (also PolicyError)        mmenv.agents.policy
    ├── ArgumentError (TypeError)                              unknown / missing keyword
    ├── InvalidArgumentError (ValueError, TypeError)           wrong type or range
    ├── LockError (RuntimeError), WriteError (OSError)         output folders and files
    ├── EnvStateError (RuntimeError)                           used out of order
    ├── ClusterError (ValueError)                              Ray is not installed
    ├── ModelError (ValueError)                                an encoder got input it cannot take
    ├── SampleOrderError (RuntimeError)                        a sample order gave the sampler nothing
    ├── DatasetError (ValueError)                              mmenv.datasets.base
    ├── LearnerError (ValueError)                              a learner cannot run so configured
    ├── RewardError (ValueError)                               mmenv.rewards
    ├── ActionError (ValueError)                               mmenv.sampling.allocation
    ├── CheckpointError (ValueError)                           mmenv.checkpoint
    │   ├── UnsafeCheckpointError, DataMismatchError
    ├── VectorEnvError (ValueError)                            mmenv.vector_env
    ├── PolicyError (ValueError)                               mmenv.agents.policy
    ├── ConfigError (ValueError)                               mmenv.experiments.config
    ├── InstanceSetError (ValueError)                          mmenv.experiments.instances
    ├── BenchConfigError (ValueError)                          mmenv.experiments.bench_config
    ├── SeedOverlapError (ValueError)                          mmenv.experiments.oracle
    ├── SearchError (ValueError)                               mmenv.experiments.oracle
    ├── TuningError (ValueError)                               mmenv.experiments.tuning
    ├── InstanceError (ValueError)                             mmenv.instances
    ├── PoolStartError (RuntimeError)                          mmenv.experiments.bench_runner
    ├── BenchRunError, BenchAgentError (RuntimeError)          mmenv.experiments.bench_stages
    ├── BenchAgentSpecError (ValueError)                       mmenv.experiments.bench_agents_cli
    ├── LeaderboardError (ValueError)                          mmenv.experiments.leaderboard
    └── EngineError (ValueError)                               mmenv.engine.batched
"""

from __future__ import annotations

import importlib
from typing import Any

#: Error classes defined next to the code that raises them: name -> module.
DEFINED_IN: dict[str, str] = {
    "DatasetError": "mmenv.datasets.base",
    "RewardError": "mmenv.rewards",
    "ActionError": "mmenv.sampling.allocation",
    "CheckpointError": "mmenv.checkpoint",
    "UnsafeCheckpointError": "mmenv.checkpoint",
    "DataMismatchError": "mmenv.checkpoint",
    "VectorEnvError": "mmenv.vector_env",
    "PolicyError": "mmenv.agents.policy",
    "UnknownPolicyError": "mmenv.agents.policy",
    "ConfigError": "mmenv.experiments.config",
    "InstanceSetError": "mmenv.experiments.instances",
    "BenchConfigError": "mmenv.experiments.bench_config",
    "SeedOverlapError": "mmenv.experiments.oracle",
    "SearchError": "mmenv.experiments.oracle",
    "TuningError": "mmenv.experiments.tuning",
    "InstanceError": "mmenv.instances",
    "PoolStartError": "mmenv.experiments.bench_runner",
    "BenchRunError": "mmenv.experiments.bench_stages",
    "BenchAgentError": "mmenv.experiments.bench_stages",
    "BenchAgentSpecError": "mmenv.experiments.bench_agents_cli",
    "LeaderboardError": "mmenv.experiments.leaderboard",
    "EngineError": "mmenv.engine.batched",
}

__all__ = ["MMEnvError", "RegistryError", "UnknownNameError", "ArgumentError", "InvalidArgumentError", "LockError",
           "WriteError", "EnvStateError", "ClusterError", "ModelError", "SampleOrderError", "LearnerError", *DEFINED_IN]


def __getattr__(name: str) -> Any:
    """The error classes of :data:`DEFINED_IN`, imported from their module on first use."""
    if name in DEFINED_IN:
        return getattr(importlib.import_module(DEFINED_IN[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")  # the module protocol's own error


class MMEnvError(Exception):
    """Base of every error the package raises on purpose (not for genuine bugs)."""


class RegistryError(MMEnvError, ValueError):
    """A registry was used wrongly: a name registered twice, a broken entry point, ..."""


class UnknownNameError(RegistryError, KeyError):
    """No data set / learner / reward / ... is registered under the name asked for."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class ArgumentError(MMEnvError, TypeError):
    """A keyword argument the factory of a registered name does not take, or a required one missing."""


class InvalidArgumentError(MMEnvError, ValueError, TypeError):
    """An argument has the wrong type or lies outside its range (``epochs=-1``, ``lr='fast'``).

    Both a ``ValueError`` and a ``TypeError``: the checks it replaces raised one or the
    other, and code catching either keeps working. The message names the argument, what
    it got and what it takes.
    """


class LockError(MMEnvError, RuntimeError):
    """Another live process holds the lock on an output folder (``mmenv compare --out``)."""


class WriteError(MMEnvError, OSError):
    """A file could not be written (disk full, read-only folder, ...); the message names the path.

    Also an ``OSError``, which is what the failed write raised before.
    """


class EnvStateError(MMEnvError, RuntimeError):
    """An environment was used out of order: ``step()`` before ``reset()`` or after the episode ended."""


class ClusterError(MMEnvError, ValueError):
    """A Ray backend cannot run: Ray is not installed."""


class ModelError(MMEnvError, ValueError):
    """An encoder got input of a shape it does not take, or was built with impossible sizes."""


class SampleOrderError(MMEnvError, RuntimeError):
    """A sample order gave the sampler nothing to draw from (e.g. an empty pass over the data)."""


class LearnerError(MMEnvError, ValueError):
    """A learner cannot run in the requested configuration (also :mod:`mmenv.learners`'s)."""
