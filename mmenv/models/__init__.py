"""Encoders and the multimodal model (encoders + unimodal heads + fusion head)."""

from .encoders import ENCODERS, build_encoder, register_encoder
from .mlp import MLPEncoder
from .multimodal import MultimodalModel

__all__ = ["ENCODERS", "build_encoder", "register_encoder", "MLPEncoder", "MultimodalModel"]
