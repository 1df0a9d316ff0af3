"""The multimodal classifier most learners share.

``encoders[m]`` (psi_m) maps modality m to features, ``heads[m]`` (phi_m) is that
modality's unimodal classifier, and ``fusion`` is a linear head on the concatenated
features (concat fusion). A modality absent from a sample is represented by zeros in
the concatenation (used when the fusion head sees unpaired samples).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from ..datasets.base import ModalitySpec
from ..errors import LearnerError
from .encoders import build_encoder


class MultimodalModel(nn.Module):
    def __init__(
        self,
        specs: Sequence[ModalitySpec],
        num_classes: int,
        encoders: Mapping[str, str] | None = None,
        encoder_kwargs: Mapping[str, dict] | None = None,
        unimodal_heads: bool = True,
        fusion_head: bool = True,
    ) -> None:
        super().__init__()
        encoders = dict(encoders or {})
        encoder_kwargs = dict(encoder_kwargs or {})
        self.modalities = tuple(s.name for s in specs)
        for what, given in (("encoders", encoders), ("encoder_kwargs", encoder_kwargs)):
            unknown = sorted(set(given) - set(self.modalities))
            if unknown:  # a misspelt modality would otherwise leave its encoder at the default
                raise LearnerError(f"{what} names modalities {unknown} that the data set does not have; its "
                                   f"modalities are {list(self.modalities)}")
        self.encoders = nn.ModuleDict(
            {s.name: build_encoder(s, encoders.get(s.name), **encoder_kwargs.get(s.name, {})) for s in specs}
        )
        # Every encoder declares its feature width as ``out_dim`` (see models/encoders.py).
        self.feature_dims = {m: int(cast(Any, self.encoders[m]).out_dim) for m in self.modalities}
        self.heads = nn.ModuleDict(
            {m: nn.Linear(d, num_classes) for m, d in self.feature_dims.items()} if unimodal_heads else {}
        )
        self.fusion = nn.Linear(sum(self.feature_dims.values()), num_classes) if fusion_head else None
        self.num_classes = num_classes

    def encode(self, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return {m: self.encoders[m](x) for m, x in inputs.items()}

    def fuse(self, features: Mapping[str, Tensor], batch: int | None = None) -> Tensor:
        """Concat-fusion logits; modalities missing from ``features`` are zero-filled."""
        if self.fusion is None:
            # internal invariant: learners built without a head never fuse
            raise RuntimeError("this model was built without a fusion head")
        if batch is None:
            batch = next(iter(features.values())).shape[0]
        ref = next(iter(features.values()))
        parts = [
            features[m] if m in features else ref.new_zeros(batch, self.feature_dims[m]) for m in self.modalities
        ]
        return self.fusion(torch.cat(parts, dim=1))


class SharedHeadModel(MultimodalModel):
    """Per-modality encoders feeding one classifier ``head`` shared by every modality, with no
    unimodal or fusion heads (the model MLA and DI-MML train). Every encoder must output the
    same feature width (``check_width`` raises with the fix otherwise)."""

    def __init__(self, specs: Sequence[ModalitySpec], num_classes: int, encoders: Mapping[str, str] | None,
                 encoder_kwargs: Mapping[str, dict] | None, learner: str) -> None:
        super().__init__(specs, num_classes, encoders, encoder_kwargs, unimodal_heads=False, fusion_head=False)
        self.head = nn.Linear(require_equal_feature_dims(self.feature_dims, learner), num_classes)


def require_equal_feature_dims(feature_dims: Mapping[str, int], learner: str) -> int:
    """A shared head needs one feature width for all modalities; return it or raise."""
    dims = set(feature_dims.values())
    if len(dims) != 1:
        raise LearnerError(
            f"learner {learner!r} uses one classifier head shared by all modalities, so every encoder must "
            f"output the same feature width; got {dict(feature_dims)}. Pass encoder_kwargs with equal out_dim."
        )
    return dims.pop()
