"""Learner x sampling-policy table on the synthetic data (``python -m mmenv.experiments.learner_table``).

Every registered learner is trained by the environment under the package's sampling
policies (``mmenv.agents.make_policy``) over several seeds, and the test accuracy (fused and
per modality) is reported as mean ± std in a Markdown table. Default policies:

* ``uniform``: N_B / m for every modality (the usual training);
* ``dus-h``: the paper's heuristic DUS (dominant modality's batch grows from half of the
  others' to equal over the run);
* ``reinforce``: online REINFORCE, the paper's DUS (Algorithm 1: the policy learns
  during the one training run it controls).

``--policies`` adds ``fixed`` (MLA-HB) and ``discrepancy`` (DUS w/o RL).
"""

from __future__ import annotations

import argparse
import time

import torch
from mmenv.agents import run_policy
from mmenv.agents.assembly import build_policy, make_run_env

from mmenv.datasets import make_synthetic
from mmenv.learners import LEARNERS
from mmenv.results import std_note, summarise

POLICY_NAMES = ("uniform", "dus-h", "reinforce")


def run(learner: str, policy_name: str, seed: int, dataset, epochs: int, batch_budget: int = 64) -> dict:
    """One run, assembled as ``mmenv compare`` assembles it (REINFORCE seeded by the run seed, online)."""
    env = make_run_env(dict(dataset=dataset, learner=learner, epochs=epochs, batch_budget=batch_budget))
    policy, learn = build_policy(policy_name, seed=seed)
    record = run_policy(env, policy, seeds=[seed], learn=learn)[0]
    return record.test or {}


def fmt(values: list[float]) -> str:
    """Percent, one decimal: mean ± sample std (:mod:`mmenv.results`)."""
    return summarise(values).format(scale=100.0, digits=1)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help='seeds per cell (default 3)')
    parser.add_argument("--epochs", type=int, default=5, help='epochs per run (default 5)')
    parser.add_argument("--n-train", type=int, default=2000, help='synthetic training samples (default 2000)')
    parser.add_argument("--batch-budget", type=int, default=64, help='N_B (default 64)')
    parser.add_argument("--learners", nargs="*", default=LEARNERS.names(),
                        help='learner names (default: every registered one)')
    parser.add_argument("--policies", nargs="*", default=list(POLICY_NAMES), help='policy names (default: uniform dus-h reinforce; also fixed, discrepancy)')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = make_synthetic(n_train=args.n_train, seed=0)
    mods = data.modality_names
    lines = [f"Synthetic data (n_train={args.n_train}, 2 modalities, 4 classes), {args.epochs} epochs, N_B={args.batch_budget}, "
             f"{args.seeds} seeds; test accuracy in %, mean ± std ({std_note(args.seeds)}).", "",
             "| learner | policy | fused | " + " | ".join(mods) + " |",
             "|---|---|---|" + "---|" * len(mods)]
    start = time.time()
    for learner in args.learners:
        for pname in args.policies:
            results = [run(learner, pname, seed, data, args.epochs, args.batch_budget) for seed in range(args.seeds)]
            cells = [fmt([r[k]["accuracy"] for r in results]) for k in ("fused", *mods)]
            lines.append(f"| {learner} | {pname} | " + " | ".join(cells) + " |")
            print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(f"\n{table}\n\n({time.time() - start:.0f} s)")
    return table


if __name__ == "__main__":
    main()
