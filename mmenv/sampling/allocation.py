"""Eq. 4: from the policy's proportions to integer per-modality batch sizes.

``action_to_proportions`` validates a raw action and normalises it to sum 1;
``allocate`` turns proportions into sizes that sum *exactly* to the budget N_B with
the largest-remainder method. The edges, decided once and documented here:

* **Shape / dtype**: the action must be a real array of shape ``(m,)``; anything else
  (wrong length, complex, strings) raises ``ValueError``.
* **NaN or inf**: raise ``ValueError`` (a policy that emits them is broken; silently
  replacing them would hide it).
* **Action spaces** (``space``): ``"unit"`` (the paper's: ``[0, 1]`` proportions,
  normalised), ``"symmetric"`` (``[-1, 1]``, mapped by ``(a + 1) / 2``, then normalised) and
  ``"softmax"`` (``[-1, 1]`` logits: ``p = softmax(scale * a)``; with the default scale
  ``ln(20) / 2`` no batch share is more than 20 times another, so no modality can be starved,
  and the zero action is uniform).
* **Bounds**: values must lie in the action space (``[0, 1]``, or ``[-1, 1]`` for the
  symmetric and softmax spaces). Overshoots up to ``tol`` (default 1e-6, float32 rounding in a
  policy's squashing) are clipped to the bound; larger ones raise ``ValueError``.
* **All zeros** (after mapping to ``[0, 1]``): treated as "no preference" -> uniform
  N_B/m each.
* **A modality at 0**: allowed as a proportion, but every modality keeps at least
  ``min_size`` samples (default 1) so its discrepancy stays defined; the samples
  are taken from the largest batch.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import InvalidArgumentError, MMEnvError

__all__ = ["action_to_proportions", "proportions_to_action", "allocate", "ActionError", "ACTION_SPACES",
           "SOFTMAX_SCALE"]

ACTION_SPACES = ("unit", "symmetric", "softmax")
# exp(2 * scale) = 20: the largest ratio of two batch shares the softmax space can express.
# With N_B = 64 and two modalities the smaller share is then >= 64/21 ~ 3 rows, and a fresh
# Gaussian policy (std 1, clipped to [-1, 1]) cannot starve a modality.
SOFTMAX_SCALE = math.log(20.0) / 2.0


class ActionError(MMEnvError, ValueError):
    """An action the environment cannot turn into batch sizes."""


def _space(symmetric: bool, space: str | None) -> str:
    space = space if space is not None else ("symmetric" if symmetric else "unit")
    if space not in ACTION_SPACES:
        raise InvalidArgumentError(f"unknown action space {space!r}; valid: {list(ACTION_SPACES)}")
    return space


def action_to_proportions(action, num_modalities: int, symmetric: bool = False, tol: float = 1e-6, *,
                          space: str | None = None, softmax_scale: float = SOFTMAX_SCALE) -> np.ndarray:
    """Validate ``action`` and return proportions (float64, non-negative, sum 1).

    ``space`` names the action space (``"unit"``, ``"symmetric"``, ``"softmax"``); when
    not given, ``symmetric`` chooses between the first two (the older spelling).
    """
    space = _space(symmetric, space)
    try:
        a = np.asarray(action)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise ActionError(f"action could not be read as an array: {exc}") from exc
    if a.dtype == object or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
                                 or a.dtype == np.bool_):
        raise ActionError(f"action must be a real-valued array, got dtype {a.dtype}")
    if not (a.shape == (num_modalities,) or a.shape == (1, num_modalities)):
        raise ActionError(
            f"action must have shape ({num_modalities},) (one proportion per modality), got {np.shape(action)}"
        )
    a = a.astype(np.float64).reshape(-1)
    if not np.all(np.isfinite(a)):
        raise ActionError(f"action contains NaN or inf: {a.tolist()}")
    lo = 0.0 if space == "unit" else -1.0
    if np.any(a < lo - tol) or np.any(a > 1.0 + tol):
        raise ActionError(
            f"action {a.tolist()} lies outside the action space [{lo}, 1]; "
            f"clip it (or use a policy whose outputs are squashed into the space)"
        )
    a = np.clip(a, lo, 1.0)
    if space == "softmax":
        z = softmax_scale * (a - a.max())
        e = np.exp(z)
        return e / e.sum()
    if space == "symmetric":
        a = (a + 1.0) / 2.0
    total = a.sum()
    if total <= 0.0:
        return np.full(num_modalities, 1.0 / num_modalities)
    return a / total


def proportions_to_action(proportions, space: str = "unit", softmax_scale: float = SOFTMAX_SCALE) -> np.ndarray:
    """The action of ``space`` whose proportions are ``proportions`` (float32).

    Exact for the unit and symmetric spaces. For ``"softmax"``: centred logits
    ``log(p) / scale``; shares further apart than the space can express (a ratio above
    ``exp(2 * scale)``) are clipped to its bounds, i.e. moved towards each other.
    """
    space = _space(False, space)
    p = np.asarray(proportions, dtype=np.float64).reshape(-1)
    if space == "unit":
        return p.astype(np.float32)
    if space == "symmetric":
        return (p * 2.0 - 1.0).astype(np.float32)
    logp = np.log(np.clip(p / max(p.sum(), 1e-300), 1e-12, None))
    centre = (logp.max() + logp.min()) / 2.0
    return np.clip((logp - centre) / softmax_scale, -1.0, 1.0).astype(np.float32)


def allocate(proportions: np.ndarray, budget: int, min_size: int = 1) -> list[int]:
    """Integer sizes ``a_j ~= budget * p_j`` with ``sum(a) == budget`` and ``a_j >= min_size``.

    Largest remainder: floor every share, then give the leftover samples one at a time
    to the largest fractional parts (ties go to the lower modality index). Then any
    modality under ``min_size`` is topped up from the currently largest batch.
    """
    p = np.asarray(proportions, dtype=np.float64)
    m = p.shape[0]
    if budget < m * min_size:
        raise ActionError(f"batch budget {budget} is smaller than {m} modalities x min_size {min_size}")
    exact = p * budget
    sizes = np.floor(exact).astype(np.int64)
    left = int(budget - sizes.sum())
    if left > 0:
        order = np.argsort(-(exact - sizes), kind="stable")
        sizes[order[:left]] += 1
    for j in range(m):
        while sizes[j] < min_size:
            k = int(np.argmax(sizes))
            sizes[k] -= 1
            sizes[j] += 1
    return [int(s) for s in sizes]
