"""``mmenv bench`` presets: which instance sets, seeds, search grids, references and agents.

Presets live in ``experiments/bench_presets/<name>.yaml`` (``quick``, ``full``, ``headroom``);
``load_bench_config("quick")`` reads one, ``load_bench_config("my.yaml")`` a file. Every key,
type and range is checked when the preset is read, before any run, and so are the instance
sets it names (:mod:`mmenv.experiments.instances`: their learner, data-set and environment
arguments through the registries). What needs the data sets built (the number of
modalities of each instance) is checked by :func:`mmenv.experiments.bench_stages.plan_bench`,
still before the first run. docs/presets.md has the reference of every key.

Format (every key but ``instance_sets`` optional)::

    name: quick
    description: free text
    instance_sets:                     # shipped names or YAML paths, optionally a subset;
      - name: synthetic-imbalance      # a relative path is read from the preset's folder
        train: [ogm-s1-strong0, ...]   # names, or a count (the first n), or omitted (all)
        test: 4
    tuning_seeds: [100, 101, 102]      # the oracle and the tuned constant are chosen on these
    eval_seeds: [0, 1, 2]              # every reported number is measured on these
    curve_seeds: [200]                 # learning curves (held-out score during training)
    grid:                              # the oracle's search space (mmenv.experiments.oracle)
      shares: [0.2, 0.35, 0.65, 0.8]
      phase_shares: [0.2, 0.5, 0.8]
      switches: [0.4]
      three_phase_switches: null       # e.g. [0.34, 0.67] adds three-phase schedules
    tuned_constant_shares: [0.2, 0.35, 0.5, 0.65, 0.8]
    references: [uniform, dus-h, fixed, discrepancy, reinforce]   # reinforce = the paper's online agent
    reference_kwargs: {reinforce: {lr: 1.0e-4}}                   # only for policies in references
    headroom_splits: [test]            # also measure train instances' headroom with [train, test]
    agents:                            # trained across runs (mmenv.agents.across_runs)
      - {algo: reinforce, runs: 300, seeds: [0, 1, 2], reward: val-acc-gain, observation: paper, workers: 1}
                                       # seeds: one agent per seed, aggregated in one row (seed: k = [k]);
                                       # options: {policy: equivariant} with observation: modal (REINFORCE)
                                       # trains one per-modality agent for every number of modalities
    curve_every: 50                    # training runs between learning-curve points (null: none)
    workers: 2                         # processes for the reference and search runs
    backend: process                   # or ray: those runs as Ray tasks (a local instance with
                                       # `workers` CPUs, or the cluster at --ray-address/RAY_ADDRESS)
    executor: batched                  # runs of one instance trained K at a time (mmenv.engine);
                                       # single: one run per task (configurations the engine
                                       # cannot train are played one at a time either way)
    out: runs/bench-quick
    plots: true
    tensorboard: true
    bootstrap_resamples: 2000

**Seed lists are lists.** ``tuning_seeds``, ``eval_seeds`` and ``curve_seeds`` name seeds,
so a bare int is refused (write ``[5]`` for seed 5); ``mmenv compare``'s ``seeds: 5`` is a
*count* (seeds 0-4), a different key with a different meaning. Tuning, evaluation and curve
seeds must be pairwise disjoint and below ``2**24``: agents' training runs use seeds
``>= 2**24`` (:data:`mmenv.agents.across_runs.TRAIN_SEED_MIN`), so they never reuse an
evaluation seed either.
"""

from __future__ import annotations

import copy
import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mmenv.errors import MMEnvError
from mmenv.yamlio import load_yaml

from .oracle import SeedOverlapError, check_disjoint_seeds

__all__ = ["BenchConfig", "AgentSpec", "BenchConfigError", "load_bench_config", "bench_config_from_dict",
           "list_bench_presets", "BENCH_PRESETS_DIR", "REFERENCE_LABELS", "SEED_MAX"]

BENCH_PRESETS_DIR = Path(__file__).resolve().parent / "bench_presets"
#: Reference policy name -> its label in the tables (reinforce is the paper's online agent).
REFERENCE_LABELS = {"uniform": "uniform", "dus-h": "dus-h", "fixed": "fixed-ratio", "discrepancy": "discrepancy",
                    "val-gain": "val-gain", "reinforce": "paper-online"}
