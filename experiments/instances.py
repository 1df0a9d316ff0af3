"""Benchmark instance sets: named YAML files of training tasks, split into train and test.

An **instance** (after DACBench's instance sets) is one training task for a sampling policy:
a data set (registered name + builder arguments, *including its data seed*) x a learner
(name + arguments) x the environment settings (``epochs``, ``batch_budget`` = N_B,
``step_every``). The run seed (model initialisation, sampling) is *not* part of an
instance: the benchmark plays each instance with tuning seeds and evaluation seeds.

An **instance set** is a YAML file with disjoint ``train`` and ``test`` instances. Test
instances are other *tasks* (other generator parameters, data seeds, view combinations,
learner settings), never a train task with other run seeds: :func:`load_instance_set`
refuses a set in which a test instance's task equals a train instance's (after filling in
every builder default, so ``{seed: 0}`` and ``{}`` are the same synthetic task).

Format (``experiments/instance_sets/<name>.yaml``)::

    name: synthetic-imbalance
    description: free text (what the family is for)
    defaults:                        # merged into every instance (dicts merged key by key)
      dataset: synthetic
      dataset_kwargs: {n_train: 2000}
      learner: ogm-ge
      learner_kwargs: {}
      env: {epochs: 5, batch_budget: 64, step_every: epoch}
    train:
      - name: ogm-s1-strong0         # unique within the set
        dataset_kwargs: {seed: 1, strong_position: 0}
        tags: {strong_position: 0}   # optional free labels, shown in tables
      - ...
    test:
      - ...

The :class:`Instance` type itself lives in :mod:`mmenv.instances` (the environment and the
agents read it too); this module loads and validates sets of them.

Example::

    from mmenv.experiments.instances import load_instance_set
    iset = load_instance_set("synthetic-imbalance")
    inst = iset.test[0]
    env = mmenv.DUSEnv(**inst.env_kwargs())
"""

from __future__ import annotations

import copy
import difflib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmenv.env_args import ENV_ARGS, check_arg, check_cross_field, dataset_modality_count, learner_requires_paired
from mmenv.errors import MMEnvError
from mmenv.instances import ENV_KEYS, Instance, modality_names, with_defaults  # the one instance type, re-exported
from mmenv.yamlio import load_yaml

__all__ = ["Instance", "InstanceSet", "InstanceSetError", "load_instance_set", "instance_set_from_dict",
           "list_instance_sets", "resolve_instance_set", "check_env_arguments", "INSTANCE_SETS_DIR", "ENV_KEYS",
           "modality_names"]

INSTANCE_SETS_DIR = Path(__file__).resolve().parent / "instance_sets"
_ENV_DEFAULTS: dict[str, Any] = {key: ENV_ARGS[key].default for key in ENV_KEYS}
_INSTANCE_KEYS = {"name", "dataset", "dataset_kwargs", "learner", "learner_kwargs", "env", "tags"}
_SCALAR = (str, int, float, bool, type(None))
_SET_KEYS = {"name", "description", "defaults", "train", "test"}


class InstanceSetError(MMEnvError, ValueError):
    """An instance set is malformed; the message names the set, the instance and the fix."""


