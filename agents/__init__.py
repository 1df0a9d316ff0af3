"""Policies for the DUS environment and the tools to train and run them.

* heuristics: ``"uniform"``, ``"dus-h"``, ``"fixed"`` (MLA-HB), ``"discrepancy"`` (DUS w/o RL);
* ``"reinforce"``: the paper's REINFORCE (online by default: it learns inside the
  training run it controls);
* Stable-Baselines3 presets (:mod:`mmenv.agents.sb3`; one preset table per algorithm,
  :mod:`mmenv.agents.presets`), and saved agents (``.pt`` REINFORCE, ``.zip`` SB3, with the
  agent card of :mod:`mmenv.agents.saved`) loaded back as policies;
* agents trained across runs (:mod:`mmenv.agents.across_runs`), with per-modality
  (permutation-equivariant) networks (:mod:`mmenv.agents.equivariant`);
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

from .assembly import build_policy
from .catalog import POLICIES, is_saved_agent, load_policy, make_policy, register_policy
from .heuristics import DiscrepancyPolicy, DUSHPolicy, FixedRatioPolicy, UniformPolicy, ValGainPolicy
from .policy import CallablePolicy, Policy, PolicyError, UnknownPolicyError, normalise_proportions
from .reinforce import ReinforceConfig, ReinforcePolicy
from .runner import EpisodeRecord, as_policy, run_policy, steps_per_episode
from .saved import AgentCard, read_card, save_agent
from .schedule import SchedulePolicy, share_vector

__all__ = [
    "Policy", "PolicyError", "UnknownPolicyError", "CallablePolicy", "normalise_proportions",
    "UniformPolicy", "DUSHPolicy", "FixedRatioPolicy", "DiscrepancyPolicy", "ValGainPolicy",
    "ReinforceConfig", "ReinforcePolicy",
    "EpisodeRecord", "run_policy", "as_policy", "steps_per_episode", "build_policy", "SchedulePolicy", "share_vector",
    "POLICIES", "make_policy", "load_policy", "register_policy", "is_saved_agent",
    "AgentCard", "read_card", "save_agent",
]
