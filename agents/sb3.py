"""Stable-Baselines3 and sb3-contrib on the DUS environment: presets, saving, loading.

``make_sb3_agent(algo, env, tensorboard_log=..., seed=..., **overrides)`` returns a model
ready for ``model.learn(total_timesteps)``; ``algo`` is any of :data:`SB3_ALGOS`:
``ppo``, ``a2c``, ``sac``, ``td3``, ``ddpg`` (Stable-Baselines3) and ``tqc``, ``trpo``,
``recurrentppo``, ``ars``, ``crossq`` (sb3-contrib, ``pip install sb3-contrib``). DQN, QR-DQN
and MaskablePPO need a discrete action space and do not apply to DUS (continuous
proportions); naming them gives an error that says so.

**Why these defaults.** One environment step of :class:`mmenv.DUSEnv` is a whole epoch
(or ``step_every`` iterations) of training a multimodal network, and an episode is a
whole training run of about ``epochs`` steps. Agents therefore see tens to hundreds of
transitions, not millions, so the presets update from very few of them:

* on-policy (PPO, RecurrentPPO: ``n_steps=8``, ``batch_size=8``, ``n_epochs=4``; A2C:
  ``n_steps=4``; TRPO: ``n_steps=8``, ``batch_size=8``). SB3's defaults (2048 / 5) would
  mean thousands of training runs, or no update at all in a typical budget.
* off-policy (SAC, TD3, DDPG, TQC, CrossQ): ``learning_starts=4``, ``batch_size=8``,
  ``train_freq=1``, ``gradient_steps=1`` (an update per environment step, like
  Algorithm 1), a small ``buffer_size``; TD3 and DDPG explore with Gaussian action noise
  ``sigma=0.1``.
* ARS: ``n_delta=2`` (each update evaluates ``2 * n_delta`` whole episodes).
* ``learning_rate=1e-4`` (the paper's policy learning rate) for every gradient method;
  ARS keeps its own step size (0.02).

**Action space.** SB3 expects a Box ``[-1, 1]``. :func:`make_sb3_env` builds the env with
the softmax space (``Box(-1, 1)`` logits, the registered id's default; shares within a
ratio of 20, so no modality can be starved) or, if asked, the affine symmetric one; a
unit-space environment is rejected with an error that says so.

**Saving.** :func:`save_sb3_model` writes SB3's zip plus an entry ``mmenv.json`` inside
it naming the algorithm and the action space the agent acted in, so
:func:`load_sb3_model` never guesses. A zip saved by plain ``model.save`` is recognised
by the policy class it stores (each algorithm family has its own) and, for the three
that share SB3's ``ActorCriticPolicy`` (PPO, A2C, TRPO), by the hyper-parameters only
that algorithm saves; ``algo=`` overrides both.

**Logging.** ``tensorboard_log`` is SB3's own TensorBoard logging; :class:`InfoCallback`
(added by :func:`learn`) also records the environment's ``info`` each step — batch sizes,
proportions, discrepancy, training accuracies — and the test metrics at the end of each
episode, through ``self.logger.record``.

Example::

    from mmenv.agents.sb3 import make_sb3_env, make_sb3_agent, learn, save_sb3_model

    env = make_sb3_env(epochs=5, batch_budget=32)
    model = make_sb3_agent("tqc", env, tensorboard_log="runs/tqc", seed=0)
    learn(model, total_timesteps=40)
    save_sb3_model(model, "tqc_dus.zip")
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.noise import NormalActionNoise

from mmenv.checkpoint import CheckpointError, UnsafeCheckpointError
from mmenv.registry import Registry

from .policy import Policy, PolicyError, UnknownPolicyError, normalise_proportions
from .presets import PRESETS, preset
from .safe_load import agent_load_errors, check_sb3_architecture

__all__ = ["SB3_ALGOS", "SB3_DEFAULTS", "NOT_APPLICABLE", "AlgoInfo", "algo_info", "algo_class", "make_sb3_env",
           "make_sb3_agent", "InfoCallback", "learn", "TqdmCallback", "SB3Policy", "save_sb3_model",
           "load_sb3_model", "safe_sb3_custom_objects", "read_sb3_metadata", "METADATA_ENTRY"]

METADATA_ENTRY = "mmenv.json"   # the entry save_sb3_model adds to SB3's zip


@dataclass(frozen=True)
class AlgoInfo:
    """Where an algorithm lives, its policy name, and the policy module its zips record."""

    key: str
    module: str               # "stable_baselines3" or "sb3_contrib"
    cls: str
    policy: str = "MlpPolicy"
    policy_module: str = ""   # the "__module__" of the policy class in a saved zip's data
    off_policy: bool = False


_ALGOS: dict[str, AlgoInfo] = {a.key: a for a in (
    AlgoInfo("ppo", "stable_baselines3", "PPO", policy_module="stable_baselines3.common.policies"),
    AlgoInfo("a2c", "stable_baselines3", "A2C", policy_module="stable_baselines3.common.policies"),
    AlgoInfo("sac", "stable_baselines3", "SAC", policy_module="stable_baselines3.sac.policies", off_policy=True),
    AlgoInfo("td3", "stable_baselines3", "TD3", policy_module="stable_baselines3.td3.policies", off_policy=True),
    AlgoInfo("ddpg", "stable_baselines3", "DDPG", policy_module="stable_baselines3.td3.policies", off_policy=True),
    AlgoInfo("tqc", "sb3_contrib", "TQC", policy_module="sb3_contrib.tqc.policies", off_policy=True),
    AlgoInfo("trpo", "sb3_contrib", "TRPO", policy_module="stable_baselines3.common.policies"),
    AlgoInfo("recurrentppo", "sb3_contrib", "RecurrentPPO", policy="MlpLstmPolicy",
             policy_module="sb3_contrib.common.recurrent.policies"),
    AlgoInfo("ars", "sb3_contrib", "ARS", policy_module="sb3_contrib.ars.policies"),
    AlgoInfo("crossq", "sb3_contrib", "CrossQ", policy_module="sb3_contrib.crossq.policies", off_policy=True),
)}
#: SB3 / sb3-contrib algorithm classes by name (``SB3_ALGOS.make(name)`` returns the class; the
#: sb3-contrib ones are imported on first use). Installed packages can add algorithms through
#: the entry-point group ``mmenv.sb3_algorithms``; presets apply to the built-in ones.
SB3_ALGOS: Registry = Registry("SB3 algorithm", "mmenv.sb3_algorithms", construct=False, param="algo",
                               unknown_error=UnknownPolicyError)
for _info in _ALGOS.values():
    SB3_ALGOS.register(_info.key, f"{_info.module}:{_info.cls}")
_ALIASES = {"recurrent-ppo": "recurrentppo", "recurrent_ppo": "recurrentppo", "ppo-lstm": "recurrentppo",
            "cross-q": "crossq"}
# Discrete-action algorithms: DUS actions are continuous proportions.
NOT_APPLICABLE = {"dqn": "DQN", "qrdqn": "QR-DQN", "qr-dqn": "QR-DQN", "maskableppo": "MaskablePPO",
                  "maskable-ppo": "MaskablePPO"}
_DISCRETE_POLICY_MODULES = {"stable_baselines3.dqn.policies": "DQN", "sb3_contrib.qrdqn.policies": "QR-DQN",
                            "sb3_contrib.common.maskable.policies": "MaskablePPO"}

#: Keys of :data:`mmenv.agents.presets.PRESETS` that :func:`make_sb3_agent` translates (not constructor arguments).
PRESET_ONLY_KEYS = ("log_std_init", "action_noise_sigma", "policy")
#: The within-run presets as constructor keyword arguments (a view of :data:`mmenv.agents.presets.PRESETS`;
#: TD3 and DDPG also get Gaussian action noise, sigma 0.1, from :func:`make_sb3_agent`).
SB3_DEFAULTS: dict[str, dict[str, Any]] = {
    algo: {k: v for k, v in settings["within-run"].items() if k not in PRESET_ONLY_KEYS}
    for algo, settings in PRESETS.items() if algo not in ("reinforce", "es")}


def algo_info(algo: str) -> AlgoInfo:
    """The :class:`AlgoInfo` of ``algo`` (case-insensitive; aliases such as ``recurrent-ppo``).

    An algorithm added to :data:`SB3_ALGOS` by an installed package (entry point) gets a
    generic entry: ``MlpPolicy``, no presets.
    """
    key = str(algo).lower()
    key = _ALIASES.get(key, key)
    if key in NOT_APPLICABLE:
        raise PolicyError(f"{NOT_APPLICABLE[key]} needs a discrete action space and does not apply to DUS, "
                          f"whose actions are continuous proportions; use one of {list(SB3_ALGOS.names())}")
    if key in _ALGOS:
        return _ALGOS[key]
    cls = SB3_ALGOS.make(key)       # an unknown name: the registry's did-you-mean error
    return AlgoInfo(key, cls.__module__.split(".")[0], cls.__name__)


def algo_class(algo: str) -> Any:
    """The SB3 / sb3-contrib class of ``algo`` (an error naming the package to install if missing)."""
    info = algo_info(algo)
    try:
        return SB3_ALGOS.make(info.key)
    except ImportError as exc:
        raise PolicyError(f"{info.cls} comes from {info.module}, which is not installed: "
                          "pip install sb3-contrib") from exc


def make_sb3_env(**env_kwargs: Any):
    """A :class:`mmenv.DUSEnv` with a ``Box(-1, 1)`` action space for SB3 (softmax by default)."""
    from mmenv import DUSEnv

    space = env_kwargs.pop("action_space", "softmax")
    if space not in ("softmax", "symmetric"):
        raise PolicyError("SB3 agents need a Box(-1, 1) action space: action_space='softmax' (the default) "
                          f"or 'symmetric', got {space!r}")
    return DUSEnv(action_space=space, **env_kwargs)


def _action_space_of(env) -> str | None:
    """The DUS action-space name of ``env`` (a DUSEnv, a gym wrapper or an SB3 VecEnv), if it has one."""
    if env is None:
        return None
    if hasattr(env, "get_attr"):          # an SB3 VecEnv
        try:
            return env.get_attr("action_space_name")[0]
        except AttributeError:
            return None
    base = getattr(env, "unwrapped", env)
    return getattr(base, "action_space_name", None)


def make_sb3_agent(algo: str, env, tensorboard_log: str | None = None, seed: int | None = None,
                   verbose: int = 0, setting: str = "within-run", **overrides: Any):
    """An ``algo`` model (SB3 or sb3-contrib) on ``env`` with its preset; ``overrides`` win.

    ``setting``: which preset of :data:`mmenv.agents.presets.PRESETS` (``"within-run"``, the
    default, or ``"across-runs"``). Besides constructor arguments, the preset and the overrides
    may hold ``log_std_init`` (the initial log-std of a Gaussian policy: PPO, A2C, TRPO,
    RecurrentPPO; ignored by the others), ``action_noise_sigma`` (TD3 / DDPG Gaussian noise) and
    ``policy`` (``"mlp"``, the default, or ``"equivariant"``: the per-modality policy of
    :mod:`mmenv.agents.equivariant` for PPO, A2C, SAC, reading ``env``'s ``observation_layout``).
    """
    info = algo_info(algo)
    cls = algo_class(algo)
    base = getattr(env, "unwrapped", env)
    space = _action_space_of(env)
    if space == "unit" or (space is None and float(np.min(base.action_space.low)) >= 0.0):
        raise PolicyError(
            f"{info.cls} needs the environment's action space to be Box(-1, 1) (SB3's convention); "
            "create it with gym.make('mmenv/DUS-v0') (softmax by default), DUSEnv(..., action_space='softmax') "
            "or action_space='symmetric', or with mmenv.agents.sb3.make_sb3_env(...)")
    kwargs: dict[str, Any] = {**preset(info.key, setting), **overrides}
    policy_kwargs = dict(kwargs.pop("policy_kwargs", None) or {})
    log_std_init = kwargs.pop("log_std_init", None)
    if log_std_init is not None and info.key in ("ppo", "a2c", "trpo", "recurrentppo"):
        policy_kwargs.setdefault("log_std_init", log_std_init)  # SAC / TD3 have no initial log-std
    sigma = kwargs.pop("action_noise_sigma", None)
    if info.key in ("td3", "ddpg") and sigma is not None and "action_noise" not in kwargs:
        m = int(np.prod(base.action_space.shape or (1,)))
        kwargs["action_noise"] = NormalActionNoise(np.zeros(m), sigma * np.ones(m))
    network = kwargs.pop("policy", "mlp")
    policy: Any = info.policy
    if network == "equivariant":
        from .equivariant import equivariant_policy_class, layout_of

        policy = equivariant_policy_class(info.key)
        policy_kwargs.setdefault("layout", list(layout_of(env)))
    elif network != "mlp":
        raise PolicyError(f"unknown network policy={network!r}; valid: 'mlp', 'equivariant'")
    if policy_kwargs:
        kwargs["policy_kwargs"] = policy_kwargs
    return cls(policy, env, tensorboard_log=tensorboard_log, seed=seed, verbose=verbose, device="cpu", **kwargs)


class InfoCallback(BaseCallback):
    """Records the environment's ``info`` (and episode-end test metrics) in SB3's logger."""

    def __init__(self, modalities: list[str] | None = None, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.modalities = modalities

    def _on_step(self) -> bool:
        if self.modalities is None:
            self.modalities = list(self.training_env.get_attr("modalities")[0])
        for info in self.locals.get("infos", []):
            if "batch_sizes" not in info:
                continue
            # record_mean: SB3 writes once per rollout / log interval; average the steps in between.
            for j, mod in enumerate(self.modalities):
                self.logger.record_mean(f"env/batch_size/{mod}", info["batch_sizes"][j])
                self.logger.record_mean(f"env/proportion/{mod}", info["proportions"][j])
                self.logger.record_mean(f"env/discrepancy/{mod}", info["discrepancy"][j])
                if "train_accuracy" in info:
                    self.logger.record_mean(f"env/train_accuracy/{mod}", info["train_accuracy"][mod])
            test = info.get("test")
            if test:
                for who, metrics in test.items():
                    for metric, value in metrics.items():
                        self.logger.record(f"test/{who}/{metric}", value)
                # Episode ends are rare here: write them now rather than at the next rollout.
                self.logger.dump(self.num_timesteps)
        return True


class TqdmCallback(BaseCallback):
    """A tqdm bar over environment steps (SB3's own bar needs the optional ``rich``)."""

    def __init__(self, total: int) -> None:
        super().__init__()
        self.total = total
        self.bar: Any = None

    def _on_training_start(self) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, desc="env steps", unit="step")

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


def learn(model, total_timesteps: int, progress_bar: bool = False, tb_log_name: str | None = None,
          callbacks: list | None = None):
    """``model.learn`` with :class:`InfoCallback` attached (and a tqdm bar if asked)."""
    cb = [InfoCallback()] + list(callbacks or [])
    if progress_bar:
        cb.append(TqdmCallback(total_timesteps))
    kwargs = {"tb_log_name": tb_log_name} if tb_log_name else {}
    return model.learn(total_timesteps=total_timesteps, callback=cb, **kwargs)


def algo_key(model) -> str:
    """The :data:`SB3_ALGOS` key of a model instance (by its class)."""
    for info in _ALGOS.values():
        if type(model).__name__ == info.cls and type(model).__module__.startswith(info.module):
            return info.key
    raise PolicyError(f"{type(model).__name__} is not one of the algorithms mmenv knows: {list(SB3_ALGOS)}")


def save_sb3_model(model, path: str | Path, action_space: str | None = None,
                   card: Mapping[str, Any] | None = None) -> Path:
    """``model.save(path)`` plus an ``mmenv.json`` entry in the zip naming the algorithm.

    The entry also records the DUS action space the agent acted in (read from the model's
    environment unless ``action_space`` is given), so a loaded agent maps its actions back
    to proportions the way they were meant, and ``card`` (the agent card,
    :mod:`mmenv.agents.saved`) under ``"agent"``. SB3 ignores the extra entry when loading.
    """
    path = Path(path)
    if path.suffix != ".zip":
        path = path.with_suffix(".zip")   # what SB3's save does to a path without the suffix
    model.save(path)
    info = _ALGOS[algo_key(model)]
    space = action_space or _action_space_of(model.get_env())
    scale = None
    if space == "softmax" and model.get_env() is not None:
        try:
            scale = float(model.get_env().get_attr("softmax_scale")[0])
        except AttributeError:
            scale = None
    meta = {"format": 1, "algo": info.key, "class": f"{info.module}.{info.cls}", "action_space": space,
            "softmax_scale": scale}
    if card is not None:
        meta["agent"] = dict(card)
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(METADATA_ENTRY, json.dumps(meta))
    return path


def read_sb3_metadata(path: str | Path) -> dict[str, Any]:
    """What is known about a saved zip: ``algo``, ``action_space`` (None when not recorded), ``source``.

    ``source`` is ``"metadata"`` (written by :func:`save_sb3_model`) or ``"policy_class"``
    (read from the policy class SB3 stores, for zips of plain ``model.save``).
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if METADATA_ENTRY in names:
                meta = json.loads(zf.read(METADATA_ENTRY))
                algo_info(meta["algo"])
                return {**meta, "source": "metadata"}
            data = json.loads(zf.read("data"))
    except (KeyError, ValueError, zipfile.BadZipFile, OSError) as exc:
        raise PolicyError(f"{path} is not a saved SB3 model (no readable 'data' entry)") from exc
    return {"algo": _algo_from_saved_data(data, path), "action_space": None, "softmax_scale": None,
            "source": "policy_class"}


def _algo_from_saved_data(data: dict, path: Path) -> str:
    """The algorithm of a plain ``model.save`` zip, from the policy class it stores.

    Every family has its own policy module, except SB3's ``ActorCriticPolicy`` (PPO, A2C,
    TRPO) and ``TD3Policy`` (TD3, DDPG): those are told apart by what only one of them saves.
    """
    module = (data.get("policy_class") or {}).get("__module__", "")
    if module in _DISCRETE_POLICY_MODULES:
        raise PolicyError(f"{path} holds a {_DISCRETE_POLICY_MODULES[module]} agent, which needs a discrete "
                          "action space and does not apply to DUS")
    if module == "mmenv.agents.equivariant":   # the package's equivariant policies (PPO / A2C, SAC)
        text = " ".join(str(v) for v in (data.get("policy_class") or {}).values())
        if "EquivariantSACPolicy" in text:
            return "sac"
        return "ppo" if "clip_range" in data else "a2c"
    if module == "stable_baselines3.common.policies":
        if "cg_max_steps" in data:
            return "trpo"
        return "ppo" if "clip_range" in data else "a2c"
    if module == "stable_baselines3.td3.policies":
        # DDPG is TD3 with policy_delay 1 and no target smoothing noise.
        return "ddpg" if data.get("policy_delay") == 1 and data.get("target_noise_clip") == 0.0 else "td3"
    for info in _ALGOS.values():
        if info.policy_module == module:
            return info.key
    raise PolicyError(f"could not tell which algorithm saved {path} (policy class from {module or 'nowhere'}); "
                      f"pass algo=... (one of {list(SB3_ALGOS)})")


@agent_load_errors("SB3 agent")
def load_sb3_model(path: str | Path, algo: str | None = None):
    """Load a saved SB3 / sb3-contrib ``.zip``; the algorithm comes from the file unless ``algo`` is given.

    Safe: nothing in the file is unpickled (:func:`safe_sb3_custom_objects`); network sizes
    are bounded before they are built and any failure is a package error naming the file
    (:mod:`mmenv.agents.safe_load`).
    """
    path = Path(path)
    key = algo_info(algo).key if algo is not None else read_sb3_metadata(path)["algo"]
    cls = algo_class(key)
    custom_objects = safe_sb3_custom_objects(path, cls)
    check_sb3_architecture(custom_objects, path)
    return cls.load(path, device="cpu", custom_objects=custom_objects)


# ---------------------------------------------------------------------- safe loading of SB3 zips
_SB3_PACKAGES = ("stable_baselines3.", "sb3_contrib.")
#: This package's own SB3 policies (the equivariant ones) are trusted like SB3's.
_OWN_POLICIES = ("mmenv.agents.",)
_CLASS_REPR = re.compile(r"^<class '([A-Za-z_][\w.]*)'>$")
_FUNCTION_REPR = re.compile(r"^<function ([A-Za-z_][\w]*)\.")
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
#: Training-time state a loaded agent does not need to act; rebuilt empty by SB3 when it learns.
_RUNTIME_STATE = ("_last_obs", "_last_episode_starts", "_last_original_obs", "ep_info_buffer", "ep_success_buffer",
                  "_last_lstm_states", "_episode_storage", "weights")  # ARS: recomputed from the policy
#: Defaults of settings that are only recorded pickled (not readable without unpickling).
_PICKLED_DEFAULTS: dict[str, Any] = {"train_freq": 1}


def _sb3_class(entry: Mapping[str, Any], key: str) -> type:
    """A class of SB3 / sb3-contrib named by a pickled entry's readable attributes (module + methods)."""
    import importlib

    module = entry.get("__module__")
    names = {m.group(1) for v in entry.values() if isinstance(v, str) for m in [_FUNCTION_REPR.match(v)] if m}
    if not isinstance(module, str) or not module.startswith(_SB3_PACKAGES + _OWN_POLICIES) or len(names) != 1:
        raise UnsafeCheckpointError(f"SB3 zip: {key!r} names a class outside stable_baselines3 / sb3_contrib "
                                    f"(module {module!r}); refusing to unpickle it")
    obj = getattr(importlib.import_module(module), names.pop(), None)
    if not isinstance(obj, type):
        raise UnsafeCheckpointError(f"SB3 zip: {key!r}: cannot find the class it names in {module}")
    return obj


