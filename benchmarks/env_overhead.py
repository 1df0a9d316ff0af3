"""Environment overhead: the same training driven by ``env.step`` and by a plain loop.

Both sides train the same model (the Baseline learner's ``MultimodalModel``: one MLP
encoder and one linear head per modality, a concat-fusion head) with the same loss
(fused CE on the paired core + each modality's CE on its whole batch, ``loss_scale``
"budget"), the same SGD settings, the same per-modality batch sizes and the same data
(the default synthetic set held as tensors). The plain loop is what a researcher would
write by hand: shuffled index streams (one shared paired stream plus one per modality),
``index_select`` on the tensors, forward, loss, backward, step, and at the end the
paper's test metrics (accuracy, MAP, macro-F1; fused and per modality) as the
environment reports them. The environment additionally runs the learner protocol (``Batch``/``StepOutput``),
tracks the per-modality discrepancy, the training accuracy and the loss sums, and scores
a probe batch at reset: that is the overhead measured.

Repeats are interleaved in pairs (env then loop, loop then env, ...) so that a busy
shared machine slows both sides alike; the result is the median over pairs of the
throughput ratio within a pair.

    OMP_NUM_THREADS=1 PYTHONPATH=. nice python benchmarks/env_overhead.py

Last line: ``RESULT env_overhead_ratio <env samples/s / loop samples/s>``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch.nn import functional as F

from mmenv import DUSEnv
from mmenv.datasets import make_dataset
from mmenv.metrics import classification_metrics
from mmenv.models.multimodal import MultimodalModel
from mmenv.sampling import allocate

# CPU time of this process: on a machine shared with other jobs, time spent waiting for
# a core is not the code's cost (wall-clock time is printed alongside for reference).
CLOCK = time.process_time


def run_env(env: DUSEnv, action: np.ndarray, seed: int) -> float:
    """One full episode (reset, every step, the final test evaluation); returns seconds."""
    start = CLOCK()
    env.reset(seed=seed)
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    assert info["test"] is not None
    return CLOCK() - start


def run_loop(dataset, sizes: list[int], epochs: int, iters_per_epoch: int, seed: int) -> float:
    """The hand-written training loop; returns seconds (model build to test accuracy)."""
    start = CLOCK()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    train, test = dataset.train, dataset.test
    mods = dataset.modality_names
    model = MultimodalModel(dataset.modalities, dataset.num_classes)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9, weight_decay=1e-4)
    share = sum(sizes) / len(mods)
    n = len(train)
    p = min(sizes)
    streams = {key: [torch.randperm(n, generator=gen), 0] for key in ("paired", *mods)}

    def take(key: str, k: int) -> torch.Tensor:
        perm, cur = streams[key]
        if cur + k > n:  # start a new pass (drop the tail, as a DataLoader with drop_last)
            perm, cur = torch.randperm(n, generator=gen), 0
        streams[key] = [perm, cur + k]
        return perm[cur:cur + k]

    for _ in range(epochs * iters_per_epoch):
        core = take("paired", p)
        idx = {m: torch.cat([core, take(m, a - p)]) if a > p else core for m, a in zip(mods, sizes)}
        feats = {m: model.encoders[m](train.inputs[m].index_select(0, idx[m])) for m in mods}
        loss = F.cross_entropy(model.fusion(torch.cat([feats[m][:p] for m in mods], 1)),
                               train.labels[core], reduction="sum") / share
        for m in mods:
            loss = loss + F.cross_entropy(model.heads[m](feats[m]), train.labels[idx[m]], reduction="sum") / share
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():  # the paper's metrics, fused and per modality, as the env reports
        model.eval()
        feats = model.encode(test.inputs)
        report = {"fused": classification_metrics(model.fuse(feats), test.labels, dataset.num_classes)}
        for m in mods:
            report[m] = classification_metrics(model.heads[m](feats[m]), test.labels, dataset.num_classes)
    assert 0.0 <= report["fused"]["accuracy"] <= 1.0
    return CLOCK() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)  # the environment default
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--batch-budget", type=int, default=64)
    parser.add_argument("--proportions", type=float, nargs="+", default=[0.3, 0.7])
    args = parser.parse_args()
    torch.set_num_threads(1)

    dataset = make_dataset("synthetic")
    env = DUSEnv(dataset=dataset, epochs=args.epochs, batch_budget=args.batch_budget)
    action = np.asarray(args.proportions, dtype=np.float32)
    sizes = allocate(action / action.sum(), args.batch_budget)
    samples = args.batch_budget * env.total_iters
    print(f"synthetic: {len(dataset.train)} train samples, modalities {dataset.modality_names}, "
          f"batch sizes {sizes}, {args.epochs} epochs x {env.iters_per_epoch} iterations")

    run_env(env, action, seed=0)  # warm-up (lazy imports, allocator)
    run_loop(dataset, sizes, args.epochs, env.iters_per_epoch, seed=0)
    env_times, loop_times, ratios = [], [], []
    for r in range(args.repeats):
        times = {}
        for side in (("env", "loop") if r % 2 == 0 else ("loop", "env")):
            if side == "env":
                times[side] = run_env(env, action, seed=r)
            else:
                times[side] = run_loop(dataset, sizes, args.epochs, env.iters_per_epoch, seed=r)
        env_times.append(times["env"])
        loop_times.append(times["loop"])
        ratios.append(times["loop"] / times["env"])  # = env throughput / loop throughput
    for name, times in (("env.step", env_times), ("plain loop", loop_times)):
        med, best = statistics.median(times), min(times)
        print(f"{name:<11}: {samples / med:8.0f} samples/s median, {samples / best:8.0f} best "
              f"({args.repeats} runs of {samples} samples)")
    print(f"paired ratios (env/loop throughput, adjacent runs): "
          f"{' '.join(f'{x:.3f}' for x in ratios)}")
    print(f"ratio of best times: {min(loop_times) / min(env_times):.4f}")
    # The median of the per-pair ratios: each pair ran back to back, so machine-load
    # drifts cancel; the median discards pairs hit by a burst of load.
    print(f"RESULT env_overhead_ratio {statistics.median(ratios):.4f}")

if __name__ == "__main__":
    main()
