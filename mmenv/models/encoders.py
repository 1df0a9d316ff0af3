"""Encoder registry: the default encoder for each input kind, overridable by name.

``build_encoder(spec)`` returns an ``nn.Module`` with an ``out_dim`` attribute that maps
a batch of ``spec.shape`` inputs to ``[B, out_dim]`` features. Feature inputs get an
MLP; spectrograms and frames get ResNet-18 (see :mod:`mmenv.models.resnet`, added with
the media data sets); padded sequences a masked 1-D convolution stack
(:mod:`mmenv.models.sequence`) and small images a small CNN (:mod:`mmenv.models.small_cnn`).
Users register their own with :func:`register_encoder`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..datasets.base import ModalitySpec
from ..errors import RegistryError
from ..registry import Registry
from .mlp import MLPEncoder

ENCODERS: Registry = Registry("encoder", "mmenv.encoders")
DEFAULT_FOR_KIND: dict[str, str] = {"features": "mlp"}


def register_encoder(name: str, builder: Callable[..., nn.Module] | str, default_for_kind: str | None = None,
                     overwrite: bool = False) -> None:
    """Register ``builder(spec, **kwargs) -> nn.Module`` (with ``out_dim``) as ``name``.

    ``default_for_kind`` makes it the encoder of every modality of that input kind.
    Installed packages can add encoders through the entry-point group ``mmenv.encoders``.
    """
    ENCODERS.register(name, builder, overwrite=overwrite)
    if default_for_kind is not None:
        DEFAULT_FOR_KIND[default_for_kind] = ENCODERS.key(name)


def _mlp(spec: ModalitySpec, hidden: tuple[int, ...] = (64,), out_dim: int = 64) -> nn.Module:
    return MLPEncoder(spec.dim, tuple(hidden), out_dim)


register_encoder("mlp", _mlp, default_for_kind="features")


def _resnet_spectrogram(spec: ModalitySpec, width: int = 64) -> nn.Module:
    from .resnet import SpectrogramResNet

    channels = spec.shape[0] if len(spec.shape) == 3 else 1
    return SpectrogramResNet(in_channels=channels, width=width)


def _resnet_frames(spec: ModalitySpec, width: int = 64) -> nn.Module:
    from .resnet import FramesResNet

    channels = spec.shape[-3] if len(spec.shape) >= 3 else 3
    return FramesResNet(in_channels=channels, width=width)


register_encoder("resnet18-spectrogram", _resnet_spectrogram, default_for_kind="spectrogram")
register_encoder("resnet18-frames", _resnet_frames, default_for_kind="frames")

# Padded MFCC-like sequences and small images (the AV-digits data set).
from .sequence import sequence_encoder_from_spec  # noqa: E402
from .small_cnn import image_cnn_from_spec  # noqa: E402

register_encoder("conv1d-sequence", sequence_encoder_from_spec, default_for_kind="sequence")
register_encoder("small-cnn", image_cnn_from_spec, default_for_kind="image")


def build_encoder(spec: ModalitySpec, name: str | None = None, **kwargs) -> nn.Module:
    """Build the encoder ``name`` (default: the one registered for ``spec.kind``)."""
    if name is None:
        if spec.kind not in DEFAULT_FOR_KIND:
            raise RegistryError(
                f"no default encoder for input kind {spec.kind!r} of modality {spec.name!r}; "
                f"known kinds: {sorted(DEFAULT_FOR_KIND)}; pass encoders={{'{spec.name}': <name>}}"
            )
        name = DEFAULT_FOR_KIND[spec.kind]
    return ENCODERS.make(name, spec, **kwargs)