def _sb3_space(entry: Mapping[str, Any], key: str) -> Any:
    """A Box or Discrete space rebuilt from the attributes SB3 writes next to the pickle."""
    from gymnasium import spaces

    kind = entry.get(":type:", "")
    try:
        if kind.endswith(".Box'>"):
            shape = tuple(int(v) for v in entry["_shape"])

            dtype = np.dtype(entry["dtype"])

            def bound(text: str) -> np.ndarray:
                # In the space's own dtype: float64 bounds on a float32 Box warn on every load.
                values = re.sub(r"[\[\]]", " ", text).split()
                return np.array([float(v) for v in values], dtype=np.float64).astype(dtype).reshape(shape)

            return spaces.Box(bound(entry["low"]), bound(entry["high"]), shape=shape, dtype=dtype)
        if kind.endswith(".Discrete'>"):
            return spaces.Discrete(int(entry["n"]), start=int(entry.get("start", 0)))
    except (KeyError, ValueError, TypeError) as exc:
        raise UnsafeCheckpointError(f"SB3 zip: cannot rebuild {key!r} ({kind}) from its recorded attributes: "
                                    f"{exc}") from None
    raise UnsafeCheckpointError(f"SB3 zip: {key!r} is a {kind} space, which is only stored pickled; "
                                "refusing to unpickle it (Box and Discrete spaces are supported)")


