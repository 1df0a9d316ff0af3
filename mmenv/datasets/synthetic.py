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

A modality can also be weak for the *opposite* reason: ``noisy_fraction`` corrupts a
fraction of a modality's samples (in every split) — their features are replaced by those of
a random sample of another class (``noisy_mode="swap"``: the modality's evidence points to
a wrong class, label noise seen through that modality) or by pure noise
(``noisy_mode="noise"``: uninformative). Such a modality is not under-trained but
unreliable: giving it more of the batch fits its corrupted samples and takes updates from
the modality that could still learn, so the share that helps goes the other way.

Every draw comes from one ``numpy.random.Generator`` seeded by ``seed``, so the same
arguments give the same tensors on every machine; the corruption draws from a second
generator (seeded by ``seed`` too), so a data set without corruption is exactly the one
the generator gave before the knob existed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..errors import InvalidArgumentError
from ..validation import check_choice, check_float, check_int, is_int
from .base import DatasetError, MultimodalDataset, tensor_dataset

__all__ = ["make_synthetic", "NOISY_MODES"]

#: How ``noisy_fraction`` corrupts a sample of a modality (see :func:`make_synthetic`).
NOISY_MODES = ("swap", "noise")


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


def _corrupt(rng, x, labels, fraction, mode):
    """``x`` with a ``fraction`` of its rows corrupted (the labels are unchanged).

    ``"swap"``: a corrupted row becomes a copy of a random row of another class (drawn from
    the uncorrupted rows of the same split), so it carries confident evidence for a wrong
    class. ``"noise"``: it becomes Gaussian noise with the modality's per-feature mean and
    standard deviation, so it carries no evidence at all.
    """
    n = x.shape[0]
    bad = np.flatnonzero(rng.random(n) < fraction)
    if bad.size == 0:
        return x
    out = x.copy()
    if mode == "noise":
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
        out[bad] = (mean + std * rng.normal(size=(bad.size, x.shape[1]))).astype(x.dtype)
        return out
    num_classes = int(labels.max()) + 1
    by_class = [np.flatnonzero(labels == c) for c in range(num_classes)]
    other = (labels[bad] + rng.integers(1, num_classes, size=bad.size)) % num_classes
    for c in range(num_classes):
        rows = bad[other == c]
        if rows.size and by_class[c].size:
            out[rows] = x[by_class[c][rng.integers(0, by_class[c].size, size=rows.size)]]
    return out


def _noisy_fractions(noisy_fraction, order, own):
    """Per-modality corruption fractions in modality order, each checked to lie in [0, 0.95]."""
    m = len(order)
    if noisy_fraction is None:
        return [0.0] * m
    if isinstance(noisy_fraction, Mapping):
        unknown = [k for k in noisy_fraction if k not in order]
        if unknown:
            raise DatasetError(f"{own}: noisy_fraction names modality {unknown[0]!r}, but the modalities are "
                               f"{order}: use one of those names (or a list, one fraction per modality)")
        values = [noisy_fraction.get(name, 0.0) for name in order]
    elif isinstance(noisy_fraction, (str, bytes)) or not isinstance(noisy_fraction, Sequence):
        raise InvalidArgumentError(f"{own}: noisy_fraction must be a list of one fraction per modality or a "
                                   f"mapping modality name -> fraction, got {noisy_fraction!r}")
    else:
        values = list(noisy_fraction)
        if len(values) != m:
            raise DatasetError(f"{own}: noisy_fraction has {len(values)} entries for {m} modalities {order}")
    return [check_float(f"noisy_fraction[{name}]", v, minimum=0.0, maximum=0.95, owner=own,
                        fix="a fraction of the modality's samples to corrupt (1.0 would leave nothing to learn)")
            for name, v in zip(order, values)]


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
    noisy_fraction: Sequence[float] | Mapping[str, float] | None = None,
    noisy_mode: str = "swap",
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
        noisy_fraction: per-modality share of samples to corrupt, in every split: a list
            of one fraction in ``[0, 0.95]`` per modality (modality order) or a mapping
            ``{name: fraction}`` (modalities not named stay clean). Default: none. Makes a
            modality weak because it is *unreliable*, not slow: more of its batch hurts.
        noisy_mode: ``"swap"`` (a corrupted sample takes the features of a random sample
            of another class: wrong evidence) or ``"noise"`` (Gaussian noise with the
            modality's feature statistics: no evidence).
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
    noisy_mode = check_choice("noisy_mode", noisy_mode, NOISY_MODES, owner=own)
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
    fractions = dict(zip(order, _noisy_fractions(noisy_fraction, order, own)))
    # Generate in role order (strong first: the draws do not depend on strong_position),
    # then lay the modalities out in the requested order.
    role = [strong_position] + [i for i in range(num_modalities) if i != strong_position]
    names = [order[i] for i in role]
    dims = [dims[i] for i in role]

    rng = np.random.default_rng(seed)
    corrupt_rng = np.random.default_rng([seed, 20])   # separate stream: clean data sets are unchanged
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
        for name in order:
            if fractions[name] > 0:
                xs[name] = _corrupt(corrupt_rng, xs[name], labels, fractions[name], noisy_mode)
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
            noisy_fraction=[fractions[k] for k in order],
            noisy_mode=noisy_mode,
        )
    )
    return ds
