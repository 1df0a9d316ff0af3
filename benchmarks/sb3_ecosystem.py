"""Every SB3 / sb3-contrib algorithm on the registered id, with no glue: starvation and learning.

Two tables (docs/agents.md, "Every SB3 and sb3-contrib algorithm"):

1. **Starvation by action space.** For each algorithm and each action space (``unit``, the
   paper's ``[0, 1]``; ``symmetric``; ``softmax``, the registered id's default), a plain
   ``Algo(policy, gym.make("mmenv/DUS-v0", action_space=...))`` with SB3's own defaults:

   * ``fresh``: the share of 1000 stochastic actions of the untrained policy (on observations
     drawn uniformly from [0, 0.3]^2, the range the env's observations take early on) that
     leave a modality with <= 2 of N_B = 64 rows;
   * ``learn``: the same share over the first ``--steps`` steps of plain ``model.learn()``
     (what the env actually received: off-policy algorithms sample the action space
     uniformly before ``learning_starts``).

2. **Learning on the registered id.** ``Algo(policy, gym.make("mmenv/DUS-v0", ...),
   **SB3_DEFAULTS[algo])`` then ``model.learn(--timesteps)``: gradient updates done, the
   share of steps that starved a modality, the smallest batch seen, wall time.

Compute is bounded: a small synthetic set and few steps. Usage::

    python -m benchmarks.sb3_ecosystem --out /tmp/sb3_ecosystem.json
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from mmenv.agents.sb3 import SB3_ALGOS, SB3_DEFAULTS, algo_class, algo_info

import mmenv  # noqa: F401  (registers the id)
from mmenv.sampling import allocate

DATA = {"n_train": 128, "n_val": 32, "n_test": 128}
SPACES = ("unit", "symmetric", "softmax")


class _Sizes(gym.Wrapper):
    """Records ``info["batch_sizes"]`` of every step the env ran (measurement only: it changes
    nothing the agent sees; ARS evaluates outside SB3's callbacks, so a callback would miss it)."""

    def __init__(self, env) -> None:
        super().__init__(env)
        self.sizes: list[list[int]] = []

    def step(self, action):
        out = self.env.step(action)
        self.sizes.append(list(out[4]["batch_sizes"]))
        return out


def _make_env(space: str, epochs: int):
    return _Sizes(gym.make("mmenv/DUS-v0", dataset_kwargs=DATA, epochs=epochs, action_space=space))


def _starved(sizes, threshold: int = 2) -> float:
    arr = np.asarray(sizes)
    return float((arr.min(1) <= threshold).mean()) if len(arr) else float("nan")


def fresh_share(algo: str, space: str, seed: int, draws: int = 1000) -> float:
    env = _make_env(space, 2)
    model = algo_class(algo)(algo_info(algo).policy, env, seed=seed, device="cpu")
    base = env.unwrapped
    obs = np.random.default_rng(seed).uniform(0.0, 0.3, size=(draws, 2)).astype(np.float32)
    if algo == "recurrentppo":   # one LSTM state per row, all at an episode start
        actions, _ = model.predict(obs, episode_start=np.ones(draws, bool), deterministic=False)
    else:
        actions, _ = model.predict(obs, deterministic=False)
    sizes = [allocate(base.action_to_proportions(np.clip(a, env.action_space.low, env.action_space.high)),
                      base.batch_budget, base.min_batch) for a in actions]
    return _starved(sizes)


def learn_share(algo: str, space: str, seed: int, steps: int) -> float:
    env = _make_env(space, 4)
    model = algo_class(algo)(algo_info(algo).policy, env, seed=seed, device="cpu")
    model.learn(total_timesteps=steps)
    return _starved(env.sizes[:steps])


def learning_row(algo: str, seed: int, timesteps: int) -> dict[str, Any]:
    env = _make_env("softmax", 4)
    info = algo_info(algo)
    kwargs = dict(SB3_DEFAULTS[algo])
    model = algo_class(algo)(info.policy, env, seed=seed, device="cpu", **kwargs)
    start = time.perf_counter()
    model.learn(total_timesteps=timesteps)
    wall = time.perf_counter() - start
    sizes = np.asarray(env.sizes)
    return {"algo": algo, "class": info.cls, "kwargs": {k: v for k, v in kwargs.items()},
            "timesteps": int(model.num_timesteps), "updates": int(getattr(model, "_n_updates", 0)),
            "starved_share": _starved(env.sizes), "min_batch_seen": int(sizes.min()) if len(sizes) else None,
            "wall_s": round(wall, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="JSON file for both tables")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=200, help="steps of plain learn() for the starvation table")
    p.add_argument("--timesteps", type=int, default=64, help="steps of learn() for the learning table")
    p.add_argument("--algos", default=",".join(SB3_ALGOS))
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    algos = [a.strip() for a in args.algos.split(",") if a.strip()]
    out: dict[str, Any] = {"seed": args.seed, "steps": args.steps, "timesteps": args.timesteps, "data": DATA,
                           "starvation": [], "learning": []}
    for algo in algos:
        row: dict[str, Any] = {"algo": algo}
        for space in SPACES:
            row[f"fresh_{space}"] = fresh_share(algo, space, args.seed)
            row[f"learn_{space}"] = learn_share(algo, space, args.seed, args.steps)
        out["starvation"].append(row)
        print(json.dumps(row), flush=True)
    for algo in algos:
        row = learning_row(algo, args.seed, args.timesteps)
        out["learning"].append(row)
        print(json.dumps(row), flush=True)
    args.out.write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
