"""Stable-Baselines3 presets for the DUS environment: PPO, A2C, SAC, TD3.

``make_sb3_agent(algo, env, tensorboard_log=..., seed=..., **overrides)`` returns an SB3
model ready for ``model.learn(total_timesteps)``.

**Why these defaults.** One environment step of :class:`mmenv.DUSEnv` is a whole epoch
(or ``step_every`` iterations) of training a multimodal network, and an episode is a
whole training run of about ``epochs`` steps. Agents therefore see tens to hundreds of
transitions, not millions, so the presets update from very few of them:

* PPO: ``n_steps=8`` (a rollout is about one short training run), ``batch_size=8``,
  ``n_epochs=4``; A2C: ``n_steps=4``. SB3's defaults (2048 / 5) would mean thousands of
  training runs, or no update at all in a typical budget.
* SAC / TD3: ``learning_starts=4`` (start updating after a few transitions),
  ``batch_size=8``, ``train_freq=1`` and ``gradient_steps=1`` (an update per
  environment step, like Algorithm 1), a small ``buffer_size`` (all transitions fit);
  TD3 explores with Gaussian action noise ``sigma=0.1``.
* ``learning_rate=1e-4`` for every algorithm: the paper's policy learning rate.

**Action space.** SB3 expects a symmetric Box ``[-1, 1]`` (its Gaussian/squashed policies
and its environment checker assume it), so the environment must be created with
``action_space="symmetric"`` (:func:`make_sb3_env` does it); the environment maps
``a -> (a + 1) / 2`` and normalises to proportions. A unit-space environment is
rejected with an error that says so.

**Logging.** ``tensorboard_log`` is SB3's own TensorBoard logging; :class:`InfoCallback`
(added by :func:`learn`) also records the environment's ``info`` each step — batch sizes,
proportions, discrepancy, training accuracies — and the test metrics at the end of each
episode, through ``self.logger.record``.

Example::

    from mmenv.agents.sb3 import make_sb3_env, make_sb3_agent, learn

    env = make_sb3_env(epochs=5, batch_budget=32)
    model = make_sb3_agent("ppo", env, tensorboard_log="runs/ppo", seed=0)
    learn(model, total_timesteps=40)
    model.save("ppo_dus.zip")
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import stable_baselines3 as sb3
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.noise import NormalActionNoise

from mmenv.registry import Registry

from .policy import Policy, PolicyError, UnknownPolicyError, normalise_proportions

__all__ = ["SB3_ALGOS", "SB3_DEFAULTS", "make_sb3_env", "make_sb3_agent", "InfoCallback", "learn",
           "TqdmCallback", "SB3Policy", "load_sb3_model"]

#: SB3 algorithm classes by name; the registered object is the class (``SB3_ALGOS.make`` returns it).
#: Installed packages can add algorithms (e.g. from sb3-contrib) through the entry-point group
#: ``mmenv.sb3_algorithms``; presets below apply to the built-in four only.
SB3_ALGOS: Registry = Registry("SB3 algorithm", "mmenv.sb3_algorithms", construct=False, param="algo",
                               unknown_error=UnknownPolicyError)
for _name, _cls in {"ppo": sb3.PPO, "a2c": sb3.A2C, "sac": sb3.SAC, "td3": sb3.TD3}.items():
    SB3_ALGOS.register(_name, _cls)

SB3_DEFAULTS: dict[str, dict[str, Any]] = {
    "ppo": dict(n_steps=8, batch_size=8, n_epochs=4, learning_rate=1e-4),
    "a2c": dict(n_steps=4, learning_rate=1e-4),
    "sac": dict(learning_starts=4, batch_size=8, train_freq=1, gradient_steps=1, buffer_size=10_000,
                learning_rate=1e-4),
    "td3": dict(learning_starts=4, batch_size=8, train_freq=1, gradient_steps=1, buffer_size=10_000,
                learning_rate=1e-4),
}


def _algo_class(algo: str):
    return SB3_ALGOS.make(algo)


def make_sb3_env(**env_kwargs: Any):
    """A :class:`mmenv.DUSEnv` with the symmetric action space SB3 expects."""
    from mmenv import DUSEnv

    space = env_kwargs.pop("action_space", "symmetric")
    if space != "symmetric":
        raise PolicyError("SB3 agents need action_space='symmetric' (Box [-1, 1]); leave it unset")
    return DUSEnv(action_space="symmetric", **env_kwargs)


def make_sb3_agent(algo: str, env, tensorboard_log: str | None = None, seed: int | None = None,
                   verbose: int = 0, **overrides: Any):
    """An SB3 ``algo`` model on ``env`` with the presets above; ``overrides`` win."""
    cls = _algo_class(algo)
    base = getattr(env, "unwrapped", env)
    if not getattr(base, "symmetric", False):
        raise PolicyError(
            f"{algo.upper()} needs the environment's action space to be Box(-1, 1) (SB3's convention); "
            "create it with DUSEnv(..., action_space='symmetric') or mmenv.agents.sb3.make_sb3_env(...)")
    kwargs: dict[str, Any] = dict(SB3_DEFAULTS.get(algo.lower(), {}))
    if algo.lower() == "td3" and "action_noise" not in overrides:
        m = base.action_space.shape[0]
        kwargs["action_noise"] = NormalActionNoise(np.zeros(m), 0.1 * np.ones(m))
    kwargs.update(overrides)
    return cls("MlpPolicy", env, tensorboard_log=tensorboard_log, seed=seed, verbose=verbose, device="cpu",
               **kwargs)


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


def _algo_from_saved_data(data: dict) -> str | None:
    """Tell the algorithm by the hyper-parameters only it saves (PPO and A2C share a policy class)."""
    if "clip_range" in data:
        return "ppo"
    if "policy_delay" in data:
        return "td3"
    if "target_entropy" in data or "ent_coef_optimizer" in data:
        return "sac"
    if "n_steps" in data:
        return "a2c"
    return None


def load_sb3_model(path: str | Path, algo: str | None = None):
    """Load an SB3 ``.zip``; the algorithm is read from the file when not given."""
    path = Path(path)
    if algo is None:
        try:
            with zipfile.ZipFile(path) as zf:
                data = json.loads(zf.read("data"))
        except (KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise PolicyError(f"{path} is not a saved SB3 model (no readable 'data' entry)") from exc
        algo = _algo_from_saved_data(data)
        if algo is None:
            raise PolicyError(f"could not tell which SB3 algorithm saved {path}; pass algo=...")
    return _algo_class(algo).load(path, device="cpu")


class SB3Policy(Policy):
    """An SB3 model used as a :class:`Policy` (``predict`` then back to proportions)."""

    def __init__(self, model, deterministic: bool = True) -> None:
        self.model = model
        self.deterministic = deterministic
        self.name = type(model).__name__.lower()
        space = model.action_space
        self.low = np.asarray(space.low, dtype=np.float64)
        self.high = np.asarray(space.high, dtype=np.float64)

    @classmethod
    def load(cls, path: str | Path, algo: str | None = None, deterministic: bool = True, **_: Any) -> "SB3Policy":
        return cls(load_sb3_model(path, algo), deterministic=deterministic)

    def save(self, path: str | Path) -> None:
        self.model.save(path)

    def act(self, obs: np.ndarray, info: dict) -> np.ndarray:
        action, _ = self.model.predict(np.asarray(obs, dtype=np.float32), deterministic=self.deterministic)
        # Action space -> [0, 1] -> proportions (the same map the environment applies).
        a = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), self.low, self.high)
        unit = (a - self.low) / (self.high - self.low)
        return normalise_proportions(unit)
