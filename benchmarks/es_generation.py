"""ES generations on the batched engine: one generation's runs trained together vs one at a time.

One generation of :mod:`mmenv.agents.es` is ``2 x population`` runs of the same instance,
each played by a deterministic per-modality policy on the per-modality (``"modal"``)
observation: the batched path plays them with :func:`mmenv.engine.play_batch` and rebuilds
each run's observation with :class:`mmenv.agents.observed.ObservedPolicy`; the single path
plays each run in ``mmenv/DUSBench-v0`` (the wrapper). Both in this process, one thread,
measured in CPU time of this process (time spent waiting for a core on a shared machine is
not the code's cost), after a warm-up generation.

    OMP_NUM_THREADS=1 PYTHONPATH=. nice python benchmarks/es_generation.py

Lines ``RESULT es_generation_speedup_<instance> <x>`` (runs per CPU-second, batched / single)
and ``RESULT es_generation_cpu_s_<instance>_<path> <s>`` (CPU seconds per run).
"""

from __future__ import annotations

import argparse
import time

import torch
from mmenv.agents.es import _play_generation
from mmenv.agents.reinforce import ReinforcePolicy
from mmenv.agents.rollouts import RolloutWorker
from mmenv.experiments.instances import load_instance_set

CLOCK = time.process_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=8, help="directions per generation (runs: 2x)")
    parser.add_argument("--instances", default="ogm-s51-p0,mla-s65-p1,ogm-m3-s56-p1",
                        help="instances of the direction set")
    args = parser.parse_args()
    torch.set_num_threads(1)
    by = {i.name: i for i in load_instance_set("direction").train}
    for name in args.instances.split(","):
        worker = RolloutWorker([by[name]], "modal", "val-acc-gain", one_thread=True)
        env = worker.env(0)
        policy = ReinforcePolicy(seed=0, mode="episodic", policy="equivariant", hidden=0, contrast=True,
                                 init_concentration=1.0)
        policy.build(len(env.get_wrapper_attr("modalities")), int(env.observation_space.shape[0]))
        config = {k: v for k, v in policy.config.__dict__.items()}
        gen = torch.Generator().manual_seed(0)
        net = policy.net
        assert net is not None
        weights = []
        for _ in range(2 * args.population):
            with torch.no_grad():
                for p in net.parameters():
                    p.add_(0.5 * torch.randn(p.shape, generator=gen))
            weights.append({k: v.clone() for k, v in net.state_dict().items()})
        seeds = [1000 + i // 2 for i in range(2 * args.population)]
        _play_generation(worker, None, config, weights[:2], 0, seeds[:2], True, 1)     # warm-up
        _play_generation(worker, None, config, weights[:2], 0, seeds[:2], False, 1)
        times = {}
        for path, batched in (("batched", True), ("single", False)):
            start = CLOCK()
            _play_generation(worker, None, config, weights, 0, seeds, batched, 1)
            times[path] = (CLOCK() - start) / len(weights)
        tag = name.replace("-", "_")
        for path, t in times.items():
            print(f"RESULT es_generation_cpu_s_{tag}_{path} {t:.3f}", flush=True)
        print(f"RESULT es_generation_speedup_{tag} {times['single'] / times['batched']:.2f}", flush=True)
        worker.close()


if __name__ == "__main__":
    main()