def _sb3_schedule(entry: Mapping[str, Any], key: str) -> Any:
    """A constant schedule at the value a saved schedule records (``ConstantSchedule(val=0.2)``, or the
    start value of another schedule)."""
    from stable_baselines3.common.utils import ConstantSchedule, FloatSchedule

    text = " ".join(str(v) for k, v in entry.items() if k != ":serialized:")
    match = re.search(rf"(?:val|start|initial_value)=({_NUMBER})", text) or re.search(rf"=({_NUMBER})", text)
    if match is None:
        raise UnsafeCheckpointError(f"SB3 zip: cannot read the value of schedule {key!r} without unpickling it")
    return FloatSchedule(ConstantSchedule(float(match.group(1))))


def _sb3_noise(entry: Mapping[str, Any]) -> Any:
    """A ``NormalActionNoise`` rebuilt from its recorded mean and sigma; other noises as ``None``
    (exploration noise matters only for further training)."""
    if not str(entry.get(":type:", "")).endswith(".NormalActionNoise'>"):
        return None
    try:
        mu, sigma = (np.array([float(v) for v in re.sub(r"[\[\]]", " ", str(entry[k])).split()]) for k in ("_mu", "_sigma"))
    except (KeyError, ValueError):
        return None
    return NormalActionNoise(mean=mu, sigma=sigma)


