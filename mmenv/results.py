"""One summary convention for every results table the package prints.

``mmenv compare``, ``mmenv evaluate``, ``python -m mmenv.experiments.learner_table`` and
``python -m mmenv.experiments.share_response`` all summarise seeds with :func:`summarise`:
the mean, the **sample** standard deviation (``ddof=1``, the unbiased variance's root;
undefined, shown blank, for a single seed) and the number of values; every table says
so in its header with :func:`std_note` ("± = sample std over 3 seeds").

The sample std is the usual choice for "how much does this vary from seed to seed"
over a handful of seeds; with two seeds it is ``|a - b| / sqrt(2)`` (the population std
would be ``|a - b| / 2``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Summary", "summarise", "mean_std", "std_note", "summarise_columns"]


@dataclass(frozen=True)
class Summary:
    """Mean, sample std (NaN for fewer than two values) and count of a set of values."""

    mean: float
    std: float
    n: int

    def format(self, scale: float = 1.0, digits: int = 2) -> str:
        """``"95.40 ± 0.87"`` (values times ``scale``); just the mean when ``std`` is undefined;
        ``"–"`` for no values."""
        if self.n == 0:
            return "–"
        mean = f"{self.mean * scale:.{digits}f}"
        return mean if math.isnan(self.std) else f"{mean} ± {self.std * scale:.{digits}f}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: an undefined std is ``None``."""
        return {"mean": self.mean, "std": None if math.isnan(self.std) else self.std, "n": self.n}


def summarise(values: Iterable[float]) -> Summary:
    """Mean and sample standard deviation (``ddof=1``) of ``values``."""
    vals = [float(v) for v in values]
    n = len(vals)
    if n == 0:
        return Summary(math.nan, math.nan, 0)
    mean = sum(vals) / n
    if n < 2:
        return Summary(mean, math.nan, 1)
    return Summary(mean, math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)), n)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """``(mean, sample std)`` of ``values`` (NaN std for fewer than two)."""
    s = summarise(values)
    return s.mean, s.std


def std_note(n: int | str) -> str:
    """The header every table carries: ``"± = sample std over 3 seeds"``.

    ``n`` may be text when the count varies by row (``"N"`` with the column that gives it).
    """
    if isinstance(n, int):
        return f"± = sample std over {n} seed{'s' if n != 1 else ''}"
    return f"± = sample std over {n} seeds"


def summarise_columns(rows: Sequence[dict[str, Any]], skip: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """:func:`summarise` of every numeric column of ``rows`` (finite values only) as dicts."""
    out: dict[str, dict[str, Any]] = {}
    skipped = set(skip)
    keys = [k for k in rows[0] if k not in skipped] if rows else []
    for k in keys:
        vals = [float(r[k]) for r in rows
                if isinstance(r.get(k), (int, float)) and not isinstance(r.get(k), bool) and math.isfinite(float(r[k]))]
        if vals:
            out[k] = summarise(vals).to_dict()
    return out
