"""Batched vector environment vs ``gymnasium.vector.SyncVectorEnv`` of single environments.

K = 8 runs of the default environment (synthetic data, Baseline learner, N_B = 64), the
same seeds and the same random actions on both sides; one episode each, timed (process CPU time)
from ``reset`` to the last step (test evaluation included). Repeats alternate the order.

    OMP_NUM_THREADS=1 PYTHONPATH=. nice python benchmarks/vector_env.py
    PYTHONPATH=. python benchmarks/vector_env.py --device cuda      # on a GPU machine

Last line: ``RESULT vector_speedup <SyncVectorEnv time / batched time>``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import gymnasium as gym
import numpy as np
import torch

import mmenv  # noqa: F401  (registers mmenv/DUS-v0)


def episode(envs: gym.vector.VectorEnv, actions: list[np.ndarray], seed: int, cuda: bool = False
            ) -> tuple[float, np.ndarray]:
    # CPU: process time (waiting for a shared core is not the code's cost). CUDA: wall time
    # up to a device synchronisation (kernels run asynchronously).
    clock = time.perf_counter if cuda else time.process_time
    start = clock()
    envs.reset(seed=seed)
    total = np.zeros(envs.num_envs)
    for a in actions:
        _, r, _, _, _ = envs.step(a)
        total += r
    if cuda:
        torch.cuda.synchronize()
    return clock() - start, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cuda = args.device.startswith("cuda")
    k, kw = args.num_envs, dict(epochs=args.epochs, device=args.device)
    batched = gym.make_vec("mmenv/DUS-v0", num_envs=k, vectorization_mode="vector_entry_point", **kw)
    sync = gym.make_vec("mmenv/DUS-v0", num_envs=k, vectorization_mode="sync", **kw)
    rng = np.random.default_rng(0)
    actions = [rng.random((k, 2)).astype(np.float32) for _ in range(args.epochs)]
    samples = k * batched.envs[0].total_iters * batched.envs[0].batch_budget
    print(f"K={k} runs x {args.epochs} epochs x {batched.envs[0].iters_per_epoch} iterations, N_B=64, "
          f"synthetic data, random actions, device {args.device}")

    episode(batched, actions, 0, cuda)  # warm-up
    episode(sync, actions, 0, cuda)
    times: dict[str, list[float]] = {"batched": [], "sync": []}
    for r in range(args.repeats):
        for name in (("batched", "sync") if r % 2 == 0 else ("sync", "batched")):
            t, ret = episode(batched if name == "batched" else sync, actions, seed=r, cuda=cuda)
            times[name].append(t)
            if name == "batched":
                ret_b = ret
            else:
                ret_s = ret
        # Same seeds and actions: both sides train the same K runs.
        assert np.allclose(ret_b, ret_s, atol=1e-3), (ret_b, ret_s)
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:<8}: {med:.3f} s per episode (median of {args.repeats}), {samples / med:8.0f} samples/s")
    print(f"RESULT vector_speedup {statistics.median(times['sync']) / statistics.median(times['batched']):.3f}")


if __name__ == "__main__":
    main()
