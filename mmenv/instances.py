"""The benchmark's unit of work: an *instance* (one training task), as one typed value.

An instance (after DACBench's instance sets) is a data set (registered name + builder
arguments, *including its data seed*) x a learner (name + arguments) x the environment
settings that make the task (``epochs``, ``batch_budget`` = N_B, ``step_every``). The run
seed is *not* part of it: the same instance is played with tuning, evaluation and training
seeds. Everything that plays instances reads this one type: the benchmark's instance sets
(:mod:`mmenv.experiments.instances` loads them from YAML), the instance-cycling
environment (:class:`mmenv.wrappers.InstanceCyclingEnv`) and across-run training
(:mod:`mmenv.agents.across_runs`).

A plain mapping of the same keys (``{"dataset": ..., "learner": ..., "epochs": 5}``) is
accepted wherever an instance is, and turned into an :class:`Instance` by
:func:`as_instance`, which refuses any other key with a message naming it.

Example::

    from mmenv.instances import Instance
    inst = Instance(name="ogm-s1", dataset="synthetic", dataset_kwargs={"seed": 1}, learner="ogm-ge")
    env = mmenv.DUSEnv(**inst.env_kwargs())
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import MMEnvError

__all__ = ["Instance", "InstanceError", "as_instance", "modality_names", "with_defaults", "TASK_KEYS", "ENV_KEYS"]

#: The environment settings an instance fixes (everything else is the benchmark's).
ENV_KEYS = ("epochs", "batch_budget", "step_every")
#: The keys of :meth:`Instance.env_kwargs` (what a plain-mapping instance may hold).
TASK_KEYS = ("dataset", "dataset_kwargs", "learner", "learner_kwargs") + ENV_KEYS


class InstanceError(MMEnvError, ValueError):
    """An instance is malformed; the message names the key and the fix."""


@dataclass(frozen=True)
class Instance:
    """One benchmark task: data set x learner x environment settings (no run seed).

    ``name``, ``split`` (``"train"`` / ``"test"``), ``tags`` and ``set_name`` label the task
    in an instance set; they do not change what is trained.
    """

    name: str = ""
    split: str = "train"                         # "train" or "test"
    dataset: str = "synthetic"
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    learner: str = "baseline"
    learner_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 5
    batch_budget: int = 64
    step_every: str | int = "epoch"
    tags: dict[str, Any] = field(default_factory=dict)
    set_name: str = ""

    def __hash__(self) -> int:  # the kwargs dicts are not hashable; an instance is named uniquely in its set
        return hash((self.set_name, self.split, self.name))

    def env_kwargs(self) -> dict[str, Any]:
        """The :class:`mmenv.DUSEnv` keyword arguments of this task, as a fresh plain dict.

        Exactly the keys :data:`TASK_KEYS` (``DUSEnv(**inst.env_kwargs())`` builds the task).
        """
        return {"dataset": self.dataset, "dataset_kwargs": copy.deepcopy(self.dataset_kwargs),
                "learner": self.learner, "learner_kwargs": copy.deepcopy(self.learner_kwargs),
                "epochs": self.epochs, "batch_budget": self.batch_budget, "step_every": self.step_every}

    def task_key(self) -> str:
        """Hash of the task with every builder default filled in (equal tasks, equal keys)."""
        payload = {"dataset": self.dataset, "dataset_kwargs": with_defaults("dataset", self.dataset,
                                                                             self.dataset_kwargs),
                   "learner": self.learner, "learner_kwargs": with_defaults("learner", self.learner,
                                                                             self.learner_kwargs),
                   "env": {k: getattr(self, k) for k in ENV_KEYS}}
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def num_modalities(self) -> int:
        """m, read from the built data set (cached per task)."""
        return len(modality_names(self))

    def label(self) -> str:
        return f"{self.set_name}/{self.name}" if self.set_name else self.name

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON-ready values (saved with an agent's training record)."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)}


def as_instance(value: Instance | Mapping[str, Any], name: str = "") -> Instance:
    """``value`` as an :class:`Instance`: an Instance passes through; a mapping holds :data:`TASK_KEYS`.

    A mapping may also hold the label fields (``name``, ``split``, ``tags``, ``set_name``).
    Any other key is refused: ``reward`` is the benchmark's (pass ``reward=`` to the
    environment), and DUSEnv settings that are not part of the task (``action_space``,
    ``device``, ...) are options of the environment that plays the instance.
    """
    if isinstance(value, Instance):
        return value
    if not isinstance(value, Mapping):
        raise InstanceError(f"an instance is a mmenv.instances.Instance or a mapping of {list(TASK_KEYS)}, "
                            f"got {type(value).__name__}")
    allowed = set(TASK_KEYS) | {"name", "split", "tags", "set_name"}
    unknown = sorted(set(value) - allowed)
    if unknown:
        hint = " (the benchmark sets the reward: pass reward= to the environment)" if "reward" in unknown else ""
        close = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
        if close and not hint:
            hint = f" (did you mean {close[0]!r}?)"
        raise InstanceError(f"unknown instance key(s) {unknown}{hint}; valid: {sorted(allowed)}; other DUSEnv "
                            "settings (action_space, device, ...) are options of the environment, not of the task")
    data = {k: copy.deepcopy(v) for k, v in value.items()}
    for key in ("dataset_kwargs", "learner_kwargs", "tags"):
        if data.get(key) is None:
            data.pop(key, None)
        elif not isinstance(data[key], Mapping):
            raise InstanceError(f"instance key {key!r} must be a mapping, got {data[key]!r}")
        else:
            data[key] = dict(data[key])
    data.setdefault("name", name)
    return Instance(**data)


_MODALITY_CACHE: dict[str, tuple[str, ...]] = {}


def modality_names(inst: Instance) -> tuple[str, ...]:
    """The modality names of an instance's data set, in the environment's order (cached per task)."""
    key = inst.task_key()
    if key not in _MODALITY_CACHE:
        from .datasets import make_dataset

        _MODALITY_CACHE[key] = tuple(make_dataset(inst.dataset, **inst.dataset_kwargs).modality_names)
    return _MODALITY_CACHE[key]


def with_defaults(kind: str, name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` with the builder's defaults filled in (unchanged when it cannot be inspected)."""
    try:
        if kind == "dataset":
            from .datasets import DATASETS as registry
        else:
            from .learners import LEARNERS as registry
        builder = registry[name]
        sig = inspect.signature(builder)
        bound = sig.bind_partial(**kwargs)
        bound.apply_defaults()
        out = dict(bound.arguments)
        for pname, param in sig.parameters.items():
            if param.kind is inspect.Parameter.VAR_KEYWORD and pname in out:
                out.update(out.pop(pname))
        # tuples and lists are the same YAML value
        return json.loads(json.dumps(out, default=str))
    except (KeyError, TypeError, ValueError):
        return dict(kwargs)