def _normalised(value: Any) -> Any:
    """Numbers as floats (``1`` is ``1.0``), tuples as lists, mappings with sorted keys: two
    spellings of one value compare equal."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _normalised(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_normalised(v) for v in value]
    return str(value)


def _task_identity(inst: Instance) -> str:
    """What makes two instances one task, compared on normalised values: registered names in
    their canonical spelling, every builder default filled in, numbers as floats."""
    payload = {"dataset": inst.dataset.strip().lower(),
               "dataset_kwargs": with_defaults("dataset", inst.dataset, inst.dataset_kwargs),
               "learner": inst.learner.strip().lower(),
               "learner_kwargs": with_defaults("learner", inst.learner, inst.learner_kwargs),
               "env": {k: getattr(inst, k) for k in ENV_KEYS}}
    return json.dumps(_normalised(payload), sort_keys=True, default=str)


@dataclass
class InstanceSet:
    """A named set of disjoint train and test instances."""

    name: str
    train: list[Instance]
    test: list[Instance]
    description: str = ""
    source: str = "<dict>"

    @property
    def instances(self) -> list[Instance]:
        return self.train + self.test

    def get(self, name: str) -> Instance:
        for inst in self.instances:
            if inst.name == name:
                return inst
        hint = difflib.get_close_matches(name, [i.name for i in self.instances], n=1)
        raise InstanceSetError(f"instance set {self.name!r} has no instance {name!r}"
                               + (f"; did you mean {hint[0]!r}?" if hint else ""))

    def select(self, train: list[str] | int | None = None, test: list[str] | int | None = None) -> InstanceSet:
        """A subset: names, or the first n of each split (``None`` keeps all)."""
        def pick(pool: list[Instance], which: list[str] | int | None) -> list[Instance]:
            if which is None:
                return list(pool)
            if isinstance(which, int):
                if which < 1:
                    raise InstanceSetError(f"select at least one instance, got {which}")
                return pool[:which]
            return [next((i for i in pool if i.name == n), None) or self.get(n) for n in which]

        sub_train, sub_test = pick(self.train, train), pick(self.test, test)
        for inst in sub_train:
            if inst.split != "train":
                raise InstanceSetError(f"{inst.name!r} is a test instance of {self.name!r}; it cannot be trained on")
        for inst in sub_test:
            if inst.split != "test":
                raise InstanceSetError(f"{inst.name!r} is a train instance of {self.name!r}; it cannot be a test one")
        return InstanceSet(self.name, sub_train, sub_test, self.description, self.source)


# ---------------------------------------------------------------------- loading
def list_instance_sets() -> list[str]:
    """Names of the instance sets shipped with the package."""
    return sorted(p.stem for p in INSTANCE_SETS_DIR.glob("*.yaml"))


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _instance(raw: Any, split: str, index: int, defaults: Mapping[str, Any], set_name: str, source: str) -> Instance:
    where = f"instance set {set_name!r} ({source}), {split}[{index}]"
    if not isinstance(raw, Mapping):
        raise InstanceSetError(f"{where}: expected a mapping with at least 'name', got {raw!r}")
    unknown = set(raw) - _INSTANCE_KEYS
    if unknown:
        bad = sorted(unknown)[0]
        hint = difflib.get_close_matches(bad, sorted(_INSTANCE_KEYS), n=1)
        raise InstanceSetError(f"{where}: unknown key {bad!r}; valid keys: {sorted(_INSTANCE_KEYS)}"
                               + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    spec = _merge(defaults, raw)
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip():
        raise InstanceSetError(f"{where}: every instance needs a non-empty 'name'")
    where = f"instance set {set_name!r} ({source}), {split} instance {name!r}"
    for key in ("dataset", "learner"):
        if not isinstance(spec.get(key), str):
            raise InstanceSetError(f"{where}: '{key}' must be a registered name (set it here or under defaults)")
    for key in ("dataset_kwargs", "learner_kwargs", "env", "tags"):
        value = spec.get(key, {})
        if not (isinstance(value, Mapping) and all(isinstance(k, str) for k in value)):
            raise InstanceSetError(f"{where}: '{key}' must be a mapping with string keys, got {value!r}")
    bad_tag = next((k for k, v in spec.get("tags", {}).items() if not isinstance(v, _SCALAR)), None)
    if bad_tag is not None:
        raise InstanceSetError(f"{where}: tags.{bad_tag} must be a plain value (text, number, true/false), "
                               f"got {spec['tags'][bad_tag]!r}")
    env = check_env_arguments(spec.get("env", {}), where)
    dataset, learner = _check_names(spec["dataset"], spec["learner"], where)
    dataset_kwargs, learner_kwargs = dict(spec.get("dataset_kwargs", {})), dict(spec.get("learner_kwargs", {}))
    _check_kwargs("dataset", dataset, dataset_kwargs, where)
    _check_kwargs("learner", learner, learner_kwargs, where)
    _check_env_cross_field(env, dataset, dataset_kwargs, learner, where)
    return Instance(name=name.strip(), split=split, dataset=dataset, dataset_kwargs=dataset_kwargs, learner=learner,
                    learner_kwargs=learner_kwargs, epochs=env["epochs"], batch_budget=env["batch_budget"],
                    step_every=env["step_every"], tags=dict(spec.get("tags", {})), set_name=set_name)


def check_env_arguments(env: Mapping[str, Any], where: str) -> dict[str, Any]:
    """An instance's ``env`` settings with defaults filled in, each checked by the argument
    table (:mod:`mmenv.env_args`), as DUSEnv and ``mmenv compare`` check it.

    Only :data:`ENV_KEYS`: the benchmark chooses reward, observation and seeds itself.
    """
    bad_env = sorted(set(env) - set(ENV_KEYS))
    if bad_env:
        raise InstanceSetError(f"{where}: env key {bad_env[0]!r} is not an instance setting; an instance fixes only "
                               f"{list(ENV_KEYS)} (the benchmark chooses reward, observation and seeds)")
    out = {**_ENV_DEFAULTS, **env}
    for key in ENV_KEYS:
        try:
            out[key] = check_arg(key, out[key])
        except MMEnvError as exc:
            raise InstanceSetError(f"{where}: env.{key}: {exc}") from None
    return out


def _check_env_cross_field(env: Mapping[str, Any], dataset: str, dataset_kwargs: Mapping[str, Any], learner: str,
                           where: str) -> None:
    """The argument table's rules between arguments (``batch_budget >= m * max(min_batch, 1)``
    with the instance's number of modalities), as DUSEnv and ``mmenv compare`` apply them."""
    m = dataset_modality_count(dataset, dataset_kwargs)
    if m is None:   # told only by building the data set: DUSEnv checks it then
        return
    try:
        check_cross_field(env, m, learner_requires_paired(learner), learner)
    except MMEnvError as exc:
        raise InstanceSetError(f"{where}: env.batch_budget: {exc}") from None


