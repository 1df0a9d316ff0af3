"""Loading a saved agent file: every failure is a package error, architecture sizes are bounded.

A saved agent (``.pt`` REINFORCE, ``.zip`` SB3, across-run agents) is a file from outside:
truncated, edited, or crafted. Two helpers make every way its loading fails one
:class:`~mmenv.checkpoint.CheckpointError` naming the file:

* :func:`agent_load_errors` (a decorator for the loaders; :func:`agent_file_errors` is its
  context-manager form, used where ``mmenv train --resume`` restores ``train.ckpt``): an exception that is not
  already a package error (``KeyError`` / ``TypeError`` from malformed metadata,
  ``BadZipFile`` / ``EOFError`` from a truncated file, ``RuntimeError`` from weights of the
  wrong shape, ``MemoryError``) becomes a :class:`~mmenv.checkpoint.CheckpointError`; a pickle
  the safe unpickler refuses (``UnpicklingError``, e.g. a ``.pth`` entry inside an SB3 zip
  that names code) becomes an :class:`~mmenv.checkpoint.UnsafeCheckpointError`. Nothing of the
  file has run then (both loaders unpickle with torch's restricted unpickler only).
* :func:`check_sb3_architecture` and :func:`check_reinforce_config`: the network sizes a
  file asks for are bounded **before** anything is built: at most :data:`MAX_LAYER_WIDTH`
  units per layer, :data:`MAX_LAYERS` layers, :data:`MAX_SPACE_SIZE` observation or action
  entries and :data:`MAX_AGENT_PARAMETERS` parameters in all (an estimate of every network
  the algorithm builds: actor, critics, target copies, LSTMs). ``net_arch: [10**9]`` is
  refused with a message naming the entry instead of attempting an 8 GB allocation.
  DUS agents are small (observations of one entry per modality); the bounds leave three
  orders of magnitude of room.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import pickle
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from mmenv.checkpoint import CheckpointError, UnsafeCheckpointError
from mmenv.errors import MMEnvError

__all__ = ["MAX_LAYER_WIDTH", "MAX_LAYERS", "MAX_SPACE_SIZE", "MAX_AGENT_PARAMETERS", "agent_load_errors",
           "agent_file_errors",
           "check_sb3_architecture", "check_reinforce_config", "mlp_parameters"]

#: Units of one hidden layer (SB3's default is 64; the paper's REINFORCE uses 64).
MAX_LAYER_WIDTH = 4096
#: Hidden layers of one network (and LSTM layers).
MAX_LAYERS = 64
#: Entries of an observation or action space (DUS has one per modality, plus extras).
MAX_SPACE_SIZE = 4096
#: Parameters of all networks an agent builds, estimated before building (16.8 M = 64 MiB of float32).
MAX_AGENT_PARAMETERS = 2 ** 24

F = TypeVar("F", bound=Callable[..., Any])


def _first_line(exc: BaseException) -> str:
    """The first informative line of ``exc``'s message; torch's advice to load with
    ``weights_only=False`` (exactly what must not be done with such a file) is dropped."""
    text = str(exc).strip()
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and "weights_only" not in ln and "Check the documentation" not in ln]
    if not lines:
        return type(exc).__name__
    line = f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    return line[:200]


def _path_of(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    for value in (*args, kwargs.get("path")):
        if isinstance(value, (str, os.PathLike)):
            return str(value)
    return "the agent file"


@contextlib.contextmanager
def agent_file_errors(path: Any, what: str) -> Iterator[None]:
    """Turn any failure inside the block, which reads the file ``path`` (a ``what``), into a
    :class:`CheckpointError` (:class:`UnsafeCheckpointError` for a refused pickle) naming it.

    Package errors and a missing optional dependency (``ImportError``) pass through unchanged.
    """
    try:
        yield
    except (MMEnvError, ImportError):
        raise
    except pickle.UnpicklingError as exc:
        raise UnsafeCheckpointError(
            f"refusing to load {what} {path}: the safe unpickler refused an entry ({_first_line(exc)}), so nothing "
            "in it was run; saved agents hold tensors, numbers, strings and containers only") from None
    except MemoryError:
        raise CheckpointError(f"cannot load {what} {path}: it asks for more memory than there is; the file is "
                              "damaged or not an agent of this package") from None
    except Exception as exc:  # noqa: BLE001 - a damaged file fails anywhere in the readers
        raise CheckpointError(
            f"cannot load {what} {path}: {type(exc).__name__}: {_first_line(exc)}; the file is damaged (truncated "
            "or edited) or was not written by this package; save or train the agent again") from None


def agent_load_errors(what: str) -> Callable[[F], F]:
    """Decorate a loader of saved agents (its first ``str`` / path argument is the file) with
    :func:`agent_file_errors`: any failure is a package error naming the file."""
    def decorate(load: F) -> F:
        @functools.wraps(load)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with agent_file_errors(_path_of(args, kwargs), what):
                return load(*args, **kwargs)
        return wrapper  # type: ignore[return-value]
    return decorate


def _positive_int(value: Any, name: str, path: Any, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise CheckpointError(f"{path}: {name} must be an int in [1, {maximum}], got {value!r}; refusing to build a "
                              "network of that size (the file is damaged or crafted)")
    return value


def _widths(value: Any, name: str, path: Any) -> list[int]:
    if not isinstance(value, (list, tuple)):
        raise CheckpointError(f"{path}: {name} must be a list of layer widths, got {value!r}")
    if len(value) > MAX_LAYERS:
        raise CheckpointError(f"{path}: {name} has {len(value)} layers, more than {MAX_LAYERS}")
    return [_positive_int(w, f"{name}[{i}]", path, MAX_LAYER_WIDTH) for i, w in enumerate(value)]


def mlp_parameters(inputs: int, widths: list[int], outputs: int) -> int:
    """Weights and biases of an MLP ``inputs -> widths... -> outputs``."""
    total, prev = 0, inputs
    for w in [*widths, outputs]:
        total += (prev + 1) * w
        prev = w
    return total


def _space_size(space: Any, which: str, path: Any) -> int:
    """Entries of a rebuilt Box (product of its shape) or Discrete (``n``) space, bounded."""
    if space is None:
        return 1
    n = getattr(space, "n", None)
    size = int(n) if n is not None else int(math.prod(getattr(space, "shape", ()) or (1,)))
    if not 1 <= size <= MAX_SPACE_SIZE:
        raise CheckpointError(f"{path}: the {which} space has {size} entries, outside [1, {MAX_SPACE_SIZE}]; "
                              "refusing to build networks for it (the file is damaged or crafted)")
    return size


def sb3_saved_policy_kwargs(path: str | os.PathLike) -> Any:
    """``policy_kwargs`` as SB3 stored it in the zip's ``data`` JSON (plain JSON when it holds no
    class; ``None`` when absent or unreadable: the loader reports an unreadable zip itself)."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            data = json.loads(zf.read("data").decode("utf-8"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return data.get("policy_kwargs") if isinstance(data, dict) else None


