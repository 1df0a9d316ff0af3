"""Checkpoints that survive a killed process: atomic writes and env save/load helpers.

``atomic_save(obj, path)`` writes with ``torch.save`` to a temporary file in the same
directory, flushes and ``fsync``\\ s it, then ``os.replace``\\ s it over ``path`` (atomic
on POSIX and Windows when both lie on one file system) and ``fsync``\\ s the directory so
the rename itself is durable. A process killed at any instant therefore leaves either
the previous complete checkpoint or the new complete one at ``path``, never a torn file;
at worst a stray ``.<name>.*.tmp`` file stays behind, which the next successful write
removes (:mod:`mmenv.atomic`).

``save_env_checkpoint`` / ``load_env_checkpoint`` store and restore the whole state of a
:class:`mmenv.DUSEnv` (see :meth:`mmenv.DUSEnv.state_dict`) and also work through
Gymnasium wrappers (``gymnasium.make`` adds an order-enforcing wrapper that must be
told the episode is live again)::

    import gymnasium as gym
    import mmenv
    from mmenv.checkpoint import load_env_checkpoint, save_env_checkpoint

    env = gym.make("mmenv/DUS-v0", epochs=2, batch_budget=32,
                   dataset_kwargs=dict(n_train=256, n_val=64, n_test=128))
    obs, info = env.reset(seed=0)
    env.step(env.unwrapped.uniform_action())
    save_env_checkpoint(env, "/tmp/env.ckpt")

    fresh = gym.make("mmenv/DUS-v0", epochs=2, batch_budget=32,
                     dataset_kwargs=dict(n_train=256, n_val=64, n_test=128))
    load_env_checkpoint(fresh, "/tmp/env.ckpt")   # continues exactly where env was
"""

from __future__ import annotations

import importlib
import os
import pickle
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_write
from .errors import InvalidArgumentError, MMEnvError

__all__ = ["ALLOWED_TYPES", "CheckpointError", "DataMismatchError", "UnsafeCheckpointError", "allow_type", "atomic_save", "load",
           "save_env_checkpoint", "load_env_checkpoint", "data_mismatch_error", "check_resume_fingerprint"]

ENV_FORMAT = "mmenv-env-checkpoint-v1"

#: Classes (besides tensors, numbers, strings and containers) a checkpoint may hold:
#: small data classes whose construction runs no code of consequence. Listed by
#: qualified name and imported only when a checkpoint names them.
ALLOWED_TYPES: tuple[str, ...] = (
    "mmenv.datasets.base.ModalitySpec",
    "mmenv.sampling.bss.BalanceScores",
)
_user_types: dict[str, type] = {}

# Globals an older ``ReinforcePolicy.save`` pickled (numpy scalars in the episodic baselines).
_NUMPY_GLOBALS = ("numpy.dtype", "numpy._core.multiarray.scalar", "numpy.core.multiarray.scalar")


class CheckpointError(MMEnvError, ValueError):
    """A checkpoint is missing, unreadable, or was written for another configuration."""


class UnsafeCheckpointError(CheckpointError):
    """A file the safe loader refuses: it names code (a function or a class outside the
    allow-list) that unpickling it would run, or holds pickle data beyond plain values.

    Raised before anything the file names is called: nothing of it runs.
    """


class DataMismatchError(CheckpointError):
    """A checkpoint is loaded into an environment whose data differ from the data it was
    trained on (:func:`mmenv.datasets.base.data_fingerprint`)."""


def data_mismatch_error(dataset: Any, saved: str, current: str, what: str = "checkpoint",
                        fix: str = "build the environment on the data the checkpoint was trained on") -> DataMismatchError:
    """The :class:`DataMismatchError` for ``what`` written on data of fingerprint ``saved`` loaded
    onto ``dataset`` (fingerprint ``current``): names the data set and the files it reads."""
    from .datasets.base import describe_sources

    source = "the data" if dataset is None else describe_sources(dataset)
    return DataMismatchError(
        f"{what} was written for other data: {source} has fingerprint {current} now but "
        f"{saved} when it was written (other contents: another seed, other files, or a file rewritten in place); "
        f"{fix} (an identical copy in another folder is accepted)")


