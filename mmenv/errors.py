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
"""

from __future__ import annotations

__all__ = ["MMEnvError", "RegistryError", "UnknownNameError", "ArgumentError"]


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