def check_sb3_architecture(custom_objects: Mapping[str, Any], path: Any) -> None:
    """Refuse an SB3 zip whose networks would exceed the bounds, before SB3 builds them.

    Reads the rebuilt ``observation_space``, ``action_space`` and ``policy_kwargs`` (``net_arch``
    as a list or a ``pi`` / ``vf`` / ``qf`` dict, ``n_critics``, ``n_quantiles``,
    ``lstm_hidden_size``, ``n_lstm_layers``) and estimates the parameters of the actor, the
    critics and their target copies.
    """
    obs = _space_size(custom_objects.get("observation_space"), "observation", path)
    act = _space_size(custom_objects.get("action_space"), "action", path)
    kwargs = custom_objects.get("policy_kwargs")
    if kwargs is None:   # stored as plain JSON (no classes in it), so not among the rebuilt entries
        kwargs = sb3_saved_policy_kwargs(path)
    kwargs = {} if kwargs is None else kwargs
    if not isinstance(kwargs, Mapping):
        raise CheckpointError(f"{path}: policy_kwargs must be a mapping, got {type(kwargs).__name__}")
    arch = kwargs.get("net_arch", [64, 64])
    if isinstance(arch, Mapping):
        nets = {str(k): _widths(v, f"net_arch.{k}", path) for k, v in arch.items()}
    else:
        shared = _widths(arch, "net_arch", path)
        nets = {"pi": shared, "vf": shared, "qf": shared}
    critics = _positive_int(kwargs.get("n_critics", 2), "n_critics", path, 64)
    quantiles = _positive_int(kwargs.get("n_quantiles", 1), "n_quantiles", path, MAX_LAYER_WIDTH)
    hidden = _positive_int(kwargs.get("lstm_hidden_size", 0) or 1, "lstm_hidden_size", path, MAX_LAYER_WIDTH)
    layers = _positive_int(kwargs.get("n_lstm_layers", 1), "n_lstm_layers", path, MAX_LAYERS)
    total = 2 * mlp_parameters(obs, nets.get("pi", []), 2 * act)                          # actor (+ target)
    total += 2 * mlp_parameters(obs, nets.get("vf", []), 1)                               # value net
    total += 2 * critics * mlp_parameters(obs + act, nets.get("qf", []), max(quantiles, act))  # critics (+ targets)
    if "lstm_hidden_size" in kwargs:
        total += 2 * layers * 4 * hidden * (obs + hidden + 2)                             # actor and critic LSTMs
    if total > MAX_AGENT_PARAMETERS:
        raise CheckpointError(f"{path}: its networks would hold about {total:,} parameters (net_arch {arch!r}), more "
                              f"than the {MAX_AGENT_PARAMETERS:,} a saved agent may ask for; refusing to build them "
                              "(the file is damaged or crafted)")


def check_reinforce_config(config: Any, path: Any, overrides: Mapping[str, Any] | None = None) -> None:
    """Refuse a saved REINFORCE policy whose config (with the caller's ``overrides``) is malformed
    or asks for an oversized network."""
    if not isinstance(config, Mapping):
        raise CheckpointError(f"{path}: a saved REINFORCE policy's config must be a mapping, got "
                              f"{type(config).__name__}; the file is damaged")
    config = {**config, **(overrides or {})}
    m = config.get("num_modalities")   # None: built at the first environment (equivariant nets: any m)
    m = 1 if m is None else _positive_int(m, "config.num_modalities", path, MAX_SPACE_SIZE)
    obs = config.get("obs_dim")
    obs = m if obs is None else _positive_int(obs, "config.obs_dim", path, MAX_SPACE_SIZE)
    raw_hidden = config.get("hidden", 64)
    if raw_hidden == 0 and config.get("policy") == "equivariant" and not isinstance(raw_hidden, bool):
        hidden = 1   # the linear equivariant scorer: fewer weights than any hidden layer
    else:
        hidden = _positive_int(raw_hidden, "config.hidden", path, MAX_LAYER_WIDTH)
    total = mlp_parameters(obs + m, [hidden, hidden], m)
    if total > MAX_AGENT_PARAMETERS:
        raise CheckpointError(f"{path}: its network would hold {total:,} parameters, more than "
                              f"{MAX_AGENT_PARAMETERS:,}; refusing to build it (the file is damaged or crafted)")
