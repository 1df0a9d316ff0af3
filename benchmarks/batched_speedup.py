"""Batched engine speed-up: K runs trained together vs the same runs one at a time.

For each learner, K runs of the synthetic ``quick`` family configuration (N_B 64, 5
epochs of 63 iterations, a fixed 5-step schedule of shares, seeds 0..K-1) are played by
:func:`mmenv.engine.play_batch` (one batch) and by :func:`mmenv.agents.run_policy` on a
fresh ``DUSEnv`` per run (one at a time, the ordinary path). Both include everything a
run costs: environment construction, reset (model build, probe), training, the final
test evaluation. The speed-up is the ratio of runs per CPU-second, both measured in this
process (CPU time of this process: time spent waiting for a core on a shared machine is
not the code's cost). With ``--single-runs S < K`` only S single runs are timed and the
single path's runs/s is taken from them (labelled in the output).

AV-digits (the masked 1-D convolution encoder on MFCC sequences and the small image CNN):
the same with the Baseline learner, N_B 64, ``--av-epochs`` epochs.

    OMP_NUM_THREADS=1 PYTHONPATH=. nice python benchmarks/batched_speedup.py

Lines ``RESULT batched_speedup_<learner> <x>`` and ``RESULT batched_speedup_av_digits <x>``.
"""

from __future__ import annotations

import argparse
import time

import torch
from mmenv.agents import run_policy

from mmenv import DUSEnv
from mmenv.datasets import make_dataset
from mmenv.engine import play_batch, schedule_policy

CLOCK = time.process_time
SCHEDULE = [[0.5, 0.5], [0.7, 0.3], [0.3, 0.7], [0.5, 0.5], [0.6, 0.4]]
LEARNERS = ("baseline", "ogm-ge", "mla", "pmr", "agm", "di-mml")


def measure(env_kwargs: dict, runs: int, single_runs: int) -> tuple[float, float]:
    """(batched runs/s, single runs/s) in CPU time."""
    play_batch(env_kwargs, [SCHEDULE] * 2, [0, 1])  # warm-up: lazy imports, allocator, vmap caches
    start = CLOCK()
    play_batch(env_kwargs, [SCHEDULE] * runs, list(range(runs)))
    batched = runs / (CLOCK() - start)
    start = CLOCK()
    for seed in range(single_runs):
        run_policy(DUSEnv(**env_kwargs), schedule_policy(SCHEDULE), seeds=[seed])
    single = single_runs / (CLOCK() - start)
    return batched, single


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=32, help="K, runs per batch (default 32)")
    parser.add_argument("--single-runs", type=int, default=None,
                        help="single runs timed (default K: the same work)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--av-epochs", type=int, default=3)
    parser.add_argument("--learners", default=",".join(LEARNERS))
    parser.add_argument("--no-av", action="store_true", help="skip AV-digits")
    args = parser.parse_args()
    torch.set_num_threads(1)
    single_runs = args.single_runs or args.runs
    label = "" if single_runs == args.runs else f" (single runs/s from {single_runs} runs)"
    synthetic = make_dataset("synthetic")
    for learner in [x for x in args.learners.split(",") if x]:
        kwargs = dict(dataset=synthetic, learner=learner, epochs=args.epochs, batch_budget=64)
        batched, single = measure(kwargs, args.runs, single_runs)
        print(f"{learner}: batched K={args.runs} {batched:.2f} runs/s, single {single:.2f} runs/s{label}")
        print(f"RESULT batched_speedup_{learner.replace('-', '_')} {batched / single:.2f}", flush=True)
    if not args.no_av:
        kwargs = dict(dataset=make_dataset("av-digits"), learner="baseline", epochs=args.av_epochs, batch_budget=64)
        batched, single = measure(kwargs, args.runs, single_runs)
        print(f"av-digits (baseline): batched K={args.runs} {batched:.2f} runs/s, single {single:.2f} runs/s{label}")
        print(f"RESULT batched_speedup_av_digits {batched / single:.2f}", flush=True)


if __name__ == "__main__":
    main()
