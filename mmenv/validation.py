"""Argument checks at the package's edge: one place that says what a number may be.

Every constructor and builder checks its arguments here once, before anything is built
or trained, and raises :class:`~mmenv.errors.InvalidArgumentError` naming the argument,
the value it got and what it takes. The rules:

* An **int** argument takes a Python ``int`` or a NumPy integer (``np.int64(5)``); it is
  returned as a plain ``int``. ``bool`` is not an int (``epochs=True`` is a mistake),
  and neither are floats (``2.5``, not even ``2.0``) or strings (``"3"``).
* A **float** argument takes an ``int``, a ``float`` or a NumPy real number (not
  ``bool``, not a string); it is returned as a plain ``float``. NaN is never a valid
  setting; infinity only where the argument says so.

:func:`check_keyword_types` applies the same rules to the keyword arguments of a
registered factory (a learner's ``lr``, a data set's ``n_train``), read from the
factory's annotations, so ``lr="fast"`` is refused when the learner is made, not deep
inside the optimizer at the first step.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .errors import InvalidArgumentError

__all__ = ["check_int", "check_float", "check_choice", "check_keyword_types", "is_int", "is_real", "check_log_dir",
           "check_batch_budget", "MAX_BUDGET_PASSES"]

#: ``batch_budget`` may be at most this many times ``m * N_train`` (every modality's whole train
#: split, ``MAX_BUDGET_PASSES`` times over, in one iteration); a larger budget only repeats rows
#: and would draw (and allocate) passes without end: ``batch_budget=10**9`` hung in the sampler.
MAX_BUDGET_PASSES = 8


def is_int(value: Any) -> bool:
    """A Python or NumPy integer, not a ``bool``."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value: Any) -> bool:
    """An int or a real float (Python or NumPy), not a ``bool`` and not complex."""
    return (isinstance(value, (numbers.Real, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)))


def _where(owner: str) -> str:
    return f"{owner}: " if owner else ""


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None,
              owner: str = "", fix: str = "") -> int:
    """``value`` as a plain ``int`` in ``[minimum, maximum]``, or :class:`InvalidArgumentError`."""
    bounds = _bounds(minimum, maximum)
    if not is_int(value):
        raise InvalidArgumentError(f"{_where(owner)}{name} must be an int{bounds}, got {value!r} "
                                   f"({type(value).__name__}){'; ' + fix if fix else ''}")
    out = int(value)
    if (minimum is not None and out < minimum) or (maximum is not None and out > maximum):
        raise InvalidArgumentError(f"{_where(owner)}{name} must be an int{bounds}, got {out}"
                                   f"{'; ' + fix if fix else ''}")
    return out


def check_float(name: str, value: Any, *, minimum: float | None = None, maximum: float | None = None,
                strict_minimum: bool = False, allow_inf: bool = False, owner: str = "", fix: str = "") -> float:
    """``value`` as a plain finite ``float`` in range, or :class:`InvalidArgumentError`.

    ``strict_minimum`` excludes ``minimum`` itself (``lr > 0``); ``allow_inf`` lets
    ``+-inf`` through (NaN never passes).
    """
    lo = "" if minimum is None else (f" > {minimum}" if strict_minimum else f" >= {minimum}")
    hi = "" if maximum is None else f" <= {maximum}"
    what = f"a {'' if allow_inf else 'finite '}number{lo}{' and' if lo and hi else ''}{hi}"
    tail = f"; {fix}" if fix else ""
    if not is_real(value):
        raise InvalidArgumentError(f"{_where(owner)}{name} must be {what}, got {value!r} ({type(value).__name__}){tail}")
    out = float(value)
    if math.isnan(out) or (math.isinf(out) and not allow_inf):
        raise InvalidArgumentError(f"{_where(owner)}{name} must be {what}, got {out}{tail}")
    if minimum is not None and (out < minimum or (strict_minimum and out == minimum)):
        raise InvalidArgumentError(f"{_where(owner)}{name} must be {what}, got {out}{tail}")
    if maximum is not None and out > maximum:
        raise InvalidArgumentError(f"{_where(owner)}{name} must be {what}, got {out}{tail}")
    return out


def check_choice(name: str, value: Any, choices: Any, owner: str = "") -> Any:
    """``value`` if it is one of ``choices`` (compared as given), else :class:`InvalidArgumentError`."""
    valid = list(choices)
    try:
        ok = value in valid
    except TypeError:  # unhashable / uncomparable values are simply not a choice
        ok = False
    if not ok or isinstance(value, bool):
        raise InvalidArgumentError(f"{_where(owner)}{name} must be one of {valid}, got {value!r}")
    return value


