"""Data sets: the protocol, the built-in generators and loaders, and a name registry.

``make_dataset("synthetic", **kwargs)`` builds a data set by name; ``register_dataset``
adds a user's loader under a new name.
"""

from __future__ import annotations

from typing import Callable

from .base import DatasetError, ModalitySpec, MultimodalDataset, Split, TensorSplit, tensor_dataset
from .synthetic import make_synthetic

__all__ = [
    "DatasetError",
    "ModalitySpec",
    "MultimodalDataset",
    "Split",
    "TensorSplit",
    "tensor_dataset",
    "make_synthetic",
    "make_dataset",
    "register_dataset",
    "DATASETS",
]

DATASETS: dict[str, Callable[..., MultimodalDataset]] = {"synthetic": make_synthetic}


def register_dataset(name: str, builder: Callable[..., MultimodalDataset]) -> None:
    """Register ``builder(**kwargs) -> MultimodalDataset`` under ``name`` (lower-case, hyphens)."""
    DATASETS[name] = builder


def make_dataset(name: str, **kwargs) -> MultimodalDataset:
    """Build the data set registered as ``name`` with ``kwargs``."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {sorted(DATASETS)} (or pass a MultimodalDataset)")
    return DATASETS[name](**kwargs)
