"""Learner x sampling-policy table on the synthetic data (``python -m experiments.learner_table``).

Every registered balance learner is trained by the environment under three simple
per-modality batch policies, over three seeds, and the test accuracy (fused and per
modality) is reported as mean ± std in a Markdown table:

* ``uniform``: N_B / m for every modality (the usual training);
* ``fixed-ratio``: the dominant (first, ``strong``) modality gets half of its uniform
  share, ``1 / (2m)`` of the budget, the others share the rest equally (with two
  modalities 25 % / 75 %; "half the budget" would be the uniform policy again);
* ``discrepancy``: a one-line heuristic on the observation: shares proportional to
  ``1 - s_j`` normalised (the less confident a modality, the more of the batch it gets).

Only the environment and these inline policies are used.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mmenv.datasets import make_synthetic
from mmenv.env import DUSEnv

LEARNER_NAMES = ("baseline", "ogm-ge", "mla", "pmr", "agm", "di-mml")


def uniform(obs: np.ndarray) -> np.ndarray:
    return np.full(obs.shape[0], 1.0 / obs.shape[0])


def fixed_ratio(obs: np.ndarray) -> np.ndarray:
    m = obs.shape[0]
    dominant = 0.5 / m
    return np.array([dominant] + [(1.0 - dominant) / (m - 1)] * (m - 1))


def discrepancy(obs: np.ndarray) -> np.ndarray:
    # Normalise the scores first: with "sum" discrepancy they are divided by N_B.
    s = obs / max(obs.sum(), 1e-8)
    w = np.clip(1.0 - s, 1e-3, None)
    return w / w.sum()


POLICIES = {"uniform": uniform, "fixed-ratio": fixed_ratio, "discrepancy": discrepancy}


def run(learner: str, policy, seed: int, dataset, epochs: int) -> dict:
    env = DUSEnv(dataset=dataset, learner=learner, epochs=epochs, batch_budget=32)
    obs, _ = env.reset(seed=seed)
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(policy(obs))
        done = terminated or truncated
    return info["test"]


def fmt(values: list[float]) -> str:
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=500)
    parser.add_argument("--learners", nargs="*", default=list(LEARNER_NAMES))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = make_synthetic(n_train=args.n_train, n_val=100, n_test=1000, seed=0)
    mods = data.modality_names
    lines = [f"Synthetic data (n_train={args.n_train}, 2 modalities, 4 classes), {args.epochs} epochs, N_B=32, "
             f"{args.seeds} seeds; test accuracy in %, mean ± std.", "",
             "| learner | policy | fused | " + " | ".join(mods) + " |",
             "|---|---|---|" + "---|" * len(mods)]
    start = time.time()
    for learner in args.learners:
        for pname, policy in POLICIES.items():
            results = [run(learner, policy, seed, data, args.epochs) for seed in range(args.seeds)]
            cells = [fmt([r[k]["accuracy"] for r in results]) for k in ("fused", *mods)]
            lines.append(f"| {learner} | {pname} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(f"\n{table}\n\n({time.time() - start:.0f} s)")
    return table


if __name__ == "__main__":
    main()
