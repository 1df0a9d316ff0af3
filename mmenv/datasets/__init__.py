"""Data sets: the protocol, the built-in generators and loaders, and a name registry.

``make_dataset("synthetic", **kwargs)`` builds a data set by name; ``register_dataset``
adds a user's loader under a new name.
"""

from __future__ import annotations

from collections.abc import Callable

from ..registry import Registry
from .av_digits import make_av_digits
from .base import DatasetError, ModalitySpec, MultimodalDataset, Split, TensorSplit, tensor_dataset
from .crema_d import make_crema_d
from .features import make_features
from .image_text import make_sarcasm, make_twitter2015
from .kinetics_sounds import make_kinetics_sounds
from .nvgesture import make_nvgesture
from .synthetic import make_synthetic
from .uci_mfeat import DEFAULT_VIEWS as UCI_DEFAULT_VIEWS
from .uci_mfeat import make_uci_mfeat

__all__ = [
    "DatasetError",
    "ModalitySpec",
    "MultimodalDataset",
    "Split",
    "TensorSplit",
    "tensor_dataset",
    "make_synthetic",
    "make_uci_mfeat",
    "make_crema_d",
    "make_kinetics_sounds",
    "make_twitter2015",
    "make_sarcasm",
    "make_nvgesture",
    "make_features",
    "make_av_digits",
    "make_dataset",
    "register_dataset",
    "DATASETS",
]

DATASETS: Registry = Registry("dataset", "mmenv.datasets", instance_of=MultimodalDataset,
                              alternative="or pass a MultimodalDataset")
_BUILT_IN: dict[str, Callable[..., MultimodalDataset]] = {
    "synthetic": make_synthetic,
    "uci-mfeat": make_uci_mfeat,
    "crema-d": make_crema_d,
    "kinetics-sounds": make_kinetics_sounds,
    "twitter2015": make_twitter2015,
    "sarcasm": make_sarcasm,
    "nvgesture": make_nvgesture,
    "features": make_features,
    "av-digits": make_av_digits,
}


def _count_synthetic(kwargs: dict) -> int | None:
    names = kwargs.get("names")
    return len(names) if names is not None else kwargs.get("num_modalities", 2)


def _count_named(key: str, default: int | None) -> Callable[[dict], int | None]:
    def count(kwargs: dict) -> int | None:
        value = kwargs.get(key)
        return default if value is None else len(value)
    return count


# How many modalities each built-in builder gives for its keyword arguments, told without
# building the data (mmenv.env_args checks batch_budget >= m * min_batch with it).
_MODALITY_COUNTS: dict[str, Callable[[dict], int | None]] = {
    "synthetic": _count_synthetic,
    "uci-mfeat": _count_named("views", len(UCI_DEFAULT_VIEWS)),
    "features": _count_named("modalities", None),
    "nvgesture": lambda kwargs: 3,
    **{name: (lambda kwargs: 2) for name in ("crema-d", "kinetics-sounds", "twitter2015", "sarcasm", "av-digits")},
}
for _name, _builder in _BUILT_IN.items():
    _builder.modality_count = _MODALITY_COUNTS[_name]  # type: ignore[attr-defined]
    DATASETS.register(_name, _builder)


def register_dataset(name: str, builder: Callable[..., MultimodalDataset], overwrite: bool = False) -> None:
    """Register ``builder(**kwargs) -> MultimodalDataset`` under ``name`` (case-insensitive).

    Installed packages can add data sets without code through the entry-point group
    ``mmenv.datasets`` (see :mod:`mmenv.registry`).
    """
    DATASETS.register(name, builder, overwrite=overwrite)


def make_dataset(name: str, **kwargs) -> MultimodalDataset:
    """Build the data set registered as ``name`` with ``kwargs`` (checked against the builder's arguments)."""
    return DATASETS.make(name, **kwargs)