def check_resume_fingerprint(saved: Any, current: dict[str, Any], ckpt: str | os.PathLike,
                             dataset: Any = None) -> None:
    """Refuse to resume from ``ckpt`` unless its recorded configuration ``saved`` equals ``current``.

    A ``"data"`` entry (a :func:`~mmenv.datasets.base.data_fingerprint`) is compared with its own
    :class:`DataMismatchError` naming the data set's files (``dataset``); a checkpoint written
    before the entry existed is compared without it. When both record the same data contents,
    ``dataset_kwargs`` that name another existing path (the data set copied or moved to
    another folder) are accepted: the contents, not their location, are what must match.
    """
    from .datasets.base import fingerprints_differ

    saved = dict(saved) if isinstance(saved, dict) else {}
    current = dict(current)
    saved_data, current_data = saved.pop("data", None), current.pop("data", None)
    if saved_data is not None and saved_data == current_data:
        saved = _moved_paths_as_current(saved, current)
    if saved != current:
        raise CheckpointError(f"{ckpt} was written by another configuration: {saved} != {current}; "
                              "use another --out or drop --resume")
    if current_data is not None and fingerprints_differ(saved_data, current_data):
        raise data_mismatch_error(dataset, saved_data, current_data, what=str(ckpt),
                                  fix="resume on the data it was trained on, or drop --resume to start afresh")


def _moved_paths_as_current(saved: Any, current: Any) -> Any:
    """``saved`` with every ``dataset_kwargs`` string that differs from ``current``'s, where
    ``current``'s names an existing path, replaced by ``current``'s (a moved data set)."""
    if not isinstance(saved, dict) or not isinstance(current, dict):
        return saved
    out = {}
    for key, value in saved.items():
        now = current.get(key)
        if key == "dataset_kwargs" and isinstance(value, dict) and isinstance(now, dict):
            value = {k: (now[k] if isinstance(v, str) and isinstance(now.get(k), str) and v != now[k]
                         and Path(now[k]).exists() else v) for k, v in value.items()}
        elif isinstance(value, dict):
            value = _moved_paths_as_current(value, now)
        out[key] = value
    return out


