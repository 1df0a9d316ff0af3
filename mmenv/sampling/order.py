"""Sample-order strategies: which samples each sampling stream visits, in which order.

The sampler keeps one *stream* for the paired core (key ``"paired"``) and one per
modality. When a stream runs out it asks the strategy for its next pass with
:meth:`SampleOrder.next_pass`. The default, :class:`Shuffle`, returns a fresh random
permutation of the whole training split. Curriculum strategies (BSS) return a subset
in a chosen order; strategies that need the model (they score samples) implement
:meth:`on_epoch_start`, which receives a :class:`~mmenv.sampling.scoring.ScoringContext`
(the epoch, the training labels, the tracker's discrepancy, a ``predict`` function),
never the environment itself.

A strategy decides *which* samples and in *which order*; a DUS policy still decides
*how many* per modality (the batch sizes). Any strategy combines with any policy::

    env = DUSEnv(sample_order="bss-curriculum", sample_order_kwargs={"t_grow": 10})

Hooks a strategy may override (all optional):

* ``restart_each_epoch`` (class attribute): ``True`` makes every stream start a new
  pass at each epoch boundary, so an order computed in :meth:`on_epoch_start` takes
  effect at once (the default streams run across epochs).
* :meth:`single_modality_batches`: ``True`` for an epoch whose batches have no paired
  core; every row then carries only its own modality and the environment marks it in
  ``Batch.masks`` (the other modalities are missing, zero-filled in fusion).
* ``uses_masks`` (class attribute): the strategy may return ``True`` above, so the
  learner must honour ``Batch.masks`` (``Learner.supports_masks``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from ..registry import Registry

if TYPE_CHECKING:
    from .scoring import ScoringContext


class SampleOrder:
    """Base class: a fresh shuffle of all ``n`` samples per pass."""

    name = "shuffle"
    #: start a new pass on every stream at each epoch boundary
    restart_each_epoch: bool = False
    #: may produce single-modality (masked) batches; the learner must support masks
    uses_masks: bool = False

    def setup(self, n: int, streams: tuple[str, ...], device: torch.device, generator: torch.Generator) -> None:
        """Called at every ``reset``: ``n`` training samples, stream keys, device, episode generator."""
        self.n = n
        self.streams = streams
        self.device = device
        self.generator = generator

    def on_epoch_start(self, ctx: ScoringContext) -> None:
        """Called by the environment before each epoch ``ctx.epoch``; ``ctx.predict`` scores
        a split with the current model."""

    def next_pass(self, stream: str, epoch: int) -> Tensor:
        """Indices (device ``LongTensor``) the stream visits next, in order."""
        return torch.randperm(self.n, generator=self.generator, device=self.device)

    def single_modality_batches(self, epoch: int) -> bool:
        """Whether ``epoch``'s batches are single-modality (no paired core, rows masked)."""
        return False

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Shuffle(SampleOrder):
    """Default: every stream reshuffles all training samples each pass."""


SAMPLE_ORDERS: Registry = Registry("sample order", "mmenv.sample_orders", instance_of=SampleOrder,
                                   alternative="or pass a SampleOrder object")
SAMPLE_ORDERS.register("shuffle", Shuffle)
# The strategies below subclass SampleOrder, so this module cannot import them; they are
# registered by reference and imported on first use (no circular import).
SAMPLE_ORDERS.register("bss-curriculum", "mmenv.sampling.bss:BSSCurriculum")
SAMPLE_ORDERS.register("bss-learned", "mmenv.sampling.bss:BSSLearned")
SAMPLE_ORDERS.register("remix", "mmenv.sampling.remix:DataRemix")


def register_sample_order(name: str, cls: type[SampleOrder] | str, overwrite: bool = False) -> None:
    """Register a strategy class under ``name`` (usable as ``DUSEnv(sample_order=name)``).

    Installed packages can add strategies through the entry-point group
    ``mmenv.sample_orders`` (see :mod:`mmenv.registry`).
    """
    SAMPLE_ORDERS.register(name, cls, overwrite=overwrite)


def make_sample_order(order: str | SampleOrder, **kwargs: Any) -> SampleOrder:
    """Build a strategy from a registered name (with ``kwargs``) or pass an instance through."""
    return SAMPLE_ORDERS.make(order, **kwargs)
