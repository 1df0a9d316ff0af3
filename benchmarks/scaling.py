"""How the cost of one epoch grows with data set size, modalities and batch budget.

Each configuration runs in a fresh process (so that peak memory is its own): the
default environment on synthetic data (Baseline learner, MLP encoders, 32 features per
modality), one warm-up epoch, then one timed epoch (CPU time of the process). Peak
memory is the process's peak resident set size (``resource.getrusage``), and the
increase over the same process right after the imports.

    OMP_NUM_THREADS=1 PYTHONPATH=. nice python benchmarks/scaling.py

Prints a Markdown table (copied into docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

# (n_train, modalities, batch budget): vary one factor at a time around (4000, 2, 64).
CONFIGS = [
    (1000, 2, 64), (4000, 2, 64), (16000, 2, 64),
    (4000, 3, 64), (4000, 6, 64),
    (4000, 2, 32), (4000, 2, 256),
]


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def one(n_train: int, modalities: int, budget: int) -> dict:
    import torch

    from mmenv import DUSEnv

    torch.set_num_threads(1)
    base = rss_mib()
    env = DUSEnv(epochs=2, batch_budget=budget,
                 dataset_kwargs=dict(n_train=n_train, n_val=0, n_test=1000, num_modalities=modalities))
    action = env.uniform_action()
    env.reset(seed=0)
    env.step(action)  # warm-up epoch
    start = time.process_time()
    env.step(action)
    seconds = time.process_time() - start
    assert env.iteration == env.total_iters
    return dict(n_train=n_train, modalities=modalities, budget=budget, iters=env.iters_per_epoch,
                epoch_s=seconds, iter_ms=1e3 * seconds / env.iters_per_epoch,
                samples_per_s=budget * env.iters_per_epoch / seconds,
                peak_mib=rss_mib(), delta_mib=rss_mib() - base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", type=int, nargs=3, metavar=("N_TRAIN", "M", "BUDGET"),
                        help="run one configuration and print it as JSON (used by the driver)")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(*args.one)))
        return
    print("| train samples | modalities | N_B | iterations/epoch | s/epoch | ms/iteration | samples/s "
          "| peak RSS (MiB) | RSS over imports (MiB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for cfg in CONFIGS:
        out = subprocess.run([sys.executable, __file__, "--one", *map(str, cfg)], check=True,
                             capture_output=True, text=True, env=dict(os.environ))
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {r['n_train']} | {r['modalities']} | {r['budget']} | {r['iters']} | {r['epoch_s']:.2f} "
              f"| {r['iter_ms']:.2f} | {r['samples_per_s']:.0f} | {r['peak_mib']:.0f} | {r['delta_mib']:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
