"""AV-digits: imbalance, response to a fixed share, and headroom over uniform sampling.

For each condition (clean data or a degradation) this measures:

* **alone**: each modality's encoder and a linear head trained on that modality only, for
  the iterations of a joint run (``mmenv.experiments.share_response.train_alone``);
* **joint**: after joint training at uniform shares, each modality's accuracy through the
  fusion head when the Baseline learner is trained fused-only (``unimodal_weight=0``) and
  through its own unimodal head with the Baseline's default losses;
* **share response**: fused test accuracy of Baseline, OGM-GE and MLA with the image
  modality's share of the batch budget fixed for the whole run, at several shares;
* **headroom**: the best fixed share minus uniform (share 0.5), paired over seeds, with a
  95 % t-interval. The best share is chosen on mean *validation* accuracy and scored on the
  test split, so the selection does not ride on the test noise it reports.

    python -m mmenv.experiments.av_digits_study --seeds 3 --epochs 3 --out docs/figures

Rows are appended to ``av_digits_runs.csv`` as runs finish and a rerun skips the rows it
finds, so a cut run continues. The summary is printed and ``av_digits_share.png`` drawn.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time

import numpy as np
import torch
from mmenv.experiments.share_response import fusion_slice_accuracy, train_alone
from mmenv.experiments.stats import paired_ci

from mmenv import DUSEnv
from mmenv.datasets import make_av_digits
from mmenv.results import std_note, summarise

CONDITIONS: dict[str, dict] = {
    "clean": {},
    "audio-noise": {"audio_noise": 2.0},
    "image-noise": {"image_noise": 0.5},
    "audio-drop": {"audio_frame_drop": 0.5},
    "image-occlusion": {"image_occlusion": 4},
    "both-noise": {"audio_noise": 2.0, "image_noise": 0.5},
}
FIELDS = ["condition", "kind", "learner", "image_share", "seed", "val_fused", "test_fused", "test_audio",
          "test_image", "seconds"]


def run_episode(ds, learner: str, image_share: float, seed: int, epochs: int, batch_budget: int,
                **learner_kwargs) -> tuple[DUSEnv, dict]:
    env = DUSEnv(dataset=ds, learner=learner, epochs=epochs, batch_budget=batch_budget,
                 learner_kwargs=learner_kwargs or None)
    env.reset(seed=seed)
    action = np.array([1.0 - image_share, image_share], dtype=np.float32)
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
    return env, info


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per setting (default 3)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (default 3)")
    parser.add_argument("--batch-budget", type=int, default=64, help="N_B (default 64)")
    parser.add_argument("--learners", default="baseline,ogm-ge,mla", help="comma-separated learners")
    parser.add_argument("--shares", default="0.2,0.35,0.5,0.65,0.8", help="image shares to fix (must include 0.5)")
    parser.add_argument("--conditions", default="clean,audio-noise,image-noise,both-noise",
                        help=f"comma-separated presets of {sorted(CONDITIONS)} or NAME=JSON kwargs")
    parser.add_argument("--out", default="docs/figures", help="folder for the CSV and the plot")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    shares = [float(s) for s in args.shares.split(",")]
    if 0.5 not in shares:
        parser.error("--shares must include 0.5 (uniform), the reference of the headroom")
    conditions = {}
    for item in args.conditions.split(","):
        name, _, kw = item.partition("=")
        if kw:
            conditions[name] = json.loads(kw)
        elif name in CONDITIONS:
            conditions[name] = CONDITIONS[name]
        else:
            parser.error(f"unknown condition {name!r}; presets: {sorted(CONDITIONS)} or NAME=JSON")
    learners = args.learners.split(",")
    seeds = range(args.seeds)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "av_digits_runs.csv")
    rows: list[dict] = []
    if os.path.exists(path):
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    done = {(r["condition"], r["kind"], r["learner"], float(r["image_share"]), int(r["seed"])) for r in rows}
    new_file = not os.path.exists(path)
    fh = open(path, "a", newline="")
    writer = csv.DictWriter(fh, fieldnames=FIELDS)
    if new_file:
        writer.writeheader()

    def record(row: dict) -> None:
        writer.writerow(row)
        fh.flush()
        rows.append({k: str(v) for k, v in row.items()})

    for cond, kwargs in conditions.items():
        ds = make_av_digits(**kwargs)
        iters = DUSEnv(dataset=ds, epochs=args.epochs, batch_budget=args.batch_budget).iters_per_epoch
        for seed in seeds:
            for m in ds.modality_names:
                if (cond, f"alone-{m}", "-", 1.0, seed) not in done:
                    start = time.time()
                    acc = train_alone(ds, m, seed, args.epochs, args.batch_budget // 2)
                    record(dict(condition=cond, kind=f"alone-{m}", learner="-", image_share=1.0, seed=seed,
                                val_fused="", test_fused="", test_audio=acc if m == "audio" else "",
                                test_image=acc if m == "image" else "", seconds=round(time.time() - start, 2)))
            if (cond, "fused-only", "baseline", 0.5, seed) not in done:
                start = time.time()
                env, _ = run_episode(ds, "baseline", 0.5, seed, args.epochs, args.batch_budget, unimodal_weight=0.0)
                sl = fusion_slice_accuracy(env)
                record(dict(condition=cond, kind="fused-only", learner="baseline", image_share=0.5, seed=seed,
                            val_fused=env.evaluate("val")["fused"]["accuracy"], test_fused="",
                            test_audio=sl["audio"], test_image=sl["image"], seconds=round(time.time() - start, 2)))
        for learner in learners:
            for share in shares:
                for seed in seeds:
                    if (cond, "share", learner, share, seed) in done:
                        continue
                    start = time.time()
                    env, info = run_episode(ds, learner, share, seed, args.epochs, args.batch_budget)
                    test = info["test"]
                    record(dict(condition=cond, kind="share", learner=learner, image_share=share, seed=seed,
                                val_fused=env.evaluate("val")["fused"]["accuracy"],
                                test_fused=test["fused"]["accuracy"], test_audio=test["audio"]["accuracy"],
                                test_image=test["image"]["accuracy"], seconds=round(time.time() - start, 2)))
                    print(f"{cond:12s} {learner:9s} share {share:.2f} seed {seed}: fused "
                          f"{test['fused']['accuracy']:.3f} audio {test['audio']['accuracy']:.3f} image "
                          f"{test['image']['accuracy']:.3f} ({time.time() - start:.1f} s)", flush=True)
        print(f"({cond}: {iters} iterations per epoch)")
    fh.close()
    # The CSV may hold more seeds (a larger earlier run): summarise exactly the seeds asked for.
    rows = [r for r in rows if int(r["seed"]) < args.seeds]
    summarize(rows, list(conditions), learners, shares, seeds, args)


def _vals(rows, key, **match) -> np.ndarray:
    sel = [r for r in rows if all(str(r[k]) == str(v) for k, v in match.items())]
    sel.sort(key=lambda r: int(r["seed"]))
    return np.array([float(r[key]) for r in sel])


def summarize(rows, conditions, learners, shares, seeds, args) -> None:
    n = len(seeds)
    print(f"\nImbalance ({args.epochs} epochs, N_B {args.batch_budget}, seeds 0-{n - 1}; {std_note(n)}):")
    for cond in conditions:
        parts = []
        for m in ("audio", "image"):
            alone = _vals(rows, f"test_{m}", condition=cond, kind=f"alone-{m}")
            joint = _vals(rows, f"test_{m}", condition=cond, kind="fused-only")
            head = _vals(rows, f"test_{m}", condition=cond, kind="share", learner="baseline", image_share=0.5)
            alone_s, joint_s, head_s = (summarise(v).format(digits=3) for v in (alone, joint, head))
            parts.append(f"{m}: alone {alone_s}, fusion slice (fused-only) {joint_s}, unimodal head (baseline) {head_s}")
        print(f"  {cond}: " + " | ".join(parts))
    print("\nFused test accuracy against the image share (mean over seeds) and headroom "
          "(best share on val minus uniform, test, paired 95% CI):")
    for cond in conditions:
        for learner in learners:
            means = {s: _vals(rows, "test_fused", condition=cond, kind="share", learner=learner, image_share=s)
                     for s in shares}
            vals = {s: _vals(rows, "val_fused", condition=cond, kind="share", learner=learner, image_share=s)
                    for s in shares}
            best = max(shares, key=lambda s: vals[s].mean())
            diff, _, hi = paired_ci(means[best], means[0.5])
            half = hi - diff
            best_t = max(shares, key=lambda s: means[s].mean())
            diff_t, _, hi_t = paired_ci(means[best_t], means[0.5])
            half_t = hi_t - diff_t
            curve = "  ".join(f"{s:.2f}:{means[s].mean():.3f}" for s in shares)
            print(f"  {cond:12s} {learner:9s} {curve}  | val-best {best:.2f}: {100 * diff:+.1f} ± {100 * half:.1f} pt"
                  f"  | test-best {best_t:.2f}: {100 * diff_t:+.1f} ± {100 * half_t:.1f} pt")
    plot(rows, conditions, learners, shares, args)


def plot(rows, conditions, learners, shares, args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(conditions), figsize=(4.2 * len(conditions), 3.6), squeeze=False)
    for ax, cond in zip(axes[0], conditions):
        for learner in learners:
            m = [_vals(rows, "test_fused", condition=cond, kind="share", learner=learner, image_share=s) for s in shares]
            ax.errorbar(shares, [v.mean() for v in m], [summarise(v).std for v in m], marker="o", capsize=3,
                        label=learner)
        ax.set_title(cond)
        ax.set_xlabel("image share of the batch budget")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("fused test accuracy")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"AV-digits, {args.epochs} epochs, N_B {args.batch_budget}, seeds 0-{args.seeds - 1}; "
                 f"whiskers: sample std over {args.seeds} seeds")
    fig.tight_layout()
    out = os.path.join(args.out, "av_digits_share.png")
    fig.savefig(out, dpi=110)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
