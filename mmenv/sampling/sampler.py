"""Per-modality index sampling with a paired core (design: "unequal batches").

Each iteration modality j gets ``a_j`` indices. The first ``p = min_j a_j`` come from
one shared *paired* stream, so they are the same samples (in the same order) for every
modality; the remaining ``a_j - p`` come from modality j's own stream. Every stream is
a device tensor of indices with a host-side cursor, so sampling never synchronises
with the host: slicing a device tensor with Python ints is asynchronous.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..errors import SampleOrderError
from .order import SampleOrder

PAIRED = "paired"


class _Stream:
    __slots__ = ("key", "order", "perm", "cursor", "perm_epoch")

    def __init__(self, key: str, order: SampleOrder) -> None:
        self.key, self.order = key, order
        self.perm: Tensor | None = None
        self.cursor = 0
        self.perm_epoch = -1

    def take(self, k: int, epoch: int) -> Tensor:
        parts = []
        # Strategies that re-order per epoch (BSS, Remix) start a new pass at the epoch boundary.
        if self.order.restart_each_epoch and self.perm_epoch != epoch:
            self.perm = None
        while k > 0:
            if self.perm is None or self.cursor >= self.perm.shape[0]:
                self.perm = self.order.next_pass(self.key, epoch)
                self.perm_epoch = epoch
                self.cursor = 0
                if self.perm.shape[0] == 0:
                    raise SampleOrderError(f"sample order {self.order.name!r} returned an empty pass for {self.key!r}")
            n = min(k, self.perm.shape[0] - self.cursor)
            parts.append(self.perm[self.cursor:self.cursor + n])
            self.cursor += n
            k -= n
        if not parts:
            return torch.empty(0, dtype=torch.long, device=self.order.device)
        return parts[0] if len(parts) == 1 else torch.cat(parts)


class ModalitySampler:
    """Draws per-modality index batches with a shared paired core."""

    def __init__(self, modalities: Sequence[str], order: SampleOrder) -> None:
        self.modalities = tuple(modalities)
        self.order = order
        self.streams = {key: _Stream(key, order) for key in (PAIRED, *self.modalities)}

    def sample(self, sizes: Sequence[int], epoch: int) -> tuple[int, dict[str, Tensor]]:
        """Return ``(num_paired, {modality: indices})`` for per-modality ``sizes``.

        When the strategy asks for single-modality batches this epoch, there is no
        paired core (``num_paired == 0``) and each modality draws from its own stream.
        """
        p = 0 if self.order.single_modality_batches(epoch) else min(sizes)
        core = self.streams[PAIRED].take(p, epoch)
        out = {}
        for m, a in zip(self.modalities, sizes):
            extra = a - p
            out[m] = torch.cat([core, self.streams[m].take(extra, epoch)]) if extra > 0 else core
        return p, out

    def sample_block(self, sizes: Sequence[int], epoch: int, n: int) -> tuple[int, dict[str, Tensor]]:
        """``n`` iterations at once: ``(num_paired, {modality: indices [n, a_j]})``.

        Exactly the draws of ``n`` successive :meth:`sample` calls: runs of iterations in
        which no stream needs a new pass are sliced in one go (no generator is touched
        there), and every iteration that starts a pass goes through :meth:`sample`, so the
        strategy's ``next_pass`` calls happen in the same order as one call per iteration.
        """
        p = 0 if self.order.single_modality_batches(epoch) else min(sizes)
        demand = {PAIRED: p, **{m: a - p for m, a in zip(self.modalities, sizes)}}
        parts: dict[str, list[Tensor]] = {m: [] for m in self.modalities}
        done = 0
        while done < n:
            k = self._iterations_without_new_pass(demand, epoch, n - done)
            if k == 0:
                _, idx = self.sample(sizes, epoch)
                for m in self.modalities:
                    parts[m].append(idx[m].unsqueeze(0))
                done += 1
                continue
            core = self.streams[PAIRED].take(k * p, epoch).view(k, p)
            for m in self.modalities:
                extra = demand[m]
                parts[m].append(torch.cat([core, self.streams[m].take(k * extra, epoch).view(k, extra)], dim=1)
                                if extra > 0 else core)
            done += k
        return p, {m: (ps[0] if len(ps) == 1 else torch.cat(ps)) for m, ps in parts.items()}

    def _iterations_without_new_pass(self, demand: dict[str, int], epoch: int, cap: int) -> int:
        k = cap
        for key, d in demand.items():
            if d == 0:
                continue
            stream = self.streams[key]
            if stream.perm is None or (self.order.restart_each_epoch and stream.perm_epoch != epoch):
                return 0
            k = min(k, (stream.perm.shape[0] - stream.cursor) // d)
        return k

    def state_dict(self) -> dict:
        return {k: (s.perm, s.cursor, s.perm_epoch) for k, s in self.streams.items()}

    def load_state_dict(self, state: dict) -> None:
        for k, (perm, cursor, *rest) in state.items():
            self.streams[k].perm, self.streams[k].cursor = perm, cursor
            self.streams[k].perm_epoch = rest[0] if rest else -1
