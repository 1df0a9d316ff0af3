"""Comparison configs: readable YAML presets, validated, with command-line overrides.

A config names the grid (policies x learners x datasets x seeds) and the environment
settings every run shares. Presets live in ``experiments/configs/<name>.yaml``;
``load_config("default")`` reads a preset, ``load_config("my.yaml")`` a file.

Format (every key optional except ``policies``, ``learners``, ``datasets``)::

    name: default                      # label printed with the results
    description: free text
    seeds: 3                           # an int n (seeds 0..n-1) or a list of ints
    policies: [uniform, dus-h, reinforce, bss-curriculum+reinforce, runs/ppo/agent.zip]
    learners: [baseline, mla]
    datasets: [synthetic, uci-mfeat]
    env:                               # DUSEnv keyword arguments shared by every run
      epochs: 10
      batch_budget: 64
    dataset_kwargs:                    # per data set name: builder keyword arguments
      crema-d: {root: ${CREMA_D_ROOT}} # ${VAR} is read from the environment
    learner_kwargs: {mla: {}}          # per learner name
    policy_kwargs: {reinforce: {lr: 1.0e-4}}   # per policy name (the part after "+")
    sample_order_kwargs: {bss-curriculum: {t_grow: null}}   # per sample order (the part before "+")
    workers: 2                         # parallel worker processes
    backend: process                   # process (one machine) or ray (a Ray cluster)
    out: runs/compare-default          # output directory
    plots: true
    tensorboard: true

Unknown or malformed keys raise :class:`ConfigError` naming the key and what it takes.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mmenv.env_args import ENV_ARGS, check_arg, check_cross_field, dataset_modality_count, learner_requires_paired
from mmenv.errors import MMEnvError
from mmenv.yamlio import load_yaml, parse_yaml

__all__ = ["ConfigError", "CompareConfig", "load_config", "config_from_dict", "preset_path", "PRESETS_DIR",
           "list_presets", "BACKENDS"]

PRESETS_DIR = Path(__file__).resolve().parent / "configs"
BACKENDS = ("process", "ray")

# DUSEnv arguments a config must not set under ``env``: the grid sets them per run.
_GRID_OWNED = {name for name, arg in ENV_ARGS.items() if arg.per_run}


class ConfigError(MMEnvError, ValueError):
    """A comparison config is malformed; the message names the key and the fix."""


def _env_arguments() -> dict[str, Any]:
    """The DUSEnv arguments a config may set under ``env:``, with their defaults."""
    return {name: arg.default for name, arg in ENV_ARGS.items() if not arg.per_run}


@dataclass
class CompareConfig:
    """A validated comparison: the grid axes plus shared settings (see the module docstring)."""

    policies: list[str]
    learners: list[str]
    datasets: list[str]
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    name: str = "custom"
    description: str = ""
    env: dict[str, Any] = field(default_factory=dict)
    dataset_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    learner_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    policy_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    sample_order_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    workers: int = 1
    backend: str = "process"
    out: str = "runs/compare"
    plots: bool = True
    tensorboard: bool = True
    source: str = "<dict>"

    def to_dict(self) -> dict[str, Any]:
        return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name != "source"}

    @property
    def num_runs(self) -> int:
        return len(self.policies) * len(self.learners) * len(self.datasets) * len(self.seeds)


# ---------------------------------------------------------------------- validation helpers
def read_yaml(text: str | bytes, source: str = "<string>") -> Any:
    """Parse config YAML with the package's one reader (:mod:`mmenv.yamlio`: YAML 1.2 numbers,
    so ``1e-3`` is a float; duplicate keys and alias bombs refused; any problem a :class:`ConfigError`)."""
    return parse_yaml(text, source=source, error=ConfigError, what="config")


def _fail(source: str, key: str, problem: str) -> ConfigError:
    return ConfigError(f"config {source}: key {key!r}: {problem}")


def _name_list(value: Any, key: str, source: str) -> list[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise _fail(source, key, f"expected a non-empty list of names, got {value!r}")
    names = [v.strip() for v in value]
    dupes = sorted({v for v in names if names.count(v) > 1})
    if dupes:
        raise _fail(source, key, f"duplicate entries {dupes}")
    return names


def parse_seeds(value: Any, key: str = "seeds", source: str = "<command line>") -> list[int]:
    """``3`` -> ``[0, 1, 2]``; ``[4, 7]`` or ``"4,7"`` -> ``[4, 7]``."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if "," not in text else [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise _fail(source, key, f"expected a count like 3 or a list like 0,1,2, got {text!r}") from None
    if isinstance(value, bool):
        raise _fail(source, key, f"expected an int or a list of ints, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise _fail(source, key, f"a seed count must be >= 1, got {value}")
        return list(range(value))
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        if any(v < 0 for v in value):   # Gymnasium's reset refuses them: every run would fail
            raise _fail(source, key, f"seeds must be >= 0, got {[v for v in value if v < 0]} in {value}")
        if len(set(value)) != len(value):
            raise _fail(source, key, f"duplicate seeds in {value}")
        return list(value)
    raise _fail(source, key, f"expected a count like 3 or a non-empty list of ints, got {value!r}")


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_vars(value: Any, key: str, source: str) -> Any:
    """Replace ``${VAR}`` in strings by the environment variable; a missing one is an error."""
    if isinstance(value, str):
        def sub(match: re.Match) -> str:
            var = match.group(1)
            if var not in os.environ:
                raise _fail(source, key, f"environment variable {var} is not set (export {var}=... or pass "
                                         f"--data-root NAME=PATH on the command line)")
            return os.environ[var]

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand_vars(v, f"{key}.{k}", source) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_vars(v, f"{key}[{i}]", source) for i, v in enumerate(value)]
    return value


