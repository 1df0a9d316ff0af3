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

from .heuristics import DiscrepancyPolicy, DUSHPolicy, FixedRatioPolicy, UniformPolicy
from .policy import CallablePolicy, Policy, PolicyError, normalise_proportions
from .reinforce import ReinforceConfig, ReinforcePolicy
from .runner import EpisodeRecord, as_policy, run_policy
from .schedule import SchedulePolicy, share_vector

__all__ = [
    "Policy", "PolicyError", "CallablePolicy", "normalise_proportions",
    "UniformPolicy", "DUSHPolicy", "FixedRatioPolicy", "DiscrepancyPolicy",
    "ReinforceConfig", "ReinforcePolicy",
    "EpisodeRecord", "run_policy", "as_policy", "SchedulePolicy", "share_vector",
    "POLICIES", "make_policy", "load_policy",
]

POLICIES: dict[str, type] = {
    "uniform": UniformPolicy,
    "dus-h": DUSHPolicy,
    "fixed": FixedRatioPolicy,
    "discrepancy": DiscrepancyPolicy,
    "reinforce": ReinforcePolicy,
    "schedule": SchedulePolicy,
}


def load_policy(path: str | Path, **kwargs) -> Policy:
    """Load a saved agent: a REINFORCE ``.pt`` or an SB3 ``.zip``."""
    path = Path(path)
    if not path.exists():
        raise PolicyError(f"no saved agent at {path}")
    if path.suffix == ".zip":
        from .sb3 import SB3Policy

        return SB3Policy.load(path, **kwargs)
    return ReinforcePolicy.load(path, **kwargs)


def make_policy(name_or_path: str, **kwargs) -> Policy:
    """A policy by registered name (``POLICIES``) or from a saved agent's path.

    ``kwargs`` go to the policy's constructor (e.g. ``make_policy("dus-h", beta=0.4)``,
    ``make_policy("reinforce", seed=0, lr=1e-3)``) or to its ``load``
    (``make_policy("agent.pt", deterministic=True)``).
    """
    key = str(name_or_path)
    if key.lower() in POLICIES:
        return POLICIES[key.lower()](**kwargs)
    if key.endswith((".pt", ".zip")) or Path(key).exists():
        return load_policy(key, **kwargs)
    raise PolicyError(f"unknown policy {name_or_path!r}; valid names: {sorted(POLICIES)} "
                      "or the path of a saved agent (.pt REINFORCE, .zip SB3)")
