"""Variable-length sequences in the data protocol: one padded tensor whose rows carry their lengths.

A modality of kind ``"sequence"`` has shape ``[T, F + 1]`` per sample: up to ``T`` frames of
``F`` features, left-aligned, followed by zero padding, and a last channel that is the
frame-validity mask (1.0 on the sample's real frames, 0.0 on padding). So a batch is
``[B, T, F + 1]`` and its lengths are ``x[..., -1].sum(1)``.

Why the lengths travel inside the rows rather than as a second tensor: everything in the
environment that moves rows — the tensor split's ``index_select`` gather, block sampling of
a whole segment, the paired-core slice ``x[:num_paired]``, Data Remixing masks, evaluation
batches, moving a data set to a device, checkpoints, autocast — then carries the lengths
with no new code path, on the device, without a host synchronisation (a separate lengths
tensor would have to be gathered, sliced and passed alongside the inputs by every one of
them, and by every learner). Encoders read the mask back with :func:`split_sequence`; the
mask is exact in float16 and bfloat16 (0 and 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ..errors import ModelError
from .base import DatasetError

__all__ = ["SEQUENCE_KIND", "pad_sequences", "split_sequence", "sequence_lengths", "unpad_sequences"]

#: ``ModalitySpec.kind`` of padded sequences with a trailing mask channel.
SEQUENCE_KIND = "sequence"


def pad_sequences(sequences: Sequence[np.ndarray], max_frames: int | None = None) -> Tensor:
    """Stack ``[L_i, F]`` arrays into one float32 tensor ``[N, T, F + 1]`` (frames, then the mask).

    ``T`` is ``max_frames`` if given (longer sequences keep their first ``max_frames``
    frames), else the longest sequence. Every sequence needs at least one frame.
    """
    if len(sequences) == 0:
        raise DatasetError("pad_sequences: no sequences given")
    widths = {int(np.asarray(s).shape[1]) if np.asarray(s).ndim == 2 else -1 for s in sequences}
    if len(widths) != 1 or -1 in widths:
        raise DatasetError(f"pad_sequences: every sequence must be [frames, features] with one feature width, "
                           f"got widths {sorted(widths)}")
    lengths = [int(np.asarray(s).shape[0]) for s in sequences]
    if min(lengths) < 1:
        raise DatasetError("pad_sequences: a sequence has no frames; every sample needs at least one")
    if max_frames is not None and max_frames < 1:
        raise DatasetError(f"max_frames must be >= 1 or None, got {max_frames}")
    t = max(lengths) if max_frames is None else int(max_frames)
    f = widths.pop()
    out = np.zeros((len(sequences), t, f + 1), dtype=np.float32)
    for i, s in enumerate(sequences):
        n = min(lengths[i], t)
        out[i, :n, :f] = np.asarray(s, dtype=np.float32)[:n]
        out[i, :n, f] = 1.0
    return torch.from_numpy(out)


def split_sequence(x: Tensor) -> tuple[Tensor, Tensor]:
    """``[B, T, F + 1]`` -> (frames ``[B, T, F]`` with padding zeroed, mask ``[B, T]``)."""
    if x.ndim != 3 or x.shape[-1] < 2:
        raise ModelError(f"a sequence batch is [B, T, F + 1] (frames then a mask channel), got shape {tuple(x.shape)}")
    mask = x[..., -1]
    return x[..., :-1] * mask.unsqueeze(-1), mask


def sequence_lengths(x: Tensor) -> Tensor:
    """Number of valid frames of each row of a ``[B, T, F + 1]`` batch (``LongTensor [B]``, no host sync)."""
    return x[..., -1].sum(dim=-1).round().long()


def unpad_sequences(x: Tensor) -> list[np.ndarray]:
    """The rows of a padded batch as ``[L_i, F]`` NumPy arrays (for inspection and tests)."""
    lengths = sequence_lengths(x).cpu().tolist()
    frames = x[..., :-1].detach().cpu().numpy()
    return [frames[i, :n] for i, n in enumerate(lengths)]