def allow_type(cls: type) -> type:
    """Allow instances of ``cls`` (a plain data class of yours) in checkpoints; usable as a decorator.

    Only register classes whose construction and ``__setstate__`` run no code that
    acts on the outside world: unpickling calls them with arguments from the file.
    """
    if not isinstance(cls, type):
        raise InvalidArgumentError(f"allow_type takes a class, got {cls!r}")
    _user_types[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return cls


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically: temp file in the same dir, fsync, os.replace.

    Returns the final path. On any error the temporary file is removed and ``path``
    keeps its previous content; a disk-full or read-only failure is one
    :class:`~mmenv.errors.WriteError` naming ``path`` (:func:`mmenv.atomic.atomic_write`).
    """
    return atomic_write(path, lambda f: torch.save(obj, f))


def _resolve(name: str) -> type:
    """The allow-listed class called ``name`` (imported on demand)."""
    if name in _user_types:
        return _user_types[name]
    module_name, _, qualname = name.rpartition(".")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _allowed_types(path: Path) -> list[Any]:
    """The classes a checkpoint refers to, if all are on the allow-list (else an error).

    A checkpoint is read with torch's safe (``weights_only``) unpickler: tensors, numbers,
    strings and containers only. The few data classes of :data:`ALLOWED_TYPES` (and those
    registered with :func:`allow_type`) are allowed by exact name; anything else, in
    particular any function (``os.system``...) a crafted file would have the unpickler
    call, is refused before a byte of the file is unpickled.
    """
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:
        # Not a torch.save zip archive (e.g. a bare pickle): torch.load(weights_only=True)
        # below still reads it with the restricted unpickler, or fails cleanly.
        return []
    refused = [n for n in names if n not in ALLOWED_TYPES and n not in _user_types]
    if refused:
        if all(n in _NUMPY_GLOBALS for n in refused):
            hint = ("it holds pickled numpy values, as agents saved by older mmenv versions do; re-save it: "
                    "load it with the mmenv version that wrote it, convert the values to Python floats "
                    "(policy.return_baselines = {int(k): float(v) for k, v in policy.return_baselines.items()}) "
                    "and save it again, or retrain")
        else:
            hint = ("loading it would run that code. mmenv checkpoints hold tensors, numbers, strings, "
                    f"containers and the data classes {list(ALLOWED_TYPES)} only")
        raise UnsafeCheckpointError(f"refusing to load {path}: it refers to {', '.join(refused)}, which is not "
                                    f"on mmenv's checkpoint allow-list; {hint}")
    return [_resolve(n) for n in names]


def load(path: str | os.PathLike) -> Any:
    """Read a checkpoint written by :func:`atomic_save` (CPU tensors; clear error if absent).

    Safe on untrusted files: ``torch.load(weights_only=True)`` with the allow-list of
    :func:`_allowed_types`; a file that names other code raises
    :class:`UnsafeCheckpointError` and nothing of it runs.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        with torch.serialization.safe_globals(list(_allowed_types(path))):
            return torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as exc:
        # torch's message suggests weights_only=False, exactly what must not be done here.
        text = str(exc)
        marker = "WeightsUnpickler error:"
        why = (text.split(marker, 1)[1].split("Check the documentation")[0].strip() if marker in text
               else "not data the safe unpickler reads")
        raise UnsafeCheckpointError(f"could not read checkpoint {path}: the safe unpickler refused it ({why}), "
                                    "so nothing in it was run; mmenv checkpoints hold tensors, numbers, strings "
                                    "and containers only") from None
    except Exception as exc:
        raise CheckpointError(f"could not read checkpoint {path}: {exc}") from exc


def _mark_wrappers_reset(env: Any) -> None:
    """Tell Gymnasium's wrappers that the restored episode is live.

    ``OrderEnforcing`` would refuse a ``step`` before ``reset``; ``PassiveEnvChecker``'s
    one-time reset/step checks compare with a ``reset`` that this process never saw (they
    ran when the checkpointed environment was first built), so they are marked done.
    """
    while env is not None and hasattr(env, "env"):
        if hasattr(env, "_has_reset"):
            env._has_reset = True
        if hasattr(env, "checked_step"):
            env.checked_reset = env.checked_step = True
            env.checked_data_reuse = True
        env = env.env


def _stateful_wrappers(env: Any) -> list[Any]:
    """The wrappers around the environment that keep episode state of their own (they define
    ``checkpoint_state`` / ``load_checkpoint_state``, e.g. the benchmark wrapper's validation
    accuracy before the next step and its observation's previous values), outermost first."""
    out = []
    while env is not None and hasattr(env, "env"):
        if callable(getattr(type(env), "checkpoint_state", None)):
            out.append(env)
        env = env.env
    return out


def save_env_checkpoint(env: Any, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Atomically save ``env.unwrapped.state_dict()`` and the episode state of the package's
    wrappers around it (plus ``extra``, e.g. an agent's state)."""
    wrappers = [[type(w).__name__, w.checkpoint_state()] for w in _stateful_wrappers(env)]
    payload = {"format": ENV_FORMAT, "env": env.unwrapped.state_dict(), "wrappers": wrappers,
               "extra": dict(extra or {})}
    return atomic_save(payload, path)


def load_env_checkpoint(env: Any, path: str | os.PathLike) -> dict[str, Any]:
    """Restore an environment saved by :func:`save_env_checkpoint`; returns its ``extra``.

    ``env`` must be built with the same configuration (data set, learner, budget...);
    a mismatch raises :class:`CheckpointError` naming the differing setting.
    """
    payload = load(path)
    if not isinstance(payload, dict) or payload.get("format") != ENV_FORMAT:
        raise CheckpointError(f"{path} is not an environment checkpoint (expected format {ENV_FORMAT!r})")
    env.unwrapped.load_state_dict(payload["env"])
    saved = list(payload.get("wrappers", []))   # checkpoints of earlier builds hold none
    for i, wrapper in enumerate(_stateful_wrappers(env)):
        state = saved[i][1] if i < len(saved) and saved[i][0] == type(wrapper).__name__ else None
        wrapper.load_checkpoint_state(state)
    _mark_wrappers_reset(env)
    return payload["extra"]