def check_log_dir(log_dir: Any) -> None:
    """``log_dir`` is ``None`` or a non-empty folder path (``''`` would log into ``./runs/``)."""
    import os

    if log_dir is None:
        return
    if not isinstance(log_dir, (str, os.PathLike)):
        raise InvalidArgumentError(f"log_dir must be None or a folder path, got {log_dir!r}")
    if not str(os.fspath(log_dir)).strip():
        raise InvalidArgumentError("log_dir is an empty path (TensorBoard would write into ./runs/); pass None for "
                                   "no logs or name a folder")


def check_batch_budget(batch_budget: int, num_modalities: int, min_batch: int, n_train: int) -> int:
    """``batch_budget`` between ``m * max(min_batch, 1)`` and ``MAX_BUDGET_PASSES * m * N_train``."""
    m = num_modalities
    low = m * max(min_batch, 1)
    if batch_budget < low:
        raise InvalidArgumentError(f"batch_budget must be an int >= {low} for {m} modalities "
                                   f"(min_batch {min_batch} each), got {batch_budget!r}")
    high = MAX_BUDGET_PASSES * m * max(n_train, 1)
    if batch_budget > high:
        raise InvalidArgumentError(
            f"batch_budget {batch_budget} is more than {MAX_BUDGET_PASSES} x {m} modalities x {n_train} training "
            f"samples = {high}: one iteration would repeat every sample over {MAX_BUDGET_PASSES} times; "
            f"use a budget <= {high} (at most {m * n_train} draws each sample once per iteration)")
    return batch_budget


def _bounds(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


# ---------------------------------------------------------------------- registered factories
_SIMPLE = {"int": "int", "float": "float", "bool": "bool", "str": "str"}


def _simple_annotation(annotation: Any) -> tuple[str, bool] | None:
    """``("float", optional)`` for annotations ``float``, ``float | None``, ``Optional[float]``...;
    ``None`` for anything richer (unions of several types, containers), which is not checked."""
    if annotation is inspect.Parameter.empty:
        return None
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    text = text.replace(" ", "")
    optional = False
    if text.startswith("Optional[") and text.endswith("]"):
        text, optional = text[len("Optional["):-1], True
    parts = text.split("|")
    if "None" in parts:
        parts.remove("None")
        optional = True
    if len(parts) != 1 or parts[0] not in _SIMPLE:
        return None
    return _SIMPLE[parts[0]], optional


def _signature_targets(factory: Callable[..., Any]) -> list[Any]:
    if inspect.isclass(factory):
        return [vars(k)["__init__"] for k in factory.__mro__ if "__init__" in vars(k) and k is not object]
    return [factory]


def check_keyword_types(kind: str, name: str, factory: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    """Check each keyword against the simple annotation (``int``, ``float``, ``bool``, ``str``,
    optionally ``| None``) of ``factory``'s parameter of that name.

    Parameters annotated otherwise (unions, sequences, mappings) are left to the factory.
    Raises :class:`InvalidArgumentError` naming ``kind``, ``name`` and the keyword.
    """
    params: dict[str, inspect.Parameter] = {}
    for target in _signature_targets(factory):
        try:
            for p in inspect.signature(target).parameters.values():
                params.setdefault(p.name, p)
        except (TypeError, ValueError):
            return
    owner = f"{kind} {name!r}"
    for key, value in kwargs.items():
        param = params.get(key)
        if param is None:
            continue
        simple = _simple_annotation(param.annotation)
        if simple is None:
            continue
        typ, optional = simple
        if value is None:
            if not optional and param.default is not None:
                raise InvalidArgumentError(f"{owner}: {key} must be {'an' if typ == 'int' else 'a'} {typ}, got None")
            continue
        if typ == "int":
            check_int(key, value, owner=owner)
        elif typ == "float":
            check_float(key, value, allow_inf=True, owner=owner)
        elif typ == "bool" and not isinstance(value, (bool, np.bool_)):
            raise InvalidArgumentError(f"{owner}: {key} must be true or false, got {value!r}")
        elif typ == "str" and not isinstance(value, str):
            raise InvalidArgumentError(f"{owner}: {key} must be a string, got {value!r} ({type(value).__name__})")