def _check_kwargs(kind: str, name: str, kwargs: dict[str, Any], where: str) -> None:
    """``<kind>_kwargs`` through the registry's own keyword check (names, annotated types),
    as compare configs are checked: a typo such as ``lrr`` or ``lr: fast`` fails here."""
    from mmenv.datasets import DATASETS
    from mmenv.learners import LEARNERS

    registry = DATASETS if kind == "dataset" else LEARNERS
    if not registry.is_loaded(name):   # a plugin's entry point: checked where it is built
        return
    try:
        registry.check_arguments(name, registry.get_factory(name), (), kwargs)
    except MMEnvError as exc:
        raise InstanceSetError(f"{where}: {kind}_kwargs: {exc}") from None


def _check_names(dataset: str, learner: str, where: str) -> tuple[str, str]:
    """The registered (canonical) names: ``Baseline`` is ``baseline``, so one task has one key."""
    from mmenv.datasets import DATASETS
    from mmenv.learners import LEARNERS

    out = []
    for kind, name, registry in (("dataset", dataset, DATASETS), ("learner", learner, LEARNERS)):
        if name not in registry:
            hint = difflib.get_close_matches(name.lower(), [n.lower() for n in registry.names()], n=1)
            raise InstanceSetError(f"{where}: unknown {kind} {name!r}; registered: {sorted(registry)}"
                                   + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        out.append(registry.canonical(name))
    return out[0], out[1]


def instance_set_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> InstanceSet:
    """Validate a parsed YAML mapping into an :class:`InstanceSet` (see the module docstring)."""
    if not isinstance(data, Mapping):
        raise InstanceSetError(f"instance set {source}: expected a mapping at the top level")
    unknown = set(data) - _SET_KEYS
    if unknown:
        raise InstanceSetError(f"instance set {source}: unknown key {sorted(map(str, unknown))[0]!r}; valid keys: "
                               f"{sorted(_SET_KEYS)}")
    name = data.get("name") or Path(source).stem
    if not isinstance(name, str):
        raise InstanceSetError(f"instance set {source}: 'name' must be a string, got {name!r}")
    if not isinstance(data.get("description", ""), (str, type(None))):
        raise InstanceSetError(f"instance set {name!r} ({source}): 'description' must be text")
    defaults = data.get("defaults", {}) or {}
    if not isinstance(defaults, Mapping) or "name" in defaults:
        raise InstanceSetError(f"instance set {name!r}: 'defaults' must be a mapping without 'name'")
    splits: dict[str, list[Instance]] = {}
    for split in ("train", "test"):
        raw = data.get(split)
        if not isinstance(raw, list) or not raw:
            raise InstanceSetError(f"instance set {name!r} ({source}): '{split}' must be a non-empty list of instances")
        splits[split] = [_instance(r, split, i, defaults, name, source) for i, r in enumerate(raw)]
    names = [i.name for i in splits["train"] + splits["test"]]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InstanceSetError(f"instance set {name!r}: instance names must be unique, repeated: {dupes}")
    by_task: dict[str, list[str]] = {}
    for inst in splits["train"] + splits["test"]:
        by_task.setdefault(_task_identity(inst), []).append(f"{inst.split}:{inst.name}")
    same = [v for v in by_task.values() if len(v) > 1]
    if same:
        raise InstanceSetError(f"instance set {name!r}: instances {same[0]} are the same task (same data set, "
                               "learner and settings once defaults are filled in); a test instance must be "
                               "another task, not a train task with other seeds — change a generator "
                               "parameter, the data seed, the views or the learner's settings")
    return InstanceSet(name=str(name), train=splits["train"], test=splits["test"],
                       description=str(data.get("description") or "").strip(), source=source)


def resolve_instance_set(name_or_path: str | Path, base_dir: str | Path | None = None) -> InstanceSet:
    """A shipped set by name, or the YAML file at a path; a relative path is read from
    ``base_dir`` (the folder of the preset that names it), else from the working directory."""
    path = Path(name_or_path)
    if base_dir is not None and (path.suffix or os.sep in str(name_or_path)) and not path.is_absolute():
        path = Path(base_dir) / path
    return load_instance_set(path if path.suffix or path.exists() else name_or_path)


def load_instance_set(name_or_path: str | Path) -> InstanceSet:
    """A shipped instance set by name (:func:`list_instance_sets`) or a YAML file by path."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = INSTANCE_SETS_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            names = list_instance_sets()
            hint = difflib.get_close_matches(str(name_or_path), names, n=1)
            raise InstanceSetError(f"no instance set {str(name_or_path)!r}; shipped sets: {names}"
                                   + (f" (did you mean {hint[0]!r}?)" if hint else "")
                                   + ", or pass the path of a YAML file")
    if not path.is_file():
        raise InstanceSetError(f"instance set file {path} does not exist")
    data = load_yaml(path, error=InstanceSetError, what="instance set")
    return instance_set_from_dict(data, source=str(path))