def _sb3_kwargs(entry: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``policy_kwargs`` rebuilt from its readable items; classes only from torch.nn / torch.optim / SB3."""
    import importlib

    out: dict[str, Any] = {}
    for name, value in entry.items():
        if name in (":type:", ":serialized:"):
            continue
        if isinstance(value, str) and (m := _CLASS_REPR.match(value)):
            module, _, attr = m.group(1).rpartition(".")
            if not module.startswith(("torch.nn.", "torch.optim.", *_SB3_PACKAGES, *_OWN_POLICIES)):
                raise UnsafeCheckpointError(f"SB3 zip: {key}.{name} names {m.group(1)}, outside torch.nn / "
                                            "torch.optim / SB3; refusing to unpickle it")
            out[name] = getattr(importlib.import_module(module), attr)
        elif isinstance(value, str) and value.startswith("<"):
            raise UnsafeCheckpointError(f"SB3 zip: {key}.{name} is only stored pickled ({value[:60]}); "
                                        "refusing to unpickle it")
        else:
            out[name] = value
    return out


def safe_sb3_custom_objects(path: str | Path, algo_class: type | None = None) -> dict[str, Any]:  # noqa: ARG001
    """``custom_objects`` for SB3's ``load`` that replace **every** pickled entry of the zip.

    SB3 (2.9) passes each ``":serialized:"`` entry of the zip's ``data`` JSON to
    ``cloudpickle.loads``, which runs any code the file names; entries given in
    ``custom_objects`` are used instead and never unpickled. This reads ``data`` as JSON
    (no unpickling) and rebuilds each pickled entry from the readable attributes SB3
    writes next to it: ``policy_class`` and buffer classes by module and name, only from
    ``stable_baselines3`` / ``sb3_contrib``; ``observation_space`` / ``action_space`` (Box,
    Discrete) from their bounds, shape and dtype; schedules (``lr_schedule``,
    ``clip_range``...) as constants at their recorded values; ``policy_kwargs`` with
    classes only from ``torch.nn`` / ``torch.optim``; training-time state (last
    observation, episode buffers) as ``None``; a Normal action noise from its
    mean and sigma (other noises dropped); ``train_freq`` as 1 and ``target_entropy`` as
    ``-dim(actions)`` (SB3's "auto"; both are only stored pickled). Anything else pickled is refused with :class:`UnsafeCheckpointError`.

    A loaded agent acts exactly as saved (its network weights are read by torch's safe
    loader); continuing to train it uses the constant schedules above.
    """
    import json
    import zipfile

    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            data = json.loads(zf.read("data").decode("utf-8"))
    except (OSError, KeyError, zipfile.BadZipFile, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable SB3 zip ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: the SB3 zip's 'data' entry is not a JSON object")
    out: dict[str, Any] = {}
    for key, entry in data.items():
        if not (isinstance(entry, dict) and ":serialized:" in entry):
            continue
        try:
            kind = str(entry.get(":type:", ""))
            if key in _RUNTIME_STATE:
                out[key] = None
            elif key in _PICKLED_DEFAULTS:
                out[key] = _PICKLED_DEFAULTS[key]
            elif key == "action_noise":  # exploration noise of TD3/DDPG: Normal rebuilt, others dropped
                out[key] = _sb3_noise(entry)
            elif key == "target_entropy":  # a numpy scalar; SAC/TQC's "auto" value is -dim(actions)
                shape = data.get("action_space", {}).get("_shape") if isinstance(data.get("action_space"), dict) else None
                out[key] = -float(np.prod(shape)) if shape else -1.0
            elif kind.startswith("<class 'gymnasium.spaces."):
                out[key] = _sb3_space(entry, key)
            elif kind == "<class 'abc.ABCMeta'>" or kind == "<class 'type'>":
                out[key] = _sb3_class(entry, key)
            elif "Schedule" in kind or key.endswith(("_schedule", "clip_range", "clip_range_vf", "learning_rate")):
                out[key] = _sb3_schedule(entry, key)
            elif key == "policy_kwargs" or kind == "<class 'dict'>":
                out[key] = _sb3_kwargs(entry, key)
            else:
                raise UnsafeCheckpointError(f"SB3 zip: entry {key!r} ({kind}) is only stored pickled; refusing to "
                                            "unpickle it")
        except UnsafeCheckpointError as exc:
            raise UnsafeCheckpointError(f"{path}: {exc}") from None
    return out


class SB3Policy(Policy):
    """An SB3 / sb3-contrib model used as a :class:`Policy` (``predict``, then back to proportions).

    The model's action is mapped to proportions the way the environment it was trained on
    maps it: ``action_space`` (``"softmax"``, ``"symmetric"`` or ``"unit"``) as recorded by
    :func:`save_sb3_model`; when unknown, the space of the model's own environment, else
    that of the environment the policy plays in (read at :meth:`reset`), else the affine
    map of the model's Box to ``[0, 1]``. Recurrent policies (RecurrentPPO) carry their
    LSTM state from step to step and start afresh at each episode. An equivariant policy
    (:mod:`mmenv.agents.equivariant`) also acts on observations of another number of
    modalities than it was built for (deterministically, with the same weights).
    """

    def __init__(self, model, deterministic: bool = True, action_space: str | None = None,
                 softmax_scale: float | None = None) -> None:
        self.model = model
        self.deterministic = deterministic
        self.name = type(model).__name__.lower()
        space = model.action_space
        self.low = np.asarray(space.low, dtype=np.float64)
        self.high = np.asarray(space.high, dtype=np.float64)
        self.action_space = action_space or _action_space_of(model.get_env())
        self.softmax_scale = softmax_scale
        self._state: Any = None
        self._episode_start = np.ones((1,), dtype=bool)

    @classmethod
    @agent_load_errors("SB3 agent")
    def load(cls, path: str | Path, algo: str | None = None, deterministic: bool = True,
             action_space: str | None = None, softmax_scale: float | None = None, **_: Any) -> SB3Policy:
        """Load a zip; the action space comes from ``action_space`` or the file's metadata."""
        meta = read_sb3_metadata(path)
        model = load_sb3_model(path, algo)
        return cls(model, deterministic=deterministic, action_space=action_space or meta.get("action_space"),
                   softmax_scale=softmax_scale if softmax_scale is not None else meta.get("softmax_scale"))

    def save(self, path: str | Path) -> None:
        save_sb3_model(self.model, path, action_space=self.action_space)

    def reset(self, env: Any) -> None:
        if self.action_space is None:
            self.action_space = getattr(env, "action_space_name", None)
            if self.action_space == "softmax" and self.softmax_scale is None:
                self.softmax_scale = getattr(env, "softmax_scale", None)
        self._state = None
        self._episode_start = np.ones((1,), dtype=bool)

    def _other_m(self, obs: np.ndarray) -> np.ndarray | None:
        """Deterministic actions of an equivariant policy for an observation of another m (else None)."""
        space = self.model.observation_space
        if np.asarray(obs).shape == space.shape or not hasattr(self.model.policy, "deterministic_actions"):
            return None
        import torch

        with torch.no_grad():
            out = self.model.policy.deterministic_actions(torch.as_tensor(np.asarray(obs, dtype=np.float32))[None])
        return np.clip(out[0].numpy().astype(np.float64), float(self.low.min()), float(self.high.max()))

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        other = self._other_m(obs)
        if other is not None:   # the same weights on another number of modalities
            a = other
        else:
            action, self._state = self.model.predict(np.asarray(obs, dtype=np.float32), state=self._state,
                                                     episode_start=self._episode_start,
                                                     deterministic=self.deterministic)
            a = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), self.low, self.high)
        self._episode_start = np.zeros((1,), dtype=bool)
        if self.action_space in ("softmax", "symmetric", "unit") and (other is not None or a.shape == self.low.shape):
            from mmenv.sampling import SOFTMAX_SCALE, action_to_proportions

            return action_to_proportions(a, a.shape[0], tol=1e-6, space=self.action_space,
                                         softmax_scale=self.softmax_scale or SOFTMAX_SCALE)
        # Unknown space: the model's Box -> [0, 1] -> proportions.
        low, high = (self.low, self.high) if other is None else (self.low.min(), self.high.max())
        unit = (a - low) / (high - low)
        return normalise_proportions(unit)
