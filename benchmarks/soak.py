"""Soak test: many episodes back to back; resident memory and open files must stay flat.

One environment (synthetic data, the baseline learner, real training) runs ``--episodes``
episodes in a row, driven by the online REINFORCE agent (it learns every step, as in
Algorithm 1), with TensorBoard logging on and an atomic checkpoint written after every
step. After each episode it prints the process's resident memory (psutil if installed,
else ``/proc/self/statm``) and its number of open file descriptors (``/proc/self/fd``).
The first few episodes warm up allocator pools and lazily imported modules, so growth
is measured from episode 5 to the last::

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/soak.py            # 50 episodes
    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/soak.py --no-tb --no-checkpoint

Last lines: ``RESULT soak_rss_growth_mb <MB>`` (bar: < 50) and ``RESULT soak_fd_growth <n>``.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mmenv import DUSEnv  # noqa: E402
from mmenv.datasets import make_synthetic  # noqa: E402

RSS_BAR_MB = 50.0
WARMUP = 5


def rss_mb() -> float:
    """Resident set size of this process in MiB."""
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20


def open_fds() -> int:
    """Open file descriptors of this process (Linux)."""
    return len(os.listdir("/proc/self/fd"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per episode (steps: one per epoch)")
    parser.add_argument("--n-train", type=int, default=512)
    parser.add_argument("--no-tb", action="store_true", help="TensorBoard logging off")
    parser.add_argument("--no-checkpoint", action="store_true", help="no checkpoint after each step")
    parser.add_argument("--no-agent", action="store_true", help="random proportions instead of REINFORCE")
    parser.add_argument("--fresh-env", action="store_true",
                        help="build (and close) a new environment for every episode, as a sweep does")
    args = parser.parse_args(argv)
    if args.episodes <= WARMUP:
        parser.error(f"--episodes must exceed the {WARMUP} warm-up episodes")
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory(prefix="mmenv-soak-") as work:
        work_dir = Path(work)
        data = make_synthetic(n_train=args.n_train, n_val=128, n_test=256, seed=0)

        def build_env(episode: int) -> DUSEnv:
            log_dir = None if args.no_tb else str(work_dir / "tb" / (f"run{episode}" if args.fresh_env else "run"))
            return DUSEnv(dataset=data, epochs=args.epochs, batch_budget=32, log_dir=log_dir)

        env = build_env(0)
        policy = None
        if not args.no_agent:
            from mmenv.agents import ReinforcePolicy

            policy = ReinforcePolicy(seed=0, log_dir=None if args.no_tb else str(work_dir / "tb-agent"))
        rng = np.random.default_rng(0)
        ckpt = work_dir / "env.ckpt"
        print(f"soak: {args.episodes} episodes x {args.epochs} steps, {env.iters_per_epoch} iterations/epoch, "
              f"TensorBoard {'off' if args.no_tb else 'on'}, checkpoint {'off' if args.no_checkpoint else 'every step'}, "
              f"agent {'random' if policy is None else 'REINFORCE (online)'}, "
              f"{'a new environment per episode' if args.fresh_env else 'one environment'}")
        rss, fds = [], []
        start = time.perf_counter()
        for episode in range(args.episodes):
            if args.fresh_env and episode > 0:
                env.close()
                env = build_env(episode)
            obs, _ = env.reset(seed=episode)
            if policy is not None:
                policy.reset(env)
            done = False
            while not done:
                action = policy.act(obs) if policy is not None else rng.dirichlet(np.ones(2))
                next_obs, reward, terminated, truncated, info = env.step(action)
                if policy is not None:
                    policy.update(obs, action, reward, next_obs, terminated, truncated, info)
                if not args.no_checkpoint:
                    extra = {"policy": policy.state_dict()} if policy is not None else None
                    from mmenv.checkpoint import save_env_checkpoint

                    save_env_checkpoint(env, ckpt, extra=extra)
                obs, done = next_obs, terminated or truncated
            gc.collect()
            rss.append(rss_mb())
            fds.append(open_fds())
            acc = info["test"]["fused"]["accuracy"] if info.get("test") else float("nan")
            print(f"episode {episode + 1:3d}  rss_mb {rss[-1]:8.1f}  open_fds {fds[-1]:4d}  test_acc {acc:.3f}",
                  flush=True)
        elapsed = time.perf_counter() - start
        env.close()
        if policy is not None:
            policy.close()
    growth = rss[-1] - rss[WARMUP - 1]
    fd_growth = fds[-1] - fds[WARMUP - 1]
    print(f"episodes {args.episodes} in {elapsed:.1f} s; rss episode {WARMUP}: {rss[WARMUP - 1]:.1f} MB, "
          f"last: {rss[-1]:.1f} MB, max: {max(rss):.1f} MB; open fds episode {WARMUP}: {fds[WARMUP - 1]}, "
          f"last: {fds[-1]}")
    print(f"RESULT soak_rss_growth_mb {growth:.1f}")
    print(f"RESULT soak_fd_growth {fd_growth}")
    ok = growth < RSS_BAR_MB and fd_growth <= 0
    print("PASS" if ok else f"FAIL (bar: rss growth < {RSS_BAR_MB} MB, no fd growth)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
