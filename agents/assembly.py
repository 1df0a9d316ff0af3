"""Run assembly shared by ``mmenv train``, ``mmenv evaluate`` and ``mmenv compare``.

One place decides, for every entry point of the package:

* :func:`build_policy`: which policy object a name or saved agent's path means and
  **whether it learns during the run**. Online REINFORCE (the paper's DUS, Algorithm 1)
  learns inside the training run it controls and is seeded by the run seed unless a
  ``seed`` is given; heuristics and saved SB3 agents only act; a saved REINFORCE agent
  keeps its own mode. A REINFORCE policy that does not learn (``frozen``, or a saved
  episodic one) acts deterministically (its mean proportions).
* :func:`make_run_env`: the environment of one run (the grid's ``<sample_order>+<policy>``
  entries set its sample order).
* :func:`record_fields`: the fields of an :class:`~mmenv.agents.runner.EpisodeRecord`
  that a run's result (``mmenv compare``'s result file) stores.
* :func:`~mmenv.agents.runner.steps_per_episode`: environment steps in one episode.
* :func:`run_resumable`: REINFORCE's episodes one by one with an atomic checkpoint after
  each, so ``mmenv train --resume`` continues an interrupted run to the same result.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .catalog import POLICIES, is_saved_agent, make_policy
from .policy import Policy
from .reinforce import ReinforcePolicy
from .runner import EpisodeRecord, run_policy, steps_per_episode

__all__ = ["build_policy", "make_run_env", "record_fields", "run_resumable", "steps_per_episode",
           "RECORD_FIELDS"]

#: what a run's result stores of its episode record (empty values before the run finished)
RECORD_FIELDS: dict[str, Any] = {
    "test": None, "reward_sum": None, "steps": 0, "modalities": [], "batch_sizes": [], "discrepancy": [],
    "proportions": [], "initial_discrepancy": [], "rewards": [],
}


def build_policy(name_or_path: str, seed: int | None = None, policy_kwargs: dict[str, Any] | None = None,
                 frozen: bool = False) -> tuple[Policy, bool]:
    """The policy ``name_or_path`` means and whether it learns during the run.

    Args:
        name_or_path: a registered policy name (``mmenv.agents.POLICIES``) or a saved agent.
        seed: the run seed; REINFORCE built by name is seeded with it unless
            ``policy_kwargs`` has a ``seed`` (the agent's own RNG follows the run seed).
        policy_kwargs: keyword arguments for the policy (or its ``load``).
        frozen: REINFORCE does not learn (no updates, deterministic actions).
    """
    kwargs = dict(policy_kwargs or {})
    by_name = not is_saved_agent(name_or_path)
    if by_name and seed is not None and POLICIES.get_factory(name_or_path) is ReinforcePolicy:
        kwargs.setdefault("seed", seed)
    policy = make_policy(name_or_path, **kwargs)
    learn = isinstance(policy, ReinforcePolicy) and policy.mode == "online" and not frozen
    if isinstance(policy, ReinforcePolicy):
        policy.deterministic = policy.deterministic or not learn
    return policy, learn


def make_run_env(env_kwargs: dict[str, Any], sample_order: str | None = None,
                 sample_order_kwargs: dict[str, Any] | None = None, policy: Policy | None = None):
    """A :class:`mmenv.DUSEnv` from keyword arguments; ``sample_order`` (when given) wins over theirs.

    ``policy``: a saved agent trained on the benchmark environment (its
    :class:`~mmenv.agents.saved.AgentCard` says ``mmenv/DUSBench-v0``) gets that environment,
    with the observation and reward it was trained with (:func:`mmenv.agents.saved.card_env`).
    """
    from .saved import card_env

    kwargs = dict(env_kwargs)
    if sample_order is not None:
        kwargs["sample_order"] = sample_order
        if sample_order_kwargs:
            kwargs["sample_order_kwargs"] = dict(sample_order_kwargs)
    if policy is not None and policy.card is not None:
        return card_env(policy.card, kwargs)
    from mmenv import DUSEnv

    return DUSEnv(**kwargs)


def record_fields(record: EpisodeRecord) -> dict[str, Any]:
    """The :data:`RECORD_FIELDS` of ``record`` (what a run's result keeps of its episode)."""
    data = record.to_dict()
    return {k: data[k] for k in RECORD_FIELDS}


def close_policy(policy: Any) -> None:
    """Close what the policy holds open (REINFORCE's TensorBoard writer); others have nothing."""
    close = getattr(policy, "close", None)
    if callable(close):
        close()


def run_resumable(env, policy, seeds: Sequence[int], ckpt: str | Path, fingerprint: dict[str, Any],
                  resume: bool = False, progress: bool = False) -> list[EpisodeRecord]:
    """Run the (learning) REINFORCE episodes one by one, checkpointing the agent after each.

    The checkpoint holds ``fingerprint`` (the configuration that must match to resume; its
    ``data`` entry, the data's contents fingerprint, is refused with a
    :class:`~mmenv.checkpoint.DataMismatchError` naming the data set's files),
    the finished episodes' records and the agent's whole state (network, optimizer,
    baselines, sampling generator). Each episode resets the environment with its own
    seed, so an episode cut short by a kill is simply run again from its start with the
    agent as it was before it: the resumed run equals an uninterrupted one. The
    checkpoint also holds where the environment's TensorBoard log stood; the environment
    and the agent continue their logs from the checkpoint, purging what the interrupted
    episode had written (``purge_step``), so no step appears twice. A run that does not
    resume purges from step 0: the logs of an earlier run into the same folder are replaced.
    """
    from mmenv.checkpoint import atomic_save, check_resume_fingerprint, load

    from .safe_load import agent_file_errors

    ckpt = Path(ckpt)
    base = getattr(env, "unwrapped", env)
    fingerprint = json.loads(json.dumps(fingerprint, default=str))
    records: list[EpisodeRecord] = []
    tb_state: dict[str, Any] | None = None
    if resume and ckpt.exists():
        state = load(ckpt)
        with agent_file_errors(ckpt, "training checkpoint"):   # a damaged file: one CheckpointError
            check_resume_fingerprint(state.get("fingerprint"), fingerprint, ckpt, getattr(base, "dataset", None))
            records = [EpisodeRecord(**r) for r in json.loads(state["records"])]
            policy.load_state_dict(state["policy"])
            tb_state = json.loads(state["tensorboard"]) if "tensorboard" in state else None
        print(f"resuming after episode {len(records)} of {len(seeds)} from {ckpt}")
    if hasattr(base, "resume_tensorboard"):
        base.resume_tensorboard(tb_state)
    if hasattr(policy, "resume_logging"):
        policy.resume_logging()
    for seed in list(seeds)[len(records):]:
        records += run_policy(env, policy, episodes=1, seeds=[seed], progress=progress, learn=True)
        payload = {"fingerprint": fingerprint, "records": json.dumps([r.to_dict() for r in records]),
                   "policy": policy.state_dict()}
        if hasattr(base, "tensorboard_state"):
            payload["tensorboard"] = json.dumps(base.tensorboard_state())
        atomic_save(payload, ckpt)
    return records