#: Tuning, evaluation and curve seeds lie below this (agents' training seeds start here).
SEED_MAX = 2**24
#: The networks (``options: {policy: ...}``) each built-in across-run algorithm has
#: (:mod:`mmenv.agents.equivariant`: PPO, SAC and REINFORCE have a per-modality one).
_NETWORKS = {"reinforce": ("mlp", "equivariant"), "es": ("equivariant",), "ppo": ("mlp", "equivariant"),
             "sac": ("mlp", "equivariant"),
             "td3": ("mlp",)}
_AGENT_KEYS = {"algo", "runs", "seed", "seeds", "reward", "observation", "workers", "label", "options"}
_GRID_KEYS = ("shares", "phase_shares", "switches", "three_phase_switches")
_SET_ENTRY_KEYS = ("name", "train", "test")
#: Bounds that keep a typo from asking for a machine that does not exist.
_MAX_WORKERS = 4096
_MAX_RESAMPLES = 1_000_000
_MAX_AGENT_RUNS = 10_000_000


class BenchConfigError(MMEnvError, ValueError):
    """A benchmark preset is malformed; the message names the key and the fix."""


@dataclass
class AgentSpec:
    """One agent trained across runs on each instance set's train instances."""

    algo: str
    runs: int
    seed: int = 0
    reward: str = "val-acc-gain"
    observation: str = "paper"
    workers: int = 1
    label: str = ""
    options: dict[str, Any] = field(default_factory=dict)   # PRESETS overrides (train_across_runs **overrides)
    seeds: list[int] = field(default_factory=list)          # agent seeds: one agent per seed (default [seed])

    def __post_init__(self) -> None:
        if not self.seeds:
            self.seeds = [int(self.seed)]
        self.seed = int(self.seeds[0])
        if not self.label:
            self.label = self.algo if self.observation == "paper" else f"{self.algo}-{self.observation}"
            if self.reward != "val-acc-gain":
                self.label += f"-{self.reward}"


@dataclass
class BenchConfig:
    """A validated benchmark preset (see the module docstring)."""

    instance_sets: list[dict[str, Any]]
    name: str = "custom"
    description: str = ""
    tuning_seeds: list[int] = field(default_factory=lambda: [100, 101, 102, 103, 104])
    eval_seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    curve_seeds: list[int] = field(default_factory=lambda: [200])
    grid: dict[str, Any] = field(default_factory=lambda: {
        "shares": [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9], "phase_shares": [0.2, 0.5, 0.8],
        "switches": [1 / 3, 2 / 3], "three_phase_switches": None})
    tuned_constant_shares: list[float] = field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    references: list[str] = field(default_factory=lambda: ["uniform", "dus-h", "fixed", "discrepancy", "reinforce"])
    reference_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    headroom_splits: list[str] = field(default_factory=lambda: ["test"])
    agents: list[AgentSpec] = field(default_factory=list)
    curve_every: int | None = None
    workers: int = 1
    backend: str = "process"
    executor: str = "batched"
    out: str = "runs/bench"
    plots: bool = True
    tensorboard: bool = True
    bootstrap_resamples: int = 2000
    source: str = "<dict>"

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name != "source"}
        out["agents"] = [{k: v for k, v in vars(a).items() if k != "seed"} for a in self.agents]
        return out

    @property
    def base_dir(self) -> Path:
        """The folder relative instance-set paths are read from: the preset file's (else the
        working directory, for a preset given as a mapping)."""
        return Path(self.source).parent if self.source != "<dict>" else Path(".")


def list_bench_presets() -> list[str]:
    return sorted(p.stem for p in BENCH_PRESETS_DIR.glob("*.yaml"))


