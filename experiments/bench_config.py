"""``mmenv bench`` presets: which instance sets, seeds, search grids, references and agents.

Presets live in ``experiments/bench_presets/<name>.yaml`` (``quick``, ``full``, ``tiny``);
``load_bench_config("quick")`` reads one, ``load_bench_config("my.yaml")`` a file.

Format (every key but ``instance_sets`` optional)::

    name: quick
    description: free text
    instance_sets:                     # shipped names or YAML paths, optionally a subset
      - name: synthetic-imbalance
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
    reference_kwargs: {reinforce: {lr: 1.0e-4}}
    headroom_splits: [test]            # also measure train instances' headroom with [train, test]
    agents:                            # trained across runs (mmenv.agents.across_runs)
      - {algo: reinforce, runs: 300, seed: 0, reward: val-acc-gain, observation: paper, workers: 1}
    curve_every: 50                    # training runs between learning-curve points (null: none)
    workers: 2                         # processes for the reference and search runs
    backend: process                   # or ray: those runs as Ray tasks (a local instance with
                                       # `workers` CPUs, or the cluster at --ray-address/RAY_ADDRESS)
    out: runs/bench-quick
    plots: true
    tensorboard: true
    bootstrap_resamples: 2000

Tuning, evaluation and curve seeds must be pairwise disjoint (checked); agents' training
runs use seeds >= 2**24 (:data:`mmenv.agents.across_runs.TRAIN_SEED_MIN`), so they never
reuse an evaluation seed either.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

import yaml

from mmenv.errors import MMEnvError

from .config import read_yaml
from .oracle import SeedOverlapError, check_disjoint_seeds

__all__ = ["BenchConfig", "AgentSpec", "BenchConfigError", "load_bench_config", "bench_config_from_dict",
           "list_bench_presets", "BENCH_PRESETS_DIR", "REFERENCE_LABELS"]

BENCH_PRESETS_DIR = Path(__file__).resolve().parent / "bench_presets"
#: Reference policy name -> its label in the tables (reinforce is the paper's online agent).
REFERENCE_LABELS = {"uniform": "uniform", "dus-h": "dus-h", "fixed": "fixed-ratio", "discrepancy": "discrepancy",
                    "reinforce": "paper-online"}
_AGENT_KEYS = {"algo", "runs", "seed", "reward", "observation", "workers", "label", "options"}


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

    def __post_init__(self) -> None:
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
    out: str = "runs/bench"
    plots: bool = True
    tensorboard: bool = True
    bootstrap_resamples: int = 2000
    source: str = "<dict>"

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self) if f.name != "source"}
        out["agents"] = [dict(vars(a)) for a in self.agents]
        return out


def list_bench_presets() -> list[str]:
    return sorted(p.stem for p in BENCH_PRESETS_DIR.glob("*.yaml"))


def _fail(source: str, key: str, problem: str) -> BenchConfigError:
    return BenchConfigError(f"bench preset {source}: key {key!r}: {problem}")


def _seeds(value: Any, key: str, source: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not (isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                     for v in value)):
        raise _fail(source, key, f"expected a non-empty list of non-negative ints, got {value!r}")
    if len(set(value)) != len(value):
        raise _fail(source, key, f"duplicate seeds in {value}")
    return list(value)


def _fractions(value: Any, key: str, source: str, open_interval: bool = False) -> list[float]:
    ok = isinstance(value, list) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                   for v in value)
    if ok:
        ok = all((0.0 < v < 1.0) if open_interval else (0.0 <= v <= 1.0) for v in value)
    if not ok:
        where = "(0, 1)" if open_interval else "[0, 1]"
        raise _fail(source, key, f"expected a non-empty list of numbers in {where}, got {value!r}")
    return [float(v) for v in value]


def _agent(raw: Any, i: int, source: str) -> AgentSpec:
    key = f"agents[{i}]"
    if not isinstance(raw, Mapping):
        raise _fail(source, key, f"expected a mapping with at least algo and runs, got {raw!r}")
    unknown = sorted(set(raw) - _AGENT_KEYS)
    if unknown:
        raise _fail(source, key, f"unknown agent key {unknown[0]!r}; valid: {sorted(_AGENT_KEYS)}")
    if not isinstance(raw.get("algo"), str):
        raise _fail(source, key, "needs 'algo' (reinforce, ppo, sac or td3)")
    runs = raw.get("runs")
    if not (isinstance(runs, int) and not isinstance(runs, bool) and runs >= 1):
        raise _fail(source, f"{key}.runs", f"expected a positive int of training runs, got {runs!r}")
    workers = raw.get("workers", 1)
    if not (isinstance(workers, int) and workers >= 1):
        raise _fail(source, f"{key}.workers", f"expected a positive int, got {workers!r}")
    options = raw.get("options") or {}
    if not isinstance(options, Mapping):
        raise _fail(source, f"{key}.options", f"expected a mapping of preset overrides, got {options!r}")
    return AgentSpec(algo=str(raw["algo"]).lower(), runs=runs, seed=int(raw.get("seed", 0)),
                     reward=str(raw.get("reward", "val-acc-gain")), observation=str(raw.get("observation", "paper")),
                     workers=workers, label=str(raw.get("label", "") or ""), options=dict(options))


def bench_config_from_dict(raw: Mapping[str, Any], overrides: Mapping[str, Any] | None = None,
                           source: str = "<dict>") -> BenchConfig:
    """Validate a preset mapping (as read from YAML; ``overrides`` replace top-level keys)."""
    data = copy.deepcopy(dict(raw))
    for k, v in (overrides or {}).items():
        if v is not None:
            data[k] = v
    known = {f.name for f in fields(BenchConfig)} - {"source"}
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            raise BenchConfigError(f"bench preset {source}: unknown key {key!r}"
                                   + (f" (did you mean {close[0]!r}?)" if close else "")
                                   + f"; valid keys: {sorted(known)}")
    sets = data.get("instance_sets")
    if isinstance(sets, str):
        sets = [sets]
    if not (isinstance(sets, list) and sets):
        raise _fail(source, "instance_sets", f"expected a non-empty list of set names or mappings, got {sets!r}")
    norm_sets = []
    for i, entry in enumerate(sets):
        if isinstance(entry, str):
            entry = {"name": entry}
        if not (isinstance(entry, Mapping) and isinstance(entry.get("name"), str)):
            raise _fail(source, f"instance_sets[{i}]", f"expected a name or {{name, train, test}}, got {entry!r}")
        bad = sorted(set(entry) - {"name", "train", "test"})
        if bad:
            raise _fail(source, f"instance_sets[{i}]", f"unknown key {bad[0]!r}; valid: name, train, test")
        norm_sets.append({"name": entry["name"], "train": entry.get("train"), "test": entry.get("test")})
    cfg = BenchConfig(instance_sets=norm_sets, source=source)
    for key in ("name", "description", "out"):
        if key in data:
            if not isinstance(data[key], str):
                raise _fail(source, key, f"expected a string, got {data[key]!r}")
            setattr(cfg, key, data[key])
    for key in ("tuning_seeds", "eval_seeds", "curve_seeds"):
        if key in data:
            setattr(cfg, key, _seeds(data[key], key, source))
    try:
        check_disjoint_seeds(cfg.tuning_seeds, cfg.eval_seeds, f"bench preset {source}: ")
        check_disjoint_seeds(cfg.curve_seeds, cfg.eval_seeds, f"bench preset {source}: curve seeds vs ")
        check_disjoint_seeds(cfg.curve_seeds, cfg.tuning_seeds, f"bench preset {source}: curve seeds vs ")
    except SeedOverlapError as exc:
        raise BenchConfigError(str(exc)) from None
    if "grid" in data:
        g = data["grid"]
        if not isinstance(g, Mapping):
            raise _fail(source, "grid", f"expected a mapping, got {g!r}")
        bad = sorted(set(g) - {"shares", "phase_shares", "switches", "three_phase_switches"})
        if bad:
            raise _fail(source, "grid", f"unknown key {bad[0]!r}; valid: shares, phase_shares, switches, "
                                        "three_phase_switches")
        grid = dict(cfg.grid)
        for k in ("shares", "phase_shares"):
            if k in g:
                grid[k] = _fractions(g[k], f"grid.{k}", source)
        if "switches" in g:
            grid["switches"] = _fractions(g["switches"], "grid.switches", source, open_interval=True)
        if g.get("three_phase_switches") is not None:
            tp = _fractions(g["three_phase_switches"], "grid.three_phase_switches", source, open_interval=True)
            if len(tp) != 2 or tp[0] >= tp[1]:
                raise _fail(source, "grid.three_phase_switches", f"expected two increasing fractions, got {tp}")
            grid["three_phase_switches"] = tp
        elif "three_phase_switches" in g:
            grid["three_phase_switches"] = None
        cfg.grid = grid
    if "tuned_constant_shares" in data:
        cfg.tuned_constant_shares = _fractions(data["tuned_constant_shares"], "tuned_constant_shares", source)
    if "references" in data:
        refs = data["references"]
        if not (isinstance(refs, list) and all(isinstance(r, str) for r in refs) and "uniform" in refs):
            raise _fail(source, "references", f"expected a list of policy names that includes 'uniform', got {refs!r}")
        bad = [r for r in refs if r not in REFERENCE_LABELS]
        if bad:
            raise _fail(source, "references", f"unknown reference {bad[0]!r}; valid: {sorted(REFERENCE_LABELS)}")
        cfg.references = list(refs)
    if "reference_kwargs" in data:
        rk = data["reference_kwargs"] or {}
        if not (isinstance(rk, Mapping) and all(isinstance(v, Mapping) for v in rk.values())):
            raise _fail(source, "reference_kwargs", f"expected policy name -> {{keyword: value}}, got {rk!r}")
        cfg.reference_kwargs = {str(k): dict(v) for k, v in rk.items()}
    if "headroom_splits" in data:
        hs = data["headroom_splits"]
        if not (isinstance(hs, list) and "test" in hs and set(hs) <= {"train", "test"}):
            raise _fail(source, "headroom_splits", f"expected [test] or [train, test], got {hs!r}")
        cfg.headroom_splits = list(hs)
    if "agents" in data:
        agents = data["agents"] or []
        if not isinstance(agents, list):
            raise _fail(source, "agents", f"expected a list of agent mappings, got {agents!r}")
        cfg.agents = [_agent(a, i, source) for i, a in enumerate(agents)]
        labels = [a.label for a in cfg.agents]
        if len(set(labels)) != len(labels):
            raise _fail(source, "agents", f"agent labels must be unique, got {labels} (set 'label')")
    if data.get("curve_every") is not None:
        ce = data["curve_every"]
        if not (isinstance(ce, int) and ce >= 1):
            raise _fail(source, "curve_every", f"expected a positive int or null, got {ce!r}")
        cfg.curve_every = ce
    for key in ("workers", "bootstrap_resamples"):
        if key in data:
            v = data[key]
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise _fail(source, key, f"expected a positive int, got {v!r}")
            setattr(cfg, key, v)
    if "backend" in data:
        from .config import BACKENDS

        if data["backend"] not in BACKENDS:
            raise _fail(source, "backend", f"expected one of {list(BACKENDS)}, got {data['backend']!r}")
        cfg.backend = data["backend"]
    for key in ("plots", "tensorboard"):
        if key in data:
            if not isinstance(data[key], bool):
                raise _fail(source, key, f"expected true or false, got {data[key]!r}")
            setattr(cfg, key, data[key])
    return cfg


def load_bench_config(name_or_path: str | Path = "quick", overrides: Mapping[str, Any] | None = None) -> BenchConfig:
    """A shipped preset by name (:func:`list_bench_presets`) or a YAML file by path."""
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
    try:
        raw = read_yaml(path.read_text()) or {}  # YAML 1.2 floats: 1e-3 is a number
    except yaml.YAMLError as exc:
        raise BenchConfigError(f"bench preset {path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise BenchConfigError(f"bench preset {path}: expected a mapping at the top level")
    return bench_config_from_dict(raw, overrides, source=str(path))
