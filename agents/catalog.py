"""The policies by name and the saved agents by path: :data:`POLICIES`, :func:`make_policy`.

(Its own module so that :mod:`mmenv.agents.assembly` and the package's ``__init__`` both
import it without importing each other.)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mmenv.registry import Registry

from .heuristics import DiscrepancyPolicy, DUSHPolicy, FixedRatioPolicy, UniformPolicy, ValGainPolicy
from .policy import Policy, PolicyError, UnknownPolicyError
from .reinforce import ReinforcePolicy
from .schedule import SchedulePolicy

__all__ = ["POLICIES", "make_policy", "load_policy", "register_policy", "is_saved_agent"]

POLICIES: Registry = Registry("policy", "mmenv.policies", instance_of=Policy,
                              alternative="or the path of a saved agent: .pt REINFORCE, .zip SB3",
                              unknown_error=UnknownPolicyError)
for _name, _cls in {
    "uniform": UniformPolicy,
    "dus-h": DUSHPolicy,
    "fixed": FixedRatioPolicy,
    "discrepancy": DiscrepancyPolicy,
    "val-gain": ValGainPolicy,
    "reinforce": ReinforcePolicy,
    "schedule": SchedulePolicy,
}.items():
    POLICIES.register(_name, _cls)


def register_policy(name: str, factory: Callable[..., Policy] | str, overwrite: bool = False) -> None:
    """Register a policy class (or factory) under ``name`` (case-insensitive).

    Installed packages can add policies through the entry-point group ``mmenv.policies``.
    """
    POLICIES.register(name, factory, overwrite=overwrite)


def load_policy(path: str | Path, **kwargs) -> Policy:
    """Load a saved agent (a REINFORCE ``.pt`` or an SB3 ``.zip``) with its card (``policy.card``:
    the environment, observation and reward it was trained with; :mod:`mmenv.agents.saved`)."""
    from .saved import load_agent

    path = Path(path)
    if not path.exists():
        raise PolicyError(f"no saved agent at {path}")
    return load_agent(path, **kwargs)


def is_saved_agent(name_or_path: str) -> bool:
    """Whether ``name_or_path`` means a saved agent's file rather than a registered name."""
    key = str(name_or_path)
    return key not in POLICIES and (key.endswith((".pt", ".zip")) or Path(key).exists())


def make_policy(name_or_path: str | Policy, **kwargs) -> Policy:
    """A policy by registered name (``POLICIES``, case-insensitive) or from a saved agent's path.

    ``kwargs`` go to the policy's constructor (e.g. ``make_policy("dus-h", beta=0.4)``,
    ``make_policy("reinforce", seed=0, lr=1e-3)``) or to its ``load``
    (``make_policy("agent.pt", deterministic=True)``). A :class:`Policy` object passes through.
    A saved agent comes with ``policy.card`` (:class:`mmenv.agents.saved.AgentCard`).
    """
    if isinstance(name_or_path, (str, Path)) and is_saved_agent(str(name_or_path)):
        return load_policy(name_or_path, **kwargs)
    return POLICIES.make(name_or_path, **kwargs)