def _per_name_kwargs(value: Any, key: str, source: str, expand: set[str] | None = None
                     ) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(source, key, f"expected a mapping name -> {{keyword: value}}, got {value!r}")
    out = {}
    for name, kwargs in value.items():
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
            raise _fail(source, f"{key}.{name}", f"expected a mapping of keyword arguments, got {kwargs!r}")
        # ${VAR}s are read only for the names in the grid, so a preset may list the
        # roots of data sets a user leaves out without exporting their variables.
        wanted = expand is not None and str(name) in expand
        out[str(name)] = _expand_vars(kwargs, f"{key}.{name}", source) if wanted else dict(kwargs)
    return out


#: The check of every DUSEnv argument a config may set under ``env:``: the argument table's
#: own (:data:`mmenv.env_args.ENV_ARGS`), so a config accepts exactly what DUSEnv accepts.
ENV_SCHEMA: dict[str, Any] = {name: arg.check for name, arg in ENV_ARGS.items() if not arg.per_run}


def _validate_env(value: Any, source: str) -> dict[str, Any]:
    """The ``env:`` section, each key checked by the argument table (cross-field rules: :func:`_check_env_grid`)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(source, "env", f"expected a mapping of DUSEnv keyword arguments, got {value!r}")
    allowed = _env_arguments()
    out = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise _fail(source, f"env.{k}", "keys must be DUSEnv argument names (strings)")
        if k in _GRID_OWNED:
            raise _fail(source, f"env.{k}", "is set per run by the grid; use the top-level keys "
                                            "datasets/learners, dataset_kwargs/learner_kwargs (log_dir: tensorboard)")
        if k not in allowed:
            close = difflib.get_close_matches(k, sorted(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _fail(source, f"env.{k}", f"unknown DUSEnv argument{hint}; valid: {sorted(allowed)}")
        try:
            out[k] = check_arg(k, v)
        except MMEnvError as exc:
            raise _fail(source, f"env.{k}", str(exc)) from None
    return out


def _check_env_grid(cfg: CompareConfig, source: str) -> None:
    """The argument table's cross-field rules (``batch_budget >= m * max(min_batch, 1)``, paired
    learners need ``min_batch >= 1``) for every data set x learner of the grid, before any run.

    A data set whose number of modalities cannot be told without building it (a plugin's)
    is checked by DUSEnv itself in its runs.
    """
    for dataset in cfg.datasets:
        m = dataset_modality_count(dataset, cfg.dataset_kwargs.get(dataset))
        if m is None:
            continue
        for learner in cfg.learners:
            try:
                check_cross_field(cfg.env, m, learner_requires_paired(learner), learner)
            except MMEnvError as exc:
                key = "env.min_batch" if "min_batch must" in str(exc) else "env.batch_budget"
                raise _fail(source, key, f"{exc} (data set {dataset!r}, learner {learner!r})") from None


def _check_kwargs_section(cfg: CompareConfig, key: str, source: str) -> None:
    """Every name under ``<key>`` must be registered (or be a grid entry), and its keywords
    must be ones that name's factory takes, with values of the annotated types (the
    registry's own keyword check: :meth:`mmenv.registry.Registry.check_arguments`).

    Names whose factory is not imported yet (an installed plugin's entry point, a lazy
    reference such as the sb3-contrib algorithms) are checked where they are built, in the
    run, so that validating a config never imports a plugin.
    """
    from mmenv.agents import POLICIES

    from mmenv.datasets import DATASETS
    from mmenv.learners import LEARNERS
    from mmenv.sampling import SAMPLE_ORDERS

    from .grid import split_policy

    registry, grid = {
        "dataset_kwargs": (DATASETS, cfg.datasets),
        "learner_kwargs": (LEARNERS, cfg.learners),
        "policy_kwargs": (POLICIES, cfg.policies),
        "sample_order_kwargs": (SAMPLE_ORDERS, []),
    }[key]
    section: dict[str, dict[str, Any]] = getattr(cfg, key)
    for name, kwargs in section.items():
        target = name
        if key == "policy_kwargs" and name in grid:
            try:
                target = split_policy(name)[1]
            except ValueError:
                target = name
            if target not in registry:   # a saved agent: its load() takes the keywords
                continue
        if target not in registry:
            valid = sorted(set(registry.names()) | set(grid))
            raise _unknown(source, f"{key}.{name}", registry.kind, name, valid,
                           "; keywords under a name that is not registered would be ignored")
        if not registry.is_loaded(target):
            # A plugin's entry point (or a lazy reference) is not imported here just to read its
            # signature: the worker that builds it checks the keywords (same error, per run).
            continue
        try:
            registry.check_arguments(name, registry.get_factory(target), (), kwargs)
        except MMEnvError as exc:
            raise _fail(source, f"{key}.{name}", str(exc)) from None


# ---------------------------------------------------------------------- loading
def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def preset_path(name_or_path: str | os.PathLike) -> Path:
    """A preset name (``default``, ``tiny``, ``paper``) or a YAML file path."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"config file {text} does not exist; presets: {list_presets()}")
        return path
    candidate = PRESETS_DIR / f"{text}.yaml"
    if not candidate.is_file():
        raise ConfigError(f"unknown config {text!r}: not a preset ({list_presets()}) nor a .yaml file")
    return candidate


def load_config(name_or_path: str | os.PathLike = "default", overrides: Mapping[str, Any] | None = None
                ) -> CompareConfig:
    """Read a preset or YAML file, apply ``overrides`` (top-level keys; ``env.X`` for env), validate."""
    path = preset_path(name_or_path)
    raw = load_yaml(path, error=ConfigError, what="config")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    return config_from_dict(raw, overrides=overrides, source=str(path))


def _unknown(source: str, key: str, kind: str, name: str, valid: list[str], extra: str = "") -> ConfigError:
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return _fail(source, key, f"unknown {kind} {name!r}{hint}; valid: {sorted(valid)}{extra}")


def _check_names(cfg: CompareConfig, source: str) -> None:
    """Every name in the grid must exist before any run starts (a typo is one clear error,
    not a sweep of failed runs). Learners and data sets registered by the caller count."""
    from mmenv.agents import POLICIES

    from mmenv.datasets import DATASETS
    from mmenv.learners import LEARNERS
    from mmenv.sampling import SAMPLE_ORDERS

    from .grid import split_policy

    for entry in cfg.policies:
        try:
            order, name = split_policy(entry)
        except ValueError as exc:
            raise _fail(source, "policies", str(exc)) from None
        if order is not None and order not in SAMPLE_ORDERS:
            raise _unknown(source, "policies", "sample order", order, list(SAMPLE_ORDERS),
                           f" (in {entry!r}: '<sample_order>+<policy>')")
        if name.lower() in POLICIES:
            continue
        if name.endswith((".pt", ".zip")) or os.sep in name:
            if not Path(name).exists():
                raise _fail(source, "policies", f"saved agent {name!r} not found (a .pt REINFORCE or .zip SB3 file)")
            continue
        extra = ", or a saved agent path (.pt/.zip)"
        if name in SAMPLE_ORDERS:
            extra += f"; for a sample order with uniform batches write '{name}+uniform'"
        raise _unknown(source, "policies", "policy", name, list(POLICIES), extra)
    for name in cfg.learners:
        if name not in LEARNERS:
            raise _unknown(source, "learners", "learner", name, list(LEARNERS))
    for name in cfg.datasets:
        if name not in DATASETS:
            raise _unknown(source, "datasets", "dataset", name, list(DATASETS))


def config_from_dict(raw: Mapping[str, Any], overrides: Mapping[str, Any] | None = None,
                     source: str = "<dict>") -> CompareConfig:
    """Validate a config mapping (as read from YAML) into a :class:`CompareConfig`."""
    data = copy.deepcopy(dict(raw))
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key.startswith("env."):
            env = data.get("env") or {}
            if not isinstance(env, dict):
                raise _fail(source, "env", f"expected a mapping, got {env!r}")
            env[key[4:]] = value
            data["env"] = env
        elif key == "data_roots":   # {dataset: root} from --data-root
            dk = data.get("dataset_kwargs") or {}
            for name, root in value.items():
                dk.setdefault(name, {})
                if isinstance(dk[name], dict):
                    dk[name]["root"] = root
            data["dataset_kwargs"] = dk
        else:
            data[key] = value

    known = {f.name for f in fields(CompareConfig)} - {"source"}
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"config {source}: unknown key {key!r}{hint}; valid keys: {sorted(known)}")
    for key in ("policies", "learners", "datasets"):
        if key not in data:
            raise ConfigError(f"config {source}: missing key {key!r} (a list of names)")

    cfg = CompareConfig(
        policies=_name_list(data["policies"], "policies", source),
        learners=_name_list(data["learners"], "learners", source),
        datasets=_name_list(data["datasets"], "datasets", source),
        source=source,
    )
    _check_names(cfg, source)
    if "seeds" in data:
        cfg.seeds = parse_seeds(data["seeds"], "seeds", source)
    for key in ("name", "description", "out"):
        if key in data:
            if not isinstance(data[key], str) or (key != "description" and not data[key]):
                raise _fail(source, key, f"expected a string, got {data[key]!r}")
            setattr(cfg, key, data[key])
    for key in ("plots", "tensorboard"):
        if key in data:
            if not isinstance(data[key], bool):
                raise _fail(source, key, f"expected true or false, got {data[key]!r}")
            setattr(cfg, key, data[key])
    if "workers" in data:
        w = data["workers"]
        if not isinstance(w, int) or isinstance(w, bool) or w < 1:
            raise _fail(source, "workers", f"expected a positive int, got {w!r}")
        cfg.workers = w
    if "backend" in data:
        if data["backend"] not in BACKENDS:
            raise _fail(source, "backend", f"expected one of {list(BACKENDS)}, got {data['backend']!r}")
        cfg.backend = data["backend"]
    cfg.env = _validate_env(data.get("env"), source)
    cfg.dataset_kwargs = _per_name_kwargs(data.get("dataset_kwargs"), "dataset_kwargs", source,
                                          expand=set(cfg.datasets))
    cfg.learner_kwargs = _per_name_kwargs(data.get("learner_kwargs"), "learner_kwargs", source)
    cfg.policy_kwargs = _per_name_kwargs(data.get("policy_kwargs"), "policy_kwargs", source)
    cfg.sample_order_kwargs = _per_name_kwargs(data.get("sample_order_kwargs"), "sample_order_kwargs", source)
    _check_env_grid(cfg, source)
    for key in ("dataset_kwargs", "learner_kwargs", "policy_kwargs", "sample_order_kwargs"):
        _check_kwargs_section(cfg, key, source)
    return cfg
