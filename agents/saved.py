"""The one saved-agent format: the policy's weights plus an *agent card*.

A saved agent is read by :func:`mmenv.agents.make_policy`, ``mmenv evaluate --policy``,
``mmenv bench`` and :meth:`TrainedAgent.load`, and each of them needs to know more than
the weights: which environment the agent was trained in (``mmenv/DUS-v0`` or the
benchmark's ``mmenv/DUSBench-v0``), with which observation (``"paper"``, ``"extended"``,
``"modal"``) and reward, how its actions map to proportions, which network it uses, and,
for an agent trained across runs, its training record. That is the :class:`AgentCard`.

Where the card lives (the weights stay in each algorithm's own container):

* REINFORCE ``.pt`` (:func:`mmenv.checkpoint.atomic_save`, read with the safe loader):
  the key ``"agent"`` next to the policy's payload.
* SB3 / sb3-contrib ``.zip``: the entry ``mmenv.json`` (:data:`mmenv.agents.sb3.METADATA_ENTRY`),
  key ``"agent"``; SB3's own loader ignores the entry.

**The documented minimum.** A file without a card still loads, and its card is inferred:
a zip from plain ``model.save`` (e.g. PPO trained on the instance-cycling environment with
plain SB3 code) or a ``.pt`` from :meth:`ReinforcePolicy.save`. m is the action length (SB3)
or the saved ``num_modalities`` (REINFORCE); the observation mode is the one whose length
matches for that m (:func:`mmenv.observations.infer_observation`: m -> ``"paper"``, 4m + 1
-> ``"extended"``, 10m + 1 -> ``"modal"``; ``"paper"`` is read as ``mmenv/DUS-v0``, the
others as ``mmenv/DUSBench-v0``); an SB3 agent with a ``Box(-1, 1)`` action is read as
acting in the softmax space (the default of both registered ids); the reward is ``None``
(not recorded). Files written by older versions (``"across_runs"`` / ``mmenv_across_runs.json``)
are read as cards too.

Example::

    from mmenv.agents import make_policy
    from mmenv.agents.saved import read_card, save_agent

    save_agent(model, "ppo.zip", observation="modal", reward="val-acc-gain")  # any SB3 model or Policy
    card = read_card("ppo.zip")           # AgentCard(algo='ppo', env_id='mmenv/DUSBench-v0', ...)
    policy = make_policy("ppo.zip")       # policy.card is the same card
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .policy import Policy, PolicyError
from .safe_load import agent_load_errors

__all__ = ["AgentCard", "TrainedAgent", "read_card", "save_agent", "load_agent", "card_env", "CARD_FORMAT",
           "PAPER_ENV_ID", "BENCH_ENV_ID"]

CARD_FORMAT = "mmenv-agent-v1"
PAPER_ENV_ID = "mmenv/DUS-v0"
BENCH_ENV_ID = "mmenv/DUSBench-v0"
_LEGACY_ZIP_ENTRY = "mmenv_across_runs.json"  # written by earlier versions of TrainedAgent.save


@dataclass(frozen=True)
class AgentCard:
    """What an agent needs to act as it was trained (saved with its weights; module docstring).

    ``training`` holds the record of an agent trained across runs (``seed``, ``runs``,
    ``curve``, ``history``, ``preset``, ``wall_time_s``, ``train_instances``); empty otherwise.
    ``source`` says whether the card was ``"saved"`` or ``"inferred"`` (not saved).
    """

    algo: str
    env_id: str = PAPER_ENV_ID
    observation: str = "paper"
    reward: str | None = None
    action_space: str | None = None
    softmax_scale: float | None = None
    network: str = "mlp"
    num_modalities: int | None = None
    training: dict[str, Any] = field(default_factory=dict)
    source: str = "saved"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("source")
        return {"format": CARD_FORMAT, **out}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "saved") -> AgentCard:
        known = set(cls.__dataclass_fields__) - {"source"}
        return cls(**{k: v for k, v in data.items() if k in known}, source=source)


def card_env(card: AgentCard, env_kwargs: Mapping[str, Any], seed: int | None = None) -> Any:
    """The environment ``card``'s agent acts in, for the task ``env_kwargs`` (DUSEnv arguments).

    ``mmenv/DUS-v0`` agents get a :class:`mmenv.DUSEnv`; benchmark agents a
    :class:`mmenv.wrappers.DUSBench` with the card's observation and reward (a ``reward`` in
    ``env_kwargs`` is replaced by the card's: it is what the agent was trained on; a card
    without one, inferred from a plain file, gets the benchmark's default ``"val-acc-gain"``).
    """
    kwargs = dict(env_kwargs)
    if card.env_id == BENCH_ENV_ID:
        from mmenv.wrappers import BENCH_REWARDS, make_bench_env

        kwargs.pop("reward", None)
        reward = card.reward if card.reward in BENCH_REWARDS else "val-acc-gain"
        return make_bench_env(observation=card.observation, reward=reward, seed=seed, **kwargs)
    from mmenv import DUSEnv

    return DUSEnv(**kwargs)


# ---------------------------------------------------------------------- reading
def _legacy_card(meta: Mapping[str, Any], network: str = "mlp", **extra: Any) -> AgentCard:
    """A card from the ``across_runs`` metadata earlier versions saved."""
    training = {k: meta[k] for k in ("seed", "runs", "curve", "history", "preset", "wall_time_s") if k in meta}
    return AgentCard(algo=str(meta["algo"]), env_id=BENCH_ENV_ID, observation=str(meta.get("observation", "paper")),
                     reward=meta.get("reward"), network=network, training=training, **extra)


def _infer(algo: str, obs_len: int, m: int, **extra: Any) -> AgentCard:
    from mmenv.observations import infer_observation

    mode = infer_observation(obs_len, m)
    if mode is None:
        raise PolicyError(f"cannot tell which observation an agent with {obs_len} inputs and {m} actions reads "
                          "(none of paper m, extended 4m + 1, modal 10m + 1); save it with "
                          "mmenv.agents.saved.save_agent(..., observation=...) to record it")
    env_id = PAPER_ENV_ID if mode == "paper" else BENCH_ENV_ID
    return AgentCard(algo=algo, env_id=env_id, observation=mode, num_modalities=m, source="inferred", **extra)


def _read_pt(path: Path) -> AgentCard:
    from mmenv.checkpoint import load as safe_load

    state = safe_load(path)  # never unpickles code: the allow-listed safe loader
    if not isinstance(state, dict) or "config" not in state:
        raise PolicyError(f"{path} is not a saved REINFORCE agent")
    config = state["config"]
    network = str(config.get("policy", "mlp"))
    m = config.get("num_modalities")
    if isinstance(state.get("agent"), Mapping):
        return AgentCard.from_dict(state["agent"])
    if isinstance(state.get("across_runs"), Mapping):
        return _legacy_card(state["across_runs"], network=network, num_modalities=m)
    if network == "equivariant":  # the net runs on any m; its card records the observation
        return AgentCard(algo="reinforce", network=network, source="inferred")
    return _infer("reinforce", int(config.get("obs_dim") or m), int(m), network=network)


def _read_zip(path: Path) -> AgentCard:
    from .sb3 import METADATA_ENTRY, read_sb3_metadata

    meta = read_sb3_metadata(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            full = json.loads(zf.read(METADATA_ENTRY)) if METADATA_ENTRY in names else {}
            legacy = json.loads(zf.read(_LEGACY_ZIP_ENTRY)) if _LEGACY_ZIP_ENTRY in names else None
            data = json.loads(zf.read("data"))
    except (KeyError, ValueError, zipfile.BadZipFile, OSError) as exc:
        raise PolicyError(f"{path} is not a readable saved agent ({type(exc).__name__}: {exc})") from None
    action: dict[str, Any] = {"action_space": meta.get("action_space"), "softmax_scale": meta.get("softmax_scale")}
    if isinstance(full.get("agent"), Mapping):
        return AgentCard.from_dict(full["agent"])
    if legacy is not None:
        return _legacy_card(legacy, **action)
    obs_shape = (data.get("observation_space") or {}).get("_shape") or []
    act_space = data.get("action_space") or {}
    act_shape = act_space.get("_shape") or []
    if len(obs_shape) != 1 or len(act_shape) != 1:
        raise PolicyError(f"{path}: an SB3 agent for mmenv has a flat observation and action; got shapes "
                          f"{obs_shape} and {act_shape}")
    if action["action_space"] is None and _is_symmetric_box(act_space):
        action["action_space"] = "softmax"   # the registered ids' default (module docstring)
    module = (data.get("policy_class") or {}).get("__module__", "")
    network = "equivariant" if module == "mmenv.agents.equivariant" else "mlp"
    return _infer(str(meta["algo"]), int(obs_shape[0]), int(act_shape[0]), network=network, **action)


def _is_symmetric_box(entry: Mapping[str, Any]) -> bool:
    try:
        low = [float(v) for v in str(entry["low"]).replace("[", " ").replace("]", " ").split()]
        high = [float(v) for v in str(entry["high"]).replace("[", " ").replace("]", " ").split()]
    except (KeyError, ValueError):
        return False
    return bool(low) and all(v == -1.0 for v in low) and all(v == 1.0 for v in high)


@agent_load_errors("saved agent")
def read_card(path: str | Path) -> AgentCard:
    """The :class:`AgentCard` of a saved agent (saved, or inferred: module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise PolicyError(f"no saved agent at {path}")
    return _read_zip(path) if path.suffix == ".zip" else _read_pt(path)


# ---------------------------------------------------------------------- writing
def save_agent(agent: Any, path: str | Path, card: AgentCard | None = None, **card_fields: Any) -> Path:
    """Save ``agent`` (a :class:`ReinforcePolicy`, an SB3 model or :class:`SB3Policy`) with its card.

    The card is ``card`` (or one built from ``card_fields``: ``observation=``, ``reward=``, ...,
    completed from the agent: algorithm, network, action space, m). REINFORCE goes to a
    ``.pt``, SB3 to a ``.zip``.
    """
    from .reinforce import ReinforcePolicy
    from .sb3 import SB3Policy, algo_key, save_sb3_model

    path = Path(path)
    if isinstance(agent, ReinforcePolicy):
        if path.suffix != ".pt":
            raise PolicyError(f"a REINFORCE agent is saved as .pt, got {path.name!r}")
        card = card or AgentCard(algo="reinforce", **card_fields)
        card = replace(card, network=agent.config.policy, num_modalities=card.num_modalities
                       or agent.config.num_modalities)
        agent.save(path, card=card.to_dict())
        return path
    policy = agent if isinstance(agent, SB3Policy) else SB3Policy(agent, deterministic=True)
    if path.suffix != ".zip":
        raise PolicyError(f"an SB3 agent is saved as .zip, got {path.name!r}")
    card = card or AgentCard(algo=algo_key(policy.model), **card_fields)
    m = int(np.prod(policy.model.action_space.shape or (1,)))
    card = replace(card, action_space=card.action_space or policy.action_space,
                   softmax_scale=card.softmax_scale if card.softmax_scale is not None else policy.softmax_scale,
                   num_modalities=card.num_modalities or m, network=_sb3_network(policy.model))
    return save_sb3_model(policy.model, path, action_space=card.action_space, card=card.to_dict())


def _sb3_network(model: Any) -> str:
    from .equivariant import is_equivariant_policy

    return "equivariant" if is_equivariant_policy(model.policy) else "mlp"


@agent_load_errors("saved agent")
def load_agent(path: str | Path, **kwargs: Any) -> Policy:
    """The policy saved at ``path`` with ``policy.card`` set (``kwargs`` go to the policy's ``load``)."""
    from .reinforce import ReinforcePolicy
    from .sb3 import SB3Policy

    path = Path(path)
    card = read_card(path)
    policy: Policy
    if path.suffix == ".zip":
        kwargs.setdefault("action_space", card.action_space)
        kwargs.setdefault("softmax_scale", card.softmax_scale)
        policy = SB3Policy.load(path, **kwargs)
    else:
        policy = ReinforcePolicy.load(path, **kwargs)
    policy.card = card
    return policy


# ---------------------------------------------------------------------- a trained agent
@dataclass
class TrainedAgent:
    """An agent trained across runs: its policy, its card, its training record.

    ``policy`` acts on ``bench_env(instance, observation=agent.observation)`` through
    :func:`mmenv.agents.run_policy` (REINFORCE with the Dirichlet mean, SB3 with its
    deterministic action). ``curve`` holds ``(runs consumed, curve_fn(policy))`` pairs;
    ``history`` one summary per training run (instance index, environment seed, return,
    Eq. 5 return, proportions per step, test accuracy).
    """

    algo: str
    policy: Policy
    observation: str
    reward: str | None            # None: not recorded (a plain file's inferred card)
    seed: int
    runs: int
    curve: list[tuple[int, float]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    preset: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float = 0.0
    train_instances: list[str] = field(default_factory=list)

    @property
    def card(self) -> AgentCard:
        """The card this agent is saved with."""
        saved = getattr(self.policy, "card", None)
        base = saved if isinstance(saved, AgentCard) else AgentCard(algo=self.algo)
        training = {"seed": self.seed, "runs": self.runs, "curve": [list(c) for c in self.curve],
                    "history": self.history, "preset": {k: v for k, v in self.preset.items() if _plain(v)},
                    "wall_time_s": self.wall_time_s, "train_instances": list(self.train_instances)}
        return replace(base, algo=self.algo, env_id=BENCH_ENV_ID, observation=self.observation, reward=self.reward,
                       training=training, source="saved")

    def save(self, path: str | Path) -> Path:
        """Save to ``path`` (REINFORCE ``.pt``, SB3 ``.zip``) in the one saved-agent format."""
        return save_agent(self.policy, path, card=self.card)

    @classmethod
    @agent_load_errors("saved agent")
    def load(cls, path: str | Path) -> TrainedAgent:
        """Any saved agent (module docstring) as a :class:`TrainedAgent` with a deterministic policy."""
        policy = load_agent(path, deterministic=True)
        card: AgentCard = policy.card
        t = card.training
        return cls(algo=card.algo, policy=policy, observation=card.observation, reward=card.reward,
                   seed=int(t.get("seed", 0)), runs=int(t.get("runs", 0)),
                   curve=[(int(r), float(v)) for r, v in t.get("curve", [])], history=list(t.get("history", [])),
                   preset=dict(t.get("preset", {})), wall_time_s=float(t.get("wall_time_s", 0.0)),
                   train_instances=list(t.get("train_instances", [])))

    def schedule(self, instance: Any, seeds: Sequence[int] = (0,)) -> np.ndarray:
        """The learned schedule on ``instance``: proportions per step, ``[seeds, steps, m]``."""
        from mmenv.instances import as_instance
        from mmenv.wrappers import make_bench_env

        from .runner import run_policy

        env = make_bench_env(observation=self.observation, reward="dus", **as_instance(instance).env_kwargs())
        try:
            records = run_policy(env, self.policy, episodes=len(seeds), seeds=list(seeds), learn=False)
        finally:
            env.close()
        return np.asarray([r.proportions for r in records], dtype=np.float64)


def _plain(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool)) or value is None
