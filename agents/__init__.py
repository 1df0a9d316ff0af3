"""Policies for the DUS environment and the tools to train and run them.

* heuristics: ``"uniform"``, ``"dus-h"``, ``"fixed"`` (MLA-HB), ``"discrepancy"`` (DUS w/o RL);
* ``"reinforce"``: the paper's REINFORCE (online by default: it learns inside the
  training run it controls);
* Stable-Baselines3 presets (:mod:`mmenv.agents.sb3`), and saved agents (``.pt`` REINFORCE,
  ``.zip`` SB3) loaded back as policies;
* ``"schedule"``: open-loop constant shares and few-phase schedules (:mod:`mmenv.agents.schedule`);
* :func:`run_policy` plays policies and records episodes.

Example::

    from mmenv import DUSEnv
    from mmenv.agents import make_policy, run_policy

    env = DUSEnv(epochs=3, batch_budget=16)
    for name in ["uniform", "dus-h", "reinforce"]:
        rec = run_policy(env, make_policy(name, **({"seed": 0} if name == "reinforce" else {})), seeds=[0])[0]
        print(name, rec.test["fused"]["accuracy"])
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from mmenv.registry import Registry

from .assembly import build_policy
from .heuristics import DiscrepancyPolicy, DUSHPolicy, FixedRatioPolicy, UniformPolicy
from .policy import CallablePolicy, Policy, PolicyError, UnknownPolicyError, normalise_proportions
from .reinforce import ReinforceConfig, ReinforcePolicy
from .runner import EpisodeRecord, as_policy, run_policy, steps_per_episode
from .schedule import SchedulePolicy, share_vector

__all__ = [
    "Policy", "PolicyError", "UnknownPolicyError", "CallablePolicy", "normalise_proportions",
    "UniformPolicy", "DUSHPolicy", "FixedRatioPolicy", "DiscrepancyPolicy",
    "ReinforceConfig", "ReinforcePolicy",
    "EpisodeRecord", "run_policy", "as_policy", "steps_per_episode", "build_policy", "SchedulePolicy", "share_vector",
    "POLICIES", "make_policy", "load_policy", "register_policy", "is_saved_agent",
]

POLICIES: Registry = Registry("policy", "mmenv.policies", instance_of=Policy,
                              alternative="or the path of a saved agent: .pt REINFORCE, .zip SB3",
                              unknown_error=UnknownPolicyError)
for _name, _cls in {
    "uniform": UniformPolicy,
    "dus-h": DUSHPolicy,
    "fixed": FixedRatioPolicy,
    "discrepancy": DiscrepancyPolicy,
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
    """Load a saved agent: a REINFORCE ``.pt`` or an SB3 ``.zip``."""
    path = Path(path)
    if not path.exists():
        raise PolicyError(f"no saved agent at {path}")
    if path.suffix == ".zip":
        from .sb3 import SB3Policy

        return SB3Policy.load(path, **kwargs)
    return ReinforcePolicy.load(path, **kwargs)


def is_saved_agent(name_or_path: str) -> bool:
    """Whether ``name_or_path`` means a saved agent's file rather than a registered name."""
    key = str(name_or_path)
    return key not in POLICIES and (key.endswith((".pt", ".zip")) or Path(key).exists())


def make_policy(name_or_path: str | Policy, **kwargs) -> Policy:
    """A policy by registered name (``POLICIES``, case-insensitive) or from a saved agent's path.

    ``kwargs`` go to the policy's constructor (e.g. ``make_policy("dus-h", beta=0.4)``,
    ``make_policy("reinforce", seed=0, lr=1e-3)``) or to its ``load``
    (``make_policy("agent.pt", deterministic=True)``). A :class:`Policy` object passes through.
    """
    if isinstance(name_or_path, (str, Path)) and is_saved_agent(str(name_or_path)):
        return load_policy(name_or_path, **kwargs)
    return POLICIES.make(name_or_path, **kwargs)