def _fail(source: str, key: str, problem: str) -> BenchConfigError:
    return BenchConfigError(f"bench preset {source}: key {key!r}: {problem}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _positive_int(value: Any, key: str, source: str, maximum: int) -> int:
    if not (_is_int(value) and 1 <= value <= maximum):
        raise _fail(source, key, f"expected a positive int (at most {maximum:,}), got {value!r}")
    return int(value)


def _text(value: Any, key: str, source: str, allow_empty: bool = True) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise _fail(source, key, f"expected a {'' if allow_empty else 'non-empty '}string, got {value!r}")
    return value


def _bool(value: Any, key: str, source: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(source, key, f"expected true or false, got {value!r}")
    return value


# ---------------------------------------------------------------------- sections
def _seeds(value: Any, key: str, source: str) -> list[int]:
    if _is_int(value):
        raise _fail(source, key, f"a seed list is a list: write [{value}] for seed {value} (in mmenv compare "
                                 "'seeds: N' is a count; here every seed is named)")
    if not (isinstance(value, list) and value and all(_is_int(v) and 0 <= v < SEED_MAX for v in value)):
        raise _fail(source, key, f"expected a non-empty list of ints in [0, 2**24), got {value!r}")
    if len(set(value)) != len(value):
        raise _fail(source, key, f"duplicate seeds in {value}")
    return [int(v) for v in value]


def _fractions(value: Any, key: str, source: str, open_interval: bool = False) -> list[float]:
    ok = isinstance(value, list) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                   for v in value)
    if ok:
        ok = all((0.0 < v < 1.0) if open_interval else (0.0 <= v <= 1.0) for v in value)
    if not ok:
        where = "(0, 1)" if open_interval else "[0, 1]"
        raise _fail(source, key, f"expected a non-empty list of numbers in {where}, got {value!r}")
    return [float(v) for v in value]


def _selection(value: Any, key: str, source: str) -> list[str] | int | None:
    """An instance-set entry's ``train`` / ``test``: omitted, a count >= 1, or a list of names."""
    if value is None:
        return None
    if _is_int(value):
        if value < 1:
            raise _fail(source, key, f"a count of instances must be >= 1, got {value}")
        return int(value)
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        if len(set(value)) != len(value):
            raise _fail(source, key, f"instance listed twice in {value}")
        return [str(v) for v in value]
    raise _fail(source, key, f"expected a non-empty list of instance names, a count >= 1, or nothing (all), "
                             f"got {value!r}")


def _instance_sets(value: Any, source: str) -> list[dict[str, Any]]:
    sets = [value] if isinstance(value, str) else value
    if not (isinstance(sets, list) and sets):
        raise _fail(source, "instance_sets", f"expected a non-empty list of set names or mappings, got {value!r}")
    out = []
    for i, entry in enumerate(sets):
        key = f"instance_sets[{i}]"
        if isinstance(entry, str):
            entry = {"name": entry}
        if not (isinstance(entry, Mapping) and isinstance(entry.get("name"), str) and entry["name"].strip()):
            raise _fail(source, key, f"expected a name or {{name, train, test}}, got {entry!r}")
        bad = sorted(str(k) for k in set(entry) - set(_SET_ENTRY_KEYS))
        if bad:
            raise _fail(source, key, f"unknown key {bad[0]!r}; valid: name, train, test")
        out.append({"name": entry["name"], "train": _selection(entry.get("train"), f"{key}.train", source),
                    "test": _selection(entry.get("test"), f"{key}.test", source)})
    return out


def _grid(value: Any, source: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(source, "grid", f"expected a mapping, got {value!r}")
    bad = sorted(str(k) for k in set(value) - set(_GRID_KEYS))
    if bad:
        close = difflib.get_close_matches(bad[0], _GRID_KEYS, n=1)
        raise _fail(source, "grid", f"unknown key {bad[0]!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                    + f"; valid: {', '.join(_GRID_KEYS)}")
    grid = dict(BenchConfig(instance_sets=[]).grid)
    for k in ("shares", "phase_shares"):
        if k in value:
            grid[k] = _fractions(value[k], f"grid.{k}", source)
    if "switches" in value:
        grid["switches"] = _fractions(value["switches"], "grid.switches", source, open_interval=True)
    if value.get("three_phase_switches") is not None:
        tp = _fractions(value["three_phase_switches"], "grid.three_phase_switches", source, open_interval=True)
        if len(tp) != 2 or tp[0] >= tp[1]:
            raise _fail(source, "grid.three_phase_switches", f"expected two increasing fractions, got {tp}")
        grid["three_phase_switches"] = tp
    elif "three_phase_switches" in value:
        grid["three_phase_switches"] = None
    return grid


def _references(value: Any, source: str) -> list[str]:
    if not (isinstance(value, list) and all(isinstance(r, str) for r in value) and "uniform" in value):
        raise _fail(source, "references", f"expected a list of policy names that includes 'uniform', got {value!r}")
    bad = [r for r in value if r not in REFERENCE_LABELS]
    if bad:
        close = difflib.get_close_matches(bad[0], sorted(REFERENCE_LABELS), n=1)
        raise _fail(source, "references", f"unknown reference {bad[0]!r}" + (f" (did you mean {close[0]!r}?)"
                                                                             if close else "")
                    + f"; valid: {sorted(REFERENCE_LABELS)}")
    if len(set(value)) != len(value):
        raise _fail(source, "references", f"a reference is listed twice in {value}")
    return list(value)


def _kwargs_mapping(value: Any, key: str, source: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not (isinstance(value, Mapping) and all(isinstance(k, str) for k in value)):
        raise _fail(source, key, f"expected a mapping of keyword arguments, got {value!r}")
    return dict(value)


def _reference_kwargs(value: Any, source: str) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(source, "reference_kwargs", f"expected policy name -> {{keyword: value}}, got {value!r}")
    return {str(k): _kwargs_mapping(v, f"reference_kwargs.{k}", source) for k, v in value.items()}


def _headroom_splits(value: Any, source: str) -> list[str]:
    if not (isinstance(value, list) and value in (["test"], ["train", "test"], ["test", "train"])):
        raise _fail(source, "headroom_splits", f"expected [test] or [train, test], got {value!r}")
    return list(value)


def _agent(raw: Any, i: int, source: str) -> AgentSpec:
    """One agent entry, every field checked (the trainer's names, ranges, preset overrides)."""
    from mmenv.wrappers import BENCH_OBSERVATIONS, BENCH_REWARDS

    key = f"agents[{i}]"
    if not isinstance(raw, Mapping):
        raise _fail(source, key, f"expected a mapping with at least algo and runs, got {raw!r}")
    unknown = sorted(str(k) for k in set(raw) - _AGENT_KEYS)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(_AGENT_KEYS), n=1)
        raise _fail(source, key, f"unknown agent key {unknown[0]!r}" + (f" (did you mean {close[0]!r}?)" if close
                                                                       else "") + f"; valid: {sorted(_AGENT_KEYS)}")
    algo = _algo(raw.get("algo"), f"{key}.algo", source)
    runs = _positive_int(raw.get("runs"), f"{key}.runs", source, _MAX_AGENT_RUNS)
    seeds = _agent_seeds(raw, key, source)
    choices: dict[str, tuple[str, ...]] = {"reward": BENCH_REWARDS, "observation": BENCH_OBSERVATIONS}
    text: dict[str, str] = {}
    for name, default in (("reward", "val-acc-gain"), ("observation", "paper")):
        value = raw.get(name, default)
        if value not in choices[name] or not isinstance(value, str):
            raise _fail(source, f"{key}.{name}", f"expected one of {list(choices[name])}, got {value!r}")
        text[name] = value
    label = raw.get("label", "") or ""
    if not isinstance(label, str):
        raise _fail(source, f"{key}.label", f"expected a string, got {label!r}")
    options = _agent_options(algo.lower(), raw.get("options"), f"{key}.options", source)
    return AgentSpec(algo=algo.lower(), runs=runs, seed=seeds[0], seeds=seeds, reward=text["reward"],
                     observation=text["observation"], label=label, options=options,
                     workers=_positive_int(raw.get("workers", 1), f"{key}.workers", source, _MAX_WORKERS))


def _agent_seeds(raw: Mapping[str, Any], key: str, source: str) -> list[int]:
    """``seeds: [..]`` (one agent trained per seed, aggregated in one row) or the one-seed ``seed: k``."""
    if "seeds" in raw and "seed" in raw:
        raise _fail(source, key, f"give either seed ({raw['seed']!r}) or seeds ({raw['seeds']!r}), not both: "
                                 "seeds: [0, 1, 2] trains one agent per seed, seed: k is the one-seed form")
    if "seeds" not in raw:
        seed = raw.get("seed", 0)
        if not (_is_int(seed) and 0 <= seed < 2**32):
            raise _fail(source, f"{key}.seed", f"expected an int in [0, 2**32), got {seed!r}")
        return [int(seed)]
    seeds = raw["seeds"]
    if _is_int(seeds):
        raise _fail(source, f"{key}.seeds", f"a seed list is a list: write [{seeds}] for agent seed {seeds}")
    if not (isinstance(seeds, list) and seeds and all(_is_int(v) and 0 <= v < 2**32 for v in seeds)):
        raise _fail(source, f"{key}.seeds", f"expected a non-empty list of ints in [0, 2**32), got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise _fail(source, f"{key}.seeds", f"duplicate agent seeds in {seeds}")
    return [int(v) for v in seeds]


def _algo(value: Any, key: str, source: str) -> str:
    """An agent's ``algo``: a name of the trainer registry (:data:`mmenv.agents.across_runs.TRAINERS`:
    the built-in ones, those added with ``register_trainer`` or the ``mmenv.trainers`` entry points)."""
    from mmenv.agents.across_runs import TRAINERS, trainer_for

    if not (isinstance(value, str) and value.strip()):
        raise _fail(source, key, f"expected the name of an across-run trainer, one of {TRAINERS.names()}, "
                                 f"got {value!r}")
    try:
        trainer_for(value)
    except MMEnvError as exc:
        raise _fail(source, key, str(exc)) from None
    return value.lower()


def _agent_options(algo: str, value: Any, key: str, source: str, episodic: bool = True) -> dict[str, Any]:
    """``options`` override the trainer's preset (:data:`mmenv.agents.across_runs.PRESETS`):
    only keywords the algorithm takes, with values of their documented types."""
    from mmenv.agents.across_runs import ALGOS

    options = _kwargs_mapping(value, key, source)
    if not options or algo not in ALGOS:
        return options      # a trainer registered by the user checks its own options
    valid = _option_types(algo)
    if not episodic:
        valid.pop("episodes_per_update", None)
    for name, v in options.items():
        if name not in valid:
            close = difflib.get_close_matches(name, sorted(valid), n=1)
            raise _fail(source, f"{key}.{name}", f"{algo} takes no option {name!r}"
                        + (f" (did you mean {close[0]!r}?)" if close else "") + f"; valid: {sorted(valid)}")
        want = valid[name]
        if want is not None and not _has_type(v, want):
            raise _fail(source, f"{key}.{name}", f"expected {want.__name__}, got {v!r}")
    network = options.get("policy", _NETWORKS.get(algo, ("mlp",))[0])   # es: equivariant by default
    if network not in _NETWORKS.get(algo, ("mlp",)):
        raise _fail(source, f"{key}.policy", f"{algo} takes policy {' or '.join(_NETWORKS.get(algo, ('mlp',)))}, "
                                             f"got {network!r}")
    return options


def _has_type(v: Any, want: type) -> bool:
    if isinstance(v, bool):
        return want is bool
    if want is float:
        return isinstance(v, (int, float))
    return isinstance(v, want)


def _option_types(algo: str) -> dict[str, type | None]:
    """Option name -> the type its value must have (``None``: any value the trainer checks)."""
    from mmenv.agents.across_runs import PRESETS

    types: dict[str, type | None] = {}
    if algo in ("reinforce", "es"):
        from dataclasses import fields as dc_fields

        from mmenv.agents.reinforce import ReinforceConfig

        for f in dc_fields(ReinforceConfig):
            if f.name not in ("num_modalities", "obs_dim", "mode", "seed"):
                types[f.name] = float if f.type in ("float", float) else int if f.type in ("int", int) else None
        if algo == "es":    # mmenv.agents.es: its own search settings instead of the REINFORCE update's
            for name in ("lr", "ent_coef", "baseline_momentum", "gamma", "max_grad_norm"):
                types.pop(name, None)
            types.update(population=int, sigma=float, lr=float, batched=bool)
        else:
            types.update(episodes_per_update=int, group_size=int, normalize_advantages=bool)
        return types
    try:
        import stable_baselines3 as sb3
    except ImportError:
        return {k: None for k in PRESETS[algo]}
    cls = {"ppo": sb3.PPO, "sac": sb3.SAC, "td3": sb3.TD3}[algo]
    skip = {"self", "policy", "env", "seed", "device", "tensorboard_log", "verbose", "_init_setup_model"}
    types = {n: None for n in inspect.signature(cls).parameters if n not in skip}
    types.update({k: None for k in PRESETS[algo]})
    # keys make_sb3_agent translates (mmenv.agents.sb3.PRESET_ONLY_KEYS): the network, the
    # initial log-std of PPO's Gaussian policy, TD3's action noise
    types["policy"] = str
    if algo == "ppo":
        types["log_std_init"] = float
    if algo == "td3":
        types["action_noise_sigma"] = float
    return types


def _agents(value: Any, source: str) -> list[AgentSpec]:
    agents = value or []
    if not isinstance(agents, list):
        raise _fail(source, "agents", f"expected a list of agent mappings, got {value!r}")
    specs = [_agent(a, i, source) for i, a in enumerate(agents)]
    from .grid import slugify

    slugs = [slugify(a.label) for a in specs]
    if len(set(slugs)) != len(slugs):
        raise _fail(source, "agents", f"agent labels must be unique (also as file names), got "
                                      f"{[a.label for a in specs]} (set 'label')")
    return specs


def _curve_every(value: Any, source: str) -> int | None:
    return None if value is None else _positive_int(value, "curve_every", source, _MAX_AGENT_RUNS)


def _backend(value: Any, source: str) -> str:
    from .config import BACKENDS

    if value not in BACKENDS or not isinstance(value, str):
        raise _fail(source, "backend", f"expected one of {list(BACKENDS)}, got {value!r}")
    return value


def _executor(value: Any, source: str) -> str:
    from .bench_runner import EXECUTORS

    if value not in EXECUTORS or not isinstance(value, str):
        raise _fail(source, "executor", f"expected one of {list(EXECUTORS)}, got {value!r}")
    return value


def _out(value: Any, source: str) -> str:
    text = _text(value, "out", source, allow_empty=False)
    from .compare import check_out_dir
    from .config import ConfigError

    try:
        check_out_dir(text)
    except ConfigError as exc:
        raise _fail(source, "out", str(exc)) from None
    return text


#: Key -> its parser ``(value, source) -> parsed value``: one small function per section.
_SECTIONS: dict[str, Callable[[Any, str], Any]] = {
    "instance_sets": _instance_sets,
    "name": lambda v, s: _text(v, "name", s),
    "description": lambda v, s: _text(v, "description", s),
    "out": _out,
    "tuning_seeds": lambda v, s: _seeds(v, "tuning_seeds", s),
    "eval_seeds": lambda v, s: _seeds(v, "eval_seeds", s),
    "curve_seeds": lambda v, s: _seeds(v, "curve_seeds", s),
    "grid": _grid,
    "tuned_constant_shares": lambda v, s: _fractions(v, "tuned_constant_shares", s),
    "references": _references,
    "reference_kwargs": _reference_kwargs,
    "headroom_splits": _headroom_splits,
    "agents": _agents,
    "curve_every": _curve_every,
    "workers": lambda v, s: _positive_int(v, "workers", s, _MAX_WORKERS),
    "backend": _backend,
    "executor": _executor,
    "plots": lambda v, s: _bool(v, "plots", s),
    "tensorboard": lambda v, s: _bool(v, "tensorboard", s),
    "bootstrap_resamples": lambda v, s: _positive_int(v, "bootstrap_resamples", s, _MAX_RESAMPLES),
}


# ---------------------------------------------------------------------- cross-field rules
def _check_seeds(cfg: BenchConfig) -> None:
    try:
        check_disjoint_seeds(cfg.tuning_seeds, cfg.eval_seeds, f"bench preset {cfg.source}: ")
        check_disjoint_seeds(cfg.curve_seeds, cfg.eval_seeds, f"bench preset {cfg.source}: curve seeds vs ")
        check_disjoint_seeds(cfg.curve_seeds, cfg.tuning_seeds, f"bench preset {cfg.source}: curve seeds vs ")
    except SeedOverlapError as exc:
        raise BenchConfigError(str(exc)) from None


def _check_reference_kwargs(cfg: BenchConfig) -> None:
    """Keywords only for listed references, and only ones the policy takes (its registry's check)."""
    from mmenv.agents import POLICIES

    for name, kwargs in cfg.reference_kwargs.items():
        key = f"reference_kwargs.{name}"
        if name not in cfg.references:
            raise _fail(cfg.source, key, f"{name!r} is not in references {cfg.references}: its keywords would be "
                                         "ignored; add it to references or remove these keywords")
        if name == "uniform" and kwargs:
            raise _fail(cfg.source, key, "uniform takes no keywords")
        try:
            POLICIES.check_arguments(name, POLICIES.get_factory(name), (), kwargs)
        except MMEnvError as exc:
            raise _fail(cfg.source, key, str(exc)) from None
        if name == "reinforce":   # its **config options: the agents' REINFORCE rules (bar the episodic one)
            _agent_options("reinforce", {k: v for k, v in kwargs.items() if k not in ("mode", "deterministic")},
                           key, cfg.source, episodic=False)


def _check_instance_sets(cfg: BenchConfig) -> None:
    """Every named set loads and validates (relative paths from the preset's folder), every
    selection exists, no set is listed twice."""
    from .instances import InstanceSetError, resolve_instance_set

    names = []
    for i, entry in enumerate(cfg.instance_sets):
        try:
            iset = resolve_instance_set(entry["name"], cfg.base_dir).select(entry["train"], entry["test"])
        except InstanceSetError as exc:
            raise _fail(cfg.source, f"instance_sets[{i}]", str(exc)) from None
        names.append(iset.name)
    if len(set(names)) != len(names):
        raise _fail(cfg.source, "instance_sets", f"instance set listed twice: {names}")


def bench_config_from_dict(raw: Mapping[str, Any], overrides: Mapping[str, Any] | None = None,
                           source: str = "<dict>", check_sets: bool = True) -> BenchConfig:
    """Validate a preset mapping (as read from YAML; ``overrides`` replace top-level keys).

    ``check_sets=False`` skips loading the instance sets (a preset checked on its own).
    """
    if not isinstance(raw, Mapping):
        raise BenchConfigError(f"bench preset {source}: expected a mapping of keys at the top level, "
                               f"got {type(raw).__name__}")
    data = {k: copy.deepcopy(v) for k, v in raw.items()}
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    known = {f.name for f in fields(BenchConfig)} - {"source"}
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            raise BenchConfigError(f"bench preset {source}: unknown key {key!r}"
                                   + (f" (did you mean {close[0]!r}?)" if close else "")
                                   + f"; valid keys: {sorted(known)}")
    if "instance_sets" not in data:
        raise _fail(source, "instance_sets", "missing: name at least one instance set (e.g. [synthetic-imbalance])")
    parsed = {key: _SECTIONS[key](value, source) for key, value in data.items()}
    cfg = BenchConfig(**parsed, source=source)
    _check_seeds(cfg)
    _check_reference_kwargs(cfg)
    if check_sets:
        _check_instance_sets(cfg)
    return cfg


def preset_file(name_or_path: str | Path) -> Path:
    """A shipped preset's file by name, or the YAML file at a path."""
    text = str(name_or_path)
    path = Path(text)
    if not (path.suffix in (".yaml", ".yml") or path.exists()):
        path = BENCH_PRESETS_DIR / f"{text}.yaml"
        if not path.is_file():
            close = difflib.get_close_matches(text, list_bench_presets(), n=1)
            raise BenchConfigError(f"unknown bench preset {text!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                                   + f"; presets: {list_bench_presets()}, or the path of a YAML file")
    if not path.is_file():
        raise BenchConfigError(f"bench preset file {path} does not exist; presets: {list_bench_presets()}")
    return path


def load_bench_config(name_or_path: str | Path = "quick", overrides: Mapping[str, Any] | None = None) -> BenchConfig:
    """A shipped preset by name (:func:`list_bench_presets`) or a YAML file by path, validated."""
    path = preset_file(name_or_path)
    raw = load_yaml(path, error=BenchConfigError, what="bench preset")
    return bench_config_from_dict({} if raw is None else raw, overrides, source=str(path))
