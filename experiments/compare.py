"""Compare sampling policies x learners x datasets x seeds: the ``mmenv compare`` command.

Example::

    mmenv compare                          # the default preset: 36 runs, 1-4 min on 2 CPU cores
    mmenv compare --config tiny --out runs/tiny
    mmenv compare --policies uniform,reinforce,remix+uniform --learners mla --seeds 5
    mmenv compare --config paper --data-root crema-d=/data/CREMA-D --device cuda

From Python::

    from mmenv.experiments.compare import run_comparison
    from mmenv.experiments.config import load_config

    summary = run_comparison(load_config("tiny", overrides={"out": "runs/tiny"}))
    print(summary.table)

Outputs under ``out``: ``runs/<key>.json`` (one per run, the resume state),
``results.csv``, ``results.md`` (the printed tables), ``config.yaml`` (the resolved
config), ``plots/*.png`` and ``tb/<dataset>/<learner>/<policy>/seed<k>/`` (TensorBoard).
Re-running with the same config skips every run whose result file says ``ok`` or
``diverged``; failed runs are tried again; ``--force`` re-runs everything. A finished run
records the fingerprint of its data's contents; when its data set holds other contents now
(a file rewritten in place, another seed), the re-run refuses with
:class:`~mmenv.checkpoint.DataMismatchError` instead of mixing two versions of the data
(:func:`~mmenv.experiments.report.check_finished_data`). A sweep holds a
lock on ``out`` (``out/.mmenv.lock``, :mod:`mmenv.locks`): a second sweep on the same
folder fails at once with :class:`~mmenv.errors.LockError` naming the holder's PID; the
lock of a killed sweep is taken over. Worker processes exit within a second when the
sweep's process dies (:func:`~mmenv.experiments.backends.init_worker`).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mmenv.atomic import atomic_write_text
from mmenv.errors import MMEnvError
from mmenv.locks import FolderLock

from .config import BACKENDS, CompareConfig, ConfigError, list_presets, load_config, parse_seeds
from .grid import RunSpec, build_grid
from .report import FINISHED, RESULT_TAIL, load_results, markdown_tables, results_rows, write_csv, write_result

__all__ = ["ComparisonSummary", "run_comparison", "add_compare_parser", "cmd_compare", "check_dataset_arguments",
           "check_out_dir", "registered_names"]


@dataclass
class ComparisonSummary:
    """What a sweep produced: results in grid order, what ran now, and the written files."""

    config: CompareConfig
    results: list[dict[str, Any]]
    executed: list[str]                     # keys of the runs executed in this call
    skipped: list[str]                      # keys found finished on disk
    csv_path: Path
    table_path: Path
    table: str
    plots: list[Path] = field(default_factory=list)
    wall_time_s: float = 0.0

    @property
    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        return counts


def _execute(specs: list[RunSpec], cfg: CompareConfig, out: Path, progress: bool, ray_address: str | None):
    from .backends import run_specs

    # On a local Ray instance `workers` is its number of CPUs; a cluster brings its own.
    stream = run_specs(specs, str(out), cfg.tensorboard, cfg.backend, cfg.workers, ray_address)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(specs), desc=f"compare {cfg.name}", unit="run")
    try:
        for result in stream:
            # The driver writes every result file, so Ray workers need no shared disk for it.
            write_result(out / "runs", result)
            if bar is not None:
                bar.update(1)
                acc = ((result.get("test") or {}).get("fused") or {}).get("accuracy")
                bar.set_postfix_str(f"{result['dataset']}/{result['learner']}/{result['policy']}/s{result['seed']}: "
                                    + (f"{100 * acc:.1f}%" if acc is not None else result["status"]))
            yield result
    finally:
        if bar is not None:
            bar.close()


def check_dataset_arguments(cfg: CompareConfig) -> None:
    """Every data set of the grid gets the arguments its builder requires, or one clear error now.

    A data set on disk needs its root folder: without it every run of the sweep would fail
    with the builder's ``missing a required argument: 'root'``; this names the option that
    sets it (``--data-root NAME=PATH``, or ``dataset_kwargs.NAME.root`` in a config).
    """
    import inspect

    from mmenv.datasets import DATASETS

    for name in cfg.datasets:
        try:
            params = inspect.signature(DATASETS.get_factory(name)).parameters.values()
        except (TypeError, ValueError):   # no signature to read: the builder checks its arguments
            continue
        given = cfg.dataset_kwargs.get(name) or {}
        missing = [p.name for p in params if p.default is inspect.Parameter.empty and p.name not in given
                   and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
        if "root" in missing:
            raise ConfigError(f"data set {name!r} is read from disk and needs its root folder: pass "
                              f"--data-root {name}=/path/to/{name} (or set dataset_kwargs.{name}.root in the config)")
        if missing:
            raise ConfigError(f"data set {name!r} needs {', '.join(map(repr, missing))}: set "
                              f"dataset_kwargs.{name}.{missing[0]} in the config")


def check_out_dir(path: str | Path, option: str = "out") -> Path:
    """``path`` as an output directory, checked without creating anything: an existing file (or a
    file on the way to it) is a :class:`ConfigError`, a folder that cannot be written (the
    folder itself, or the nearest existing one it would be created in: read-only, no
    permission) a :class:`~mmenv.errors.WriteError`; one line each."""
    import os

    from mmenv.errors import WriteError

    if isinstance(path, str) and not path.strip():
        raise ConfigError(f"{option} is empty; name an output directory (it is created if missing)")
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                what = "is" if p == path else f"lies under {str(p)!r}, which is"
                raise ConfigError(f"{option} {str(path)!r} {what} an existing file, not a directory; "
                                  "name a directory (it is created if missing)")
            if not os.access(p, os.W_OK | os.X_OK):
                where = "" if p == path else f" (it would be created in {str(p)!r})"
                raise WriteError(f"{option} {str(path)!r}: cannot create files there{where}: no write permission "
                                 "or a read-only file system; choose another folder")
            break
    return path


def run_comparison(cfg: CompareConfig, force: bool = False, progress: bool = True,
                   ray_address: str | None = None) -> ComparisonSummary:
    """Run (or resume) the sweep ``cfg`` and write the CSV, tables and plots under ``cfg.out``."""
    from .backends import leave_if_reimported

    leave_if_reimported()  # a worker re-importing an unguarded script: the driver reports it
    start = time.perf_counter()
    check_dataset_arguments(cfg)
    out = check_out_dir(cfg.out)
    # One sweep per output folder: a second one would run (and write) the same runs again.
    with FolderLock(out, "mmenv compare"):
        return _run_locked(cfg, out, start, force, progress, ray_address)


def _run_locked(cfg: CompareConfig, out: Path, start: float, force: bool, progress: bool,
                ray_address: str | None) -> ComparisonSummary:
    atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    specs = build_grid(cfg)
    keys = [s.key for s in specs]
    existing = {} if force else load_results(out / "runs", keys)
    todo = [s for s in specs if existing.get(s.key, {}).get("status") not in FINISHED]
    skipped = [k for k in keys if existing.get(k, {}).get("status") in FINISHED]
    executed = [r["key"] for r in _execute(todo, cfg, out, progress, ray_address)] if todo else []

    finished = load_results(out / "runs", keys, check_data=False)   # checked above, or just run
    results = [finished[k] for k in keys if k in finished]
    order = {"datasets": cfg.datasets, "learners": cfg.learners, "policies": cfg.policies}
    table = markdown_tables(results, order)
    csv_path = write_csv(out / "results.csv", results_rows(results), last=RESULT_TAIL)
    table_path = out / "results.md"
    atomic_write_text(table_path, f"# Comparison `{cfg.name}`\n\n{table}\n")
    plots: list[Path] = []
    if cfg.plots:
        from .plots import make_plots

        plots = make_plots(results, out / "plots", order)
    return ComparisonSummary(cfg, results, executed, skipped, csv_path, table_path, table, plots,
                             time.perf_counter() - start)


# ---------------------------------------------------------------------- command line
#: Settings that do not change any run's result: a folder may be resumed with other values.
_RUN_NEUTRAL_KEYS = ("out", "workers", "backend", "plots", "tensorboard", "name", "description")


def _grid_settings(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k not in _RUN_NEUTRAL_KEYS}


def default_out_dir(cfg: CompareConfig, now: float | None = None) -> str:
    """The output folder of ``mmenv compare`` without ``--out``: never one that holds another sweep.

    The config's ``out`` when it is new or holds this same sweep (a re-run resumes it);
    when it holds a sweep with other settings (its ``config.yaml`` differs in the grid or
    the run settings), a fresh time-stamped folder beside it, ``<out>-YYYYmmdd-HHMMSS``, so
    old tables and plots never sit beside new results. An explicit ``--out`` is used as
    given (resuming or extending the sweep there).
    """
    out = Path(cfg.out)
    previous = out / "config.yaml"
    if not previous.is_file():
        return cfg.out
    try:
        old = yaml.safe_load(previous.read_text()) or {}
    except (OSError, yaml.YAMLError):
        old = {}
    current = yaml.safe_load(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    if isinstance(old, dict) and _grid_settings(old) == _grid_settings(current):
        return cfg.out
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    fresh = out.with_name(f"{out.name}-{stamp}")
    i = 1
    while fresh.exists():
        fresh = out.with_name(f"{out.name}-{stamp}-{i}")
        i += 1
    print(f"{out} holds a comparison with other settings; writing this one to {fresh} (--out chooses the folder)",
          flush=True)
    return str(fresh)


def _names(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def _seeds(text: str) -> list[int]:
    """``--seeds``: checked when the command line is parsed, so a bad seed fails before any run starts."""
    try:
        return parse_seeds(text, "--seeds")
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("config <command line>: key '--seeds': ", "")) from None


def add_sweep_arguments(p: argparse.ArgumentParser, out_help: str, backend_help: str) -> None:
    """The options every resumable sweep (``mmenv compare``, ``mmenv bench``) takes: where it
    writes, how it runs its runs, and what it skips."""
    p.add_argument("--out", type=_out_dir, default=None, help=out_help)
    p.add_argument("--workers", type=int, default=None,
                   help="parallel worker processes (with --backend ray and no cluster: the local Ray instance's CPUs)")
    p.add_argument("--backend", choices=BACKENDS, default=None, help=backend_help)
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: RAY_ADDRESS or a local one)")
    p.add_argument("--force", action="store_true", help="re-run runs that already have results")
    p.add_argument("--no-plots", action="store_true", help="skip the figures")
    p.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard logs")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _out_dir(text: str) -> str:
    try:
        return str(check_out_dir(text, "--out"))
    except MMEnvError as exc:   # a file in the way (ConfigError) or an unwritable folder (WriteError)
        raise argparse.ArgumentTypeError(str(exc)) from None


def _data_root(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH (e.g. crema-d=/data/CREMA-D), got {text!r}")
    name, path = text.split("=", 1)
    return name.strip(), path.strip()


def registered_names() -> dict[str, list[str]]:
    """The names each registry knows now (built-in, registered in code, entry points), for ``--help``."""
    from mmenv.agents import POLICIES

    from mmenv.datasets import DATASETS
    from mmenv.learners import LEARNERS
    from mmenv.sampling import SAMPLE_ORDERS

    return {"learners": LEARNERS.names(), "datasets": DATASETS.names(), "sample orders": SAMPLE_ORDERS.names(),
            "policies": POLICIES.names()}


def add_compare_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``compare`` to an argparse sub-command group.

    The help of ``--policies``, ``--learners`` and ``--datasets`` lists the registries'
    names when the parser is built, so names added by installed packages (entry points)
    show up too.
    """
    names = registered_names()
    p = subparsers.add_parser(
        "compare", help="compare policies x learners x datasets x seeds; print a table, write CSV and plots",
        description="Run a grid of sampling policies x learners x datasets x seeds (in parallel, resumable). "
                    f"Presets: {', '.join(list_presets())} (experiments/configs/*.yaml). Writes OUT/results.csv, "
                    "OUT/results.md, OUT/plots/*.png, OUT/tb/... and one JSON per run under OUT/runs/.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default="default", help="preset name or path of a YAML config")
    p.add_argument("--policies", type=_names, default=None, metavar="A,B",
                   help=f"policies: {', '.join(names['policies'])}, a saved agent path, or "
                        f"<sample_order>+<policy> with a sample order of {', '.join(names['sample orders'])} "
                        "(e.g. bss-curriculum+reinforce)")
    p.add_argument("--learners", type=_names, default=None, metavar="A,B",
                   help=f"learners: {', '.join(names['learners'])} (e.g. baseline,mla)")
    p.add_argument("--datasets", type=_names, default=None, metavar="A,B",
                   help=f"data sets: {', '.join(names['datasets'])} (e.g. synthetic,uci-mfeat)")
    p.add_argument("--seeds", type=_seeds, default=None, metavar="N|A,B",
                   help="a seed count (3 -> 0,1,2) or a comma-separated list of seeds >= 0")
    p.add_argument("--epochs", type=int, default=None, help="training epochs per run (env.epochs)")
    p.add_argument("--device", default=None, help="torch device for every run (env.device)")
    p.add_argument("--data-root", type=_data_root, action="append", default=[], metavar="NAME=PATH",
                   help="root folder of a data set (sets dataset_kwargs.NAME.root); repeatable")
    add_sweep_arguments(p, out_help="output directory (default: the config's out, or a fresh "
                                        "<out>-<date>-<time> beside it when that holds a sweep with other settings)",
                        backend_help="process (this machine) or ray (a Ray cluster)")
    p.set_defaults(func=cmd_compare)
    return p


def cmd_compare(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {
        "policies": args.policies, "learners": args.learners, "datasets": args.datasets,
        "workers": args.workers, "backend": args.backend, "out": args.out,
        "env.epochs": args.epochs, "env.device": args.device,
    }
    if args.seeds is not None:
        overrides["seeds"] = args.seeds
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    if args.data_root:
        overrides["data_roots"] = dict(args.data_root)
    if args.no_plots:
        overrides["plots"] = False
    if args.no_tensorboard:
        overrides["tensorboard"] = False
    cfg = load_config(args.config, overrides=overrides)
    if args.out is None:
        cfg.out = default_out_dir(cfg)
    print(f"compare {cfg.name}: {len(cfg.datasets)} dataset(s) x {len(cfg.learners)} learner(s) x "
          f"{len(cfg.policies)} polic{'y' if len(cfg.policies) == 1 else 'ies'} x {len(cfg.seeds)} seed(s) = "
          f"{cfg.num_runs} runs on {cfg.workers} worker(s) [{cfg.backend}] -> {cfg.out}", flush=True)
    summary = run_comparison(cfg, force=args.force, progress=not args.no_progress, ray_address=args.ray_address)
    print()
    print(summary.table)
    print()
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.status_counts.items()))
    print(f"{len(summary.executed)} run(s) executed, {len(summary.skipped)} reused from {Path(cfg.out) / 'runs'}; "
          f"status: {counts}; wall time {summary.wall_time_s:.1f} s")
    print(f"results: {summary.csv_path}  {summary.table_path}")
    for path in summary.plots:
        print(f"plot: {path}")
    if cfg.tensorboard:
        print(f"TensorBoard: tensorboard --logdir {Path(cfg.out) / 'tb'}")
    failed = summary.status_counts.get("failed", 0)
    if failed:
        # A sweep with crashed runs fails (exit status 1), with one line that says where the errors are.
        print(f"FAILED: {failed} of {len(summary.results)} run(s) crashed; their errors are in "
              f"{Path(cfg.out) / 'runs'}/*.json (\"status\": \"failed\") and the error column of {summary.csv_path}",
              file=sys.stderr, flush=True)
        return 1
    return 0
