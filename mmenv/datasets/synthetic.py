"""A synthetic multimodal data set with a controllable modality imbalance.

Modality imbalance shows when one modality is a *fast shortcut* on most samples
while another carries *complementary* information that is slower to learn, under a
limited epoch budget. The generator builds exactly that:

* the **strong** modality (the first one) is linearly separable with a large margin
  (class means scaled by ``strong_snr``) on a fraction ``shortcut_fraction`` of the
  samples and pure noise on the rest, so a linear read-out learns it in a few
  iterations but it can never exceed ``shortcut_fraction + (1 - shortcut_fraction)/C``;
* every **weak** modality is informative on *all* samples but non-linearly: each class
  is a mixture of ``clusters_per_class`` Gaussian clusters in a ``latent_dim`` space,
  embedded in ``dim`` dimensions by a random linear map with isotropic noise. An MLP
  needs many more updates to carve those regions.

Under joint training the strong modality drives the fused loss down early, the
fused gradient reaching the weak encoder shrinks, and the weak modality ends
under-trained; a larger batch share for the weak modality (with ``loss_scale="budget"``)
speeds it up and raises fused accuracy on the samples the shortcut cannot answer.
``docs/synthetic.md`` shows the measured curves.

Every draw comes from one ``numpy.random.Generator`` seeded by ``seed``, so the same
arguments give the same tensors on every machine.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..errors import InvalidArgumentError
from ..validation import check_float, check_int, is_int
from .base import DatasetError, MultimodalDataset, tensor_dataset

__all__ = ["make_synthetic"]


def _strong(rng, labels, means, snr, shortcut, noise):
    n, dim = labels.shape[0], means.shape[1]
    x = rng.normal(0.0, noise, size=(n, dim))
    easy = rng.random(n) < shortcut
    x[easy] += snr * means[labels[easy]]
    return x.astype(np.float32)


def _weak(rng, labels, centres, embed, noise, latent_noise):
    n = labels.shape[0]
    clusters_per_class = centres.shape[1]
    which = rng.integers(0, clusters_per_class, size=n)
    latent = centres[labels, which] + rng.normal(0.0, latent_noise, size=(n, centres.shape[2]))
    x = latent @ embed + rng.normal(0.0, noise, size=(n, embed.shape[1]))
    return x.astype(np.float32)


def make_synthetic(
    num_classes: int = 4,
    num_modalities: int = 2,
    n_train: int = 2000,
    n_val: int = 500,
    n_test: int = 1000,
    dims: Sequence[int] | int = 32,
    shortcut_fraction: float = 0.7,
    strong_snr: float = 3.0,
    clusters_per_class: int = 8,
    latent_dim: int = 4,
    latent_noise: float = 0.25,
    noise: float = 0.3,
    names: Sequence[str] | None = None,
    seed: int = 0,
    strong_position: int = 0,
) -> MultimodalDataset:
    """Generate the imbalanced synthetic data set.

    Args:
        num_classes: C.
        num_modalities: m >= 2; one modality (``strong_position``) is the strong shortcut,
            the rest are weak.
        n_train, n_val, n_test: split sizes (labels are balanced up to rounding).
        dims: input width per modality (one int for all, or one per modality, in
            modality order).
        shortcut_fraction: share of samples on which the strong modality carries the
            label; the rest of its samples are noise. 1.0 removes the complementarity.
        strong_snr: margin of the strong modality's class means on its easy samples.
        clusters_per_class: Gaussian clusters per class in each weak modality (>= 2
            makes the classes non-linearly separable).
        latent_dim: dimension of the weak modalities' cluster space.
        latent_noise: cluster spread; sets the weak modality's noise ceiling.
        noise: isotropic input noise added to every modality.
        names: modality names in modality order; default ``("strong", "weak")`` or
            ``("strong", "weak1", "weak2", ...)`` with ``"strong"`` moved to ``strong_position``.
        seed: generator seed (the data set is a pure function of its arguments).
        strong_position: index of the strong modality in the modality order (default 0,
            the first). The draws do not depend on it: moving the strong modality only
            reorders the modalities, so a policy that must find the weak modality cannot
            rely on its position.
    """
    # Every argument's type and range, before any array is drawn (InvalidArgumentError names it).
    own = "dataset 'synthetic'"
    num_classes = check_int("num_classes", num_classes, minimum=2, owner=own)
    num_modalities = check_int("num_modalities", num_modalities, minimum=2, owner=own)
    n_train = check_int("n_train", n_train, minimum=1, owner=own)
    n_val = check_int("n_val", n_val, minimum=0, owner=own)
    n_test = check_int("n_test", n_test, minimum=1, owner=own)
    clusters_per_class = check_int("clusters_per_class", clusters_per_class, minimum=1, owner=own)
    latent_dim = check_int("latent_dim", latent_dim, minimum=1, owner=own)
    shortcut_fraction = check_float("shortcut_fraction", shortcut_fraction, minimum=0.0, maximum=1.0, owner=own)
    strong_snr = check_float("strong_snr", strong_snr, minimum=0.0, maximum=1e6, owner=own)
    latent_noise = check_float("latent_noise", latent_noise, minimum=0.0, maximum=1e6, owner=own)
    noise = check_float("noise", noise, minimum=0.0, maximum=1e6, owner=own)
    if not is_int(seed) or seed < 0:
        raise InvalidArgumentError(f"{own}: seed must be an int >= 0, got {seed!r}")
    if names is not None and (isinstance(names, (str, bytes)) or not isinstance(names, Sequence)
                              or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names)):
        raise InvalidArgumentError(f"{own}: names must be a list of distinct non-empty strings, got {names!r}")
    if not (is_int(strong_position) and 0 <= strong_position < num_modalities):
        raise DatasetError(f"strong_position must be an index in [0, {num_modalities - 1}], got {strong_position!r}")
    strong_position = int(strong_position)
    if is_int(dims):
        dims = [int(dims)] * num_modalities  # type: ignore[arg-type]
    if isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence) or not all(is_int(d) for d in dims):
        raise InvalidArgumentError(f"{own}: dims must be an int or one int per modality, got {dims!r}")
    dims = [int(d) for d in dims]
    if len(dims) != num_modalities:
        raise DatasetError(f"dims has {len(dims)} entries for {num_modalities} modalities")
    if min(dims) < 1:
        raise InvalidArgumentError(f"{own}: dims must be >= 1 (input width per modality), got {dims}")
    if names is None:
        weak_names = ["weak"] if num_modalities == 2 else [f"weak{i}" for i in range(1, num_modalities)]
        names = weak_names[:strong_position] + ["strong"] + weak_names[strong_position:]
    order = list(names)
    if len(order) != num_modalities:
        raise DatasetError(f"names has {len(order)} entries for {num_modalities} modalities")
    # Generate in role order (strong first: the draws do not depend on strong_position),
    # then lay the modalities out in the requested order.
    role = [strong_position] + [i for i in range(num_modalities) if i != strong_position]
    names = [order[i] for i in role]
    dims = [dims[i] for i in role]

    rng = np.random.default_rng(seed)
    # Class structure, shared by all splits.
    strong_means = rng.normal(0.0, 1.0, size=(num_classes, dims[0]))
    strong_means /= np.linalg.norm(strong_means, axis=1, keepdims=True)
    weak_params = []
    for d in dims[1:]:
        centres = rng.normal(0.0, 1.0, size=(num_classes, clusters_per_class, latent_dim))
        embed = rng.normal(0.0, 1.0 / np.sqrt(latent_dim), size=(latent_dim, d))
        weak_params.append((centres, embed))

    def split(n: int):
        labels = np.arange(n) % num_classes
        rng.shuffle(labels)
        xs = {names[0]: _strong(rng, labels, strong_means, strong_snr, shortcut_fraction, noise)}
        for name, (centres, embed) in zip(names[1:], weak_params):
            xs[name] = _weak(rng, labels, centres, embed, noise, latent_noise)
        return {k: torch.from_numpy(xs[k]) for k in order}, torch.from_numpy(labels).long()

    train, val, test = split(n_train), (split(n_val) if n_val > 0 else None), split(n_test)
    ds = tensor_dataset("synthetic", train, test, val, num_classes=num_classes)
    ds.info.update(
        dict(
            seed=seed,
            shortcut_fraction=shortcut_fraction,
            strong_snr=strong_snr,
            clusters_per_class=clusters_per_class,
            latent_dim=latent_dim,
            latent_noise=latent_noise,
            noise=noise,
            strong_modality=names[0],
            strong_position=strong_position,
        )
    )
    return ds
