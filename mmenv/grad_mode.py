"""Autograd on inside the environment, whatever the caller's grad mode."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch

__all__ = ["grad_mode_independent"]

_F = TypeVar("_F", bound=Callable[..., Any])


def grad_mode_independent(fn: _F) -> _F:
    """Run ``fn`` with autograd on, whatever the caller's grad mode.

    Training happens inside ``step`` (and the model is built in ``reset``), so it must not
    depend on whether the caller is under ``torch.no_grad()`` or ``torch.inference_mode()``:
    sb3-contrib's ARS, for one, evaluates its candidate policies (and so steps the
    environment) under ``no_grad``. Inference mode is switched off too, or the parameters
    built in ``reset`` would be inference tensors that autograd refuses.
    """
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with torch.inference_mode(False), torch.enable_grad():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
