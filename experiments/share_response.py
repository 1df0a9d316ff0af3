"""Does the action matter? Fused test accuracy against a fixed share for the weak modality.

For each loss scaling (``"budget"``, ``"mean"``) and fusion input (``"paired"``,
``"zero-fill"``), train the Baseline learner on the synthetic data with the weak
modality's share fixed for the whole run, over several seeds, and print mean ± sample std of
fused and per-modality test accuracy. Also measures the imbalance itself: each
modality's accuracy through the fusion head (other modality zeroed) after fused-only
joint training, against the same encoder and head trained alone.

    python -m mmenv.experiments.share_response --seeds 3 --epochs 5 --out docs/figures

Writes ``share_response.csv`` and ``share_response.png`` to ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import os
from itertools import product
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from mmenv import DUSEnv
from mmenv.datasets import make_synthetic
from mmenv.learners.common import build_optimizer
from mmenv.models import MultimodalModel
from mmenv.results import std_note, summarise

SHARES = (0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9)


def run_fixed_share(ds, share: float, seed: int, epochs: int, **learner_kwargs) -> dict:
    env = DUSEnv(dataset=ds, learner="baseline", learner_kwargs=learner_kwargs, epochs=epochs)
    env.reset(seed=seed)
    action = np.array([1.0 - share, share], dtype=np.float32)
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    return {"env": env, "test": info["test"]}


def fusion_slice_accuracy(env: DUSEnv) -> dict[str, float]:
    """Accuracy of each modality alone through the fusion head (others zero-filled)."""
    # The baseline learner's model and the data set's tensor splits (the Learner and Split
    # protocols do not promise these attributes; this experiment builds them itself).
    learner: Any = env.learner
    model = learner.model
    test: Any = env.dataset.test
    out = {}
    with torch.no_grad():
        for m in env.modalities:
            logits = model.fuse({m: model.encoders[m](test.inputs[m])}, batch=len(test))
            out[m] = float((logits.argmax(1) == test.labels).float().mean())
    return out


def train_alone(ds, modality: str, seed: int, epochs: int, batch: int) -> float:
    """The same encoder and a linear head trained on one modality only (same iterations)."""
    torch.manual_seed(seed)
    spec = next(s for s in ds.modalities if s.name == modality)
    model = MultimodalModel([spec], ds.num_classes, fusion_head=False)
    opt = build_optimizer(model.parameters())
    gen = torch.Generator().manual_seed(seed)
    x, y, n = ds.train.inputs[modality], ds.train.labels, len(ds.train)
    iters = epochs * int(np.ceil(n * len(ds.modalities) / (batch * len(ds.modalities))))
    perm, cursor = torch.randperm(n, generator=gen), 0
    for _ in range(iters):
        if cursor + batch > n:
            perm, cursor = torch.randperm(n, generator=gen), 0
        idx = perm[cursor:cursor + batch]
        cursor += batch
        loss = F.cross_entropy(model.heads[modality](model.encoders[modality](x[idx])), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = model.heads[modality](model.encoders[modality](ds.test.inputs[modality])).argmax(1)
    return float((pred == ds.test.labels).float().mean())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help='seeds per setting (default 3)')
    parser.add_argument("--epochs", type=int, default=5, help='epochs per run (default 5)')
    parser.add_argument("--out", default="docs/figures", help='folder for share_response.csv and .png (default docs/figures)')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    ds = make_synthetic()
    os.makedirs(args.out, exist_ok=True)
    rows: list[dict[str, Any]] = []
    print(f"fused/strong/weak test accuracy, mean ± std; {std_note(args.seeds)}")
    for scale, fusion in product(("budget", "mean"), ("paired", "zero-fill")):
        for share in SHARES:
            res = [run_fixed_share(ds, share, s, args.epochs, loss_scale=scale, fusion_input=fusion)["test"]
                   for s in range(args.seeds)]
            row = {"loss_scale": scale, "fusion_input": fusion, "weak_share": share}
            for who in ("fused", "strong", "weak"):
                acc = [r[who]["accuracy"] for r in res]
                s = summarise(acc)
                row[f"{who}_mean"], row[f"{who}_std"] = s.mean, s.std
            rows.append(row)
            print(f"{scale:6s} {fusion:9s} share {share:.2f}  fused {row['fused_mean']:.3f} ± {row['fused_std']:.3f}"
                  f"  strong {row['strong_mean']:.3f}  weak {row['weak_mean']:.3f}", flush=True)
    with open(os.path.join(args.out, "share_response.csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    print(f"\nImbalance (uniform shares, fused-only joint training vs alone; {std_note(args.seeds)}):")
    for m in ds.modality_names:
        joint = [fusion_slice_accuracy(run_fixed_share(ds, 0.5, s, args.epochs, unimodal_weight=0.0)["env"])[m]
                 for s in range(args.seeds)]
        alone = [train_alone(ds, m, s, args.epochs, 32) for s in range(args.seeds)]
        print(f"  {m:6s} through fusion head after joint training {summarise(joint).format(digits=3)}"
              f"   trained alone {summarise(alone).format(digits=3)}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for scale, fusion in product(("budget", "mean"), ("paired", "zero-fill")):
        sel = [r for r in rows if r["loss_scale"] == scale and r["fusion_input"] == fusion]
        ax.errorbar([r["weak_share"] for r in sel], [r["fused_mean"] for r in sel], [r["fused_std"] for r in sel],
                    marker="o", capsize=3, label=f"loss_scale={scale}, fusion_input={fusion}")
    ax.set_xlabel("share of the batch budget given to the weak modality")
    ax.set_ylabel("fused test accuracy")
    ax.set_title(f"Synthetic data, Baseline learner, {args.epochs} epochs; {std_note(args.seeds)}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(args.out, "share_response.png")
    fig.savefig(path, dpi=120)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
