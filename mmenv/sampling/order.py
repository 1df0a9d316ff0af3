"""Sample-order strategies: which samples each sampling stream visits, in which order.

The sampler keeps one *stream* for the paired core (key ``"paired"``) and one per
modality. When a stream runs out it asks the strategy for its next pass with
:meth:`SampleOrder.next_pass`. The default, :class:`Shuffle`, returns a fresh random
permutation of the whole training split. Curriculum strategies (BSS) return a subset
in a chosen order; strategies that need the model (they score samples) implement
:meth:`on_epoch_start`.
"""

from __future__ import annotations

import torch
from torch import Tensor


class SampleOrder:
    """Base class: a fresh shuffle of all ``n`` samples per pass."""

    name = "shuffle"

    def setup(self, n: int, streams: tuple[str, ...], device: torch.device, generator: torch.Generator) -> None:
        self.n = n
        self.streams = streams
        self.device = device
        self.generator = generator

    def on_epoch_start(self, epoch: int, env) -> None:
        """Called by the environment before each epoch (``env`` gives learner and data)."""

    def next_pass(self, stream: str, epoch: int) -> Tensor:
        return torch.randperm(self.n, generator=self.generator, device=self.device)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Shuffle(SampleOrder):
    """Default: every stream reshuffles all training samples each pass."""


SAMPLE_ORDERS: dict[str, type[SampleOrder]] = {"shuffle": Shuffle}


def make_sample_order(order) -> SampleOrder:
    if isinstance(order, SampleOrder):
        return order
    if order not in SAMPLE_ORDERS:
        raise ValueError(f"unknown sample_order {order!r}; valid names: {sorted(SAMPLE_ORDERS)} (or a SampleOrder)")
    return SAMPLE_ORDERS[order]()
