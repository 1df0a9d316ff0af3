"""Command line: ``mmenv compare``, ``mmenv train`` and ``mmenv evaluate`` (``python -m mmenv`` runs it too).

Examples::

    # the default comparison: uniform vs DUS-H vs DUS (online REINFORCE), 2 learners, 2 data sets, 3 seeds
    mmenv compare

    # the paper's DUS: online REINFORCE inside one training run, saved with its logs
    mmenv train --agent reinforce --episodes 1 --epochs 5 --out runs/reinforce
    # an SB3 agent learning across training runs
    mmenv train --agent ppo --timesteps 200 --epochs 5 --out runs/ppo
    # evaluate heuristics or a saved agent over seeds; prints a table, writes JSON + CSV
    mmenv evaluate --policy dus-h --episodes 3 --seed 0 --out runs/eval-dush
    mmenv evaluate --policy runs/ppo/agent.zip --episodes 3 --out runs/eval-ppo

Extending: :func:`build_parser` creates the sub-commands registered in ``SUBCOMMANDS``
(name -> function adding a sub-parser to the ``subparsers`` object and setting its
``func``); :func:`add_env_arguments` and :func:`env_kwargs_from_args` give a new
sub-command the same environment options.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text, ensure_out_dir
from .env_args import ENV_ARGS
from .errors import MMEnvError

__all__ = ["main", "build_parser", "add_env_arguments", "env_kwargs_from_args", "SUBCOMMANDS",
           "episode_rows", "summarise", "write_csv", "format_table"]



# ---------------------------------------------------------------------- shared options
class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" to an option's help only where it tells the reader something.

    Options whose help already states the default, flags, and options without a default
    (None, empty) are left alone, so no help line reads "(default: 64) (default: 64)".
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help_text = action.help or ""
        default = action.default
        if ("default" in help_text or default is None or default is False
                or default == argparse.SUPPRESS or (isinstance(default, (list, dict)) and not default)):
            return help_text
        return super()._get_help_string(action)

    def _split_lines(self, text: str, width: int) -> list[str]:
        # Keep hyphenated names ("bss-curriculum", "val-acc-gain") on one line.
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc.msg}): {text!r}; "
                                         "example: '{\"n_train\": 500}'") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"key\": 1}}', got {text!r}")
    return value


def _env_option(name: str, parse: Callable[[str], Any] = int) -> Callable[[str], Any]:
    """An argparse ``type`` for the DUSEnv argument ``name``: parse the text, then the argument
    table's check (:mod:`mmenv.env_args`), its error as argparse's one-line usage error."""
    from .env_args import check_arg

    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: expected {ENV_ARGS[name].kind}, got {text!r}") from None
        try:
            return check_arg(name, value)
        except MMEnvError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = name   # argparse names the type in its messages
    return convert


def _epoch_or_int(text: str) -> str | int:
    return text if text == "epoch" else int(text)


def _positive_int(text: str) -> int:
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if k < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {k}")
    return k


def _seed(text: str) -> int:
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a seed (an integer >= 0), got {text!r}") from None
    if k < 0:   # Gymnasium's reset refuses negative seeds: fail here, before any work
        raise argparse.ArgumentTypeError(f"a seed must be >= 0, got {k}")
    return k


def _out_dir(text: str) -> Path:
    """``--out``: a directory (created if missing); an existing file there is refused at parse time."""
    from mmenv.experiments.compare import check_out_dir

    try:
        return check_out_dir(text, "--out")
    except MMEnvError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_env_arguments(parser: argparse.ArgumentParser) -> None:
    """The environment options (:class:`mmenv.DUSEnv` arguments) shared by sub-commands."""
    from mmenv.datasets import DATASETS
    from mmenv.learners import LEARNERS
    from mmenv.rewards import REWARDS
    from mmenv.sampling import SAMPLE_ORDERS

    g = parser.add_argument_group("environment")
    g.add_argument("--dataset", default=ENV_ARGS["dataset"].default,
                   help=f"registered data set: {', '.join(DATASETS.names())} "
                        "(default: synthetic, generated in code)")
    g.add_argument("--dataset-kwargs", type=_json_object, default={}, metavar="JSON",
                   help="keyword arguments for the data set builder, e.g. '{\"n_train\": 500, \"seed\": 1}'")
    g.add_argument("--learner", default=ENV_ARGS["learner"].default,
                   help=f"registered learner (MML method): {', '.join(LEARNERS.names())} (default: baseline)")
    g.add_argument("--learner-kwargs", type=_json_object, default={}, metavar="JSON",
                   help="keyword arguments for the learner, e.g. '{\"lr\": 0.01}'")
    g.add_argument("--epochs", type=_env_option("epochs"), default=ENV_ARGS["epochs"].default,
                   help=f"training epochs per episode E (default: {ENV_ARGS['epochs'].default}, the synthetic data's "
                        "budget)")
    g.add_argument("--batch-budget", type=_env_option("batch_budget"), default=ENV_ARGS["batch_budget"].default,
                   help=f"N_B, total batch size shared by the modalities (default: {ENV_ARGS['batch_budget'].default})")
    g.add_argument("--step-every", type=_env_option("step_every", _epoch_or_int), default=ENV_ARGS["step_every"].default,
                   metavar="{epoch,K}",
                   help="one environment step per epoch (default, Algorithm 1) or every K iterations")
    g.add_argument("--reward", type=_env_option("reward", str), default=ENV_ARGS["reward"].default,
                   help=f"registered reward: {', '.join(REWARDS.names())} (default: dus, Eq. 5)")
    g.add_argument("--discrepancy", choices=ENV_ARGS["discrepancy"].choices, default=ENV_ARGS["discrepancy"].default,
                   help="batch discrepancy: sum of true-class probabilities (paper, default) or mean")
    g.add_argument("--sample-order", default=ENV_ARGS["sample_order"].default,
                   help=f"sample-order strategy: {', '.join(SAMPLE_ORDERS.names())} (default: shuffle)")
    g.add_argument("--device", default=ENV_ARGS["device"].default, help="torch device for data and model (default: cpu)")
    g.add_argument("--log-dir", default=None,
                   help="write the environment's per-step TensorBoard scalars here "
                        "(train defaults to OUT/tb/env)")


def env_kwargs_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """:class:`mmenv.DUSEnv` keyword arguments from the options of :func:`add_env_arguments`."""
    return dict(
        dataset=args.dataset,
        dataset_kwargs=dict(args.dataset_kwargs) or None,
        learner=args.learner,
        learner_kwargs=dict(args.learner_kwargs) or None,
        epochs=args.epochs,
        batch_budget=args.batch_budget,
        step_every=args.step_every,
        reward=args.reward,
        discrepancy=args.discrepancy,
        sample_order=args.sample_order,
        device=args.device,
        log_dir=args.log_dir,
    )


# ---------------------------------------------------------------------- results
def episode_rows(records, label: str) -> list[dict[str, Any]]:
    """One flat row per episode: seed, reward, steps, test metrics (fused and per modality)."""
    rows = []
    for rec in records:
        row: dict[str, Any] = {"policy": label, "seed": rec.seed, "reward_sum": rec.reward_sum,
                               "steps": rec.steps, "diverged": rec.diverged, "wall_time_s": rec.wall_time_s}
        for who, metrics in (rec.test or {}).items():
            for metric, value in metrics.items():
                row[f"test_{who}_{metric}"] = value
        row["mean_batch_sizes"] = "/".join(f"{sum(b[j] for b in rec.batch_sizes) / max(1, rec.steps):.1f}"
                                           for j in range(len(rec.modalities)))
        rows.append(row)
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean, sample std (``None`` for one episode) and count of every numeric column over episodes
    (:func:`mmenv.results.summarise_columns`, the convention of every table)."""
    from .results import summarise_columns

    return summarise_columns(rows, skip=("policy", "seed", "diverged", "mean_batch_sizes"))


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """The episodes' CSV (:func:`mmenv.experiments.report.write_csv`: union of columns, atomic)."""
    from .experiments.report import write_csv as write_rows_csv

    write_rows_csv(path, rows)


def format_table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    def cell(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    body = [[cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def _write_json(path: Path, payload: dict) -> None:
    atomic_write_text(path, json.dumps(payload, indent=2, default=str))


# ---------------------------------------------------------------------- train
def _add_train(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train an agent (REINFORCE or an SB3 algorithm) and save it",
        description="Train a sampling agent on the DUS environment. Writes OUT/agent.pt (REINFORCE) or "
                    "OUT/agent.zip (SB3), OUT/train.json, and TensorBoard logs under OUT/tb.",
        formatter_class=HelpFormatter)
    from mmenv.agents.sb3 import SB3_ALGOS

    p.add_argument("--agent", choices=["reinforce", *SB3_ALGOS.names()], type=str.lower, required=True,
                   help="reinforce (the paper's, built in) or a registered SB3 / sb3-contrib algorithm")
    p.add_argument("--episodes", type=_positive_int, default=1,
                   help="REINFORCE: training runs to learn over (online mode learns inside each)")
    p.add_argument("--mode", choices=("online", "episodic"), default="online",
                   help="REINFORCE: update after every step (Algorithm 1) or once per episode")
    p.add_argument("--timesteps", type=_positive_int, default=None,
                   help="SB3: environment steps to learn for (default: episodes x steps per episode)")
    p.add_argument("--lr", type=float, default=None, help="agent learning rate (default: 1e-4, the paper's)")
    p.add_argument("--agent-kwargs", type=_json_object, default={}, metavar="JSON",
                   help="extra agent options: ReinforceConfig fields or SB3 constructor arguments")
    p.add_argument("--seed", type=_seed, default=0, help="agent seed; episode i resets the env with seed+i")
    p.add_argument("--out", required=True, type=_out_dir, help="output directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--resume", action="store_true",
                   help="REINFORCE: continue from OUT/train.ckpt (written atomically after every episode) "
                        "after an interruption; the result equals an uninterrupted run")
    add_env_arguments(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from mmenv.agents import ReinforcePolicy
    from mmenv.agents.assembly import make_run_env, run_resumable, steps_per_episode

    if args.resume and args.agent != "reinforce":
        print("mmenv train: error: --resume is supported for --agent reinforce only; "
              "run the SB3 agent again without --resume", file=sys.stderr)
        return 2
    out: Path = ensure_out_dir(args.out)   # created and writable, or one WriteError line
    env_kwargs = env_kwargs_from_args(args)
    if env_kwargs["log_dir"] is None:
        env_kwargs["log_dir"] = str(out / "tb" / "env")
    agent_kwargs = dict(args.agent_kwargs)
    if args.lr is not None:
        agent_kwargs["learning_rate" if args.agent != "reinforce" else "lr"] = args.lr
    summary: dict[str, Any] = {"command": "train", "agent": args.agent, "seed": args.seed,
                               "env": env_kwargs, "agent_kwargs": agent_kwargs}

    agent_path: Path
    if args.agent == "reinforce":
        from torch.utils.tensorboard import SummaryWriter

        env = make_run_env(env_kwargs)
        policy = ReinforcePolicy(seed=args.seed, mode=args.mode, log_dir=str(out / "tb" / "reinforce"),
                                 **agent_kwargs)
        seeds = [args.seed + i for i in range(args.episodes)]
        fingerprint = {k: summary[k] for k in ("agent", "seed", "env", "agent_kwargs")}
        # The data's contents too: a resume over changed files is refused (DataMismatchError).
        fingerprint.update(mode=args.mode, episodes=len(seeds), data=env.unwrapped.data_fingerprint)
        records = run_resumable(env, policy, seeds, out / "train.ckpt", fingerprint, resume=args.resume,
                                progress=not args.no_progress)
        # Written whole from the records: purge_step=0 replaces what an earlier attempt wrote.
        writer = SummaryWriter(str(out / "tb" / "episodes"), purge_step=0)
        for i, rec in enumerate(records):
            writer.add_scalar("episode/reward_sum", rec.reward_sum, i)
            for who, metrics in (rec.test or {}).items():
                for metric, value in metrics.items():
                    writer.add_scalar(f"episode/test/{who}/{metric}", value, i)
        writer.close()
        policy.close()
        env.close()
        agent_path = out / "agent.pt"
        policy.save(agent_path)
        rows = episode_rows(records, "reinforce")
        summary.update(mode=args.mode, episodes=[r.to_dict() for r in records], summary=summarise(rows),
                       updates=policy.num_updates, skipped_updates=policy.skipped_updates)
        print(format_table(rows, ["seed", "reward_sum", "test_fused_accuracy", "mean_batch_sizes", "steps"]))
    else:
        from mmenv.agents.sb3 import learn, make_sb3_agent, make_sb3_env, save_sb3_model

        env = make_sb3_env(**env_kwargs)
        timesteps = args.timesteps or args.episodes * int(steps_per_episode(env) or 1)
        model = make_sb3_agent(args.agent, env, tensorboard_log=str(out / "tb"), seed=args.seed, **agent_kwargs)
        learn(model, total_timesteps=timesteps, tb_log_name=args.agent, progress_bar=not args.no_progress)
        agent_path = out / "agent.zip"
        save_sb3_model(model, agent_path)   # records the algorithm and action space in the zip
        env.close()
        summary.update(timesteps=timesteps)
        print(f"trained {args.agent.upper()} for {timesteps} environment steps")
    summary["agent_path"] = str(agent_path)
    _write_json(out / "train.json", summary)
    print(f"saved {agent_path}; TensorBoard: tensorboard --logdir {out / 'tb'}")
    return 0


# ---------------------------------------------------------------------- evaluate
def _add_evaluate(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="run a policy for N episodes; print a table, write JSON and CSV",
        description="Evaluate a heuristic (uniform, dus-h, fixed, discrepancy), online REINFORCE (reinforce) "
                    "or a saved agent (.pt / .zip). Writes OUT/results.json and OUT/results.csv.",
        formatter_class=HelpFormatter)
    from mmenv.agents import POLICIES

    p.add_argument("--policy", required=True,
                   help=f"a registered policy ({', '.join(POLICIES.names())}) or the path of a saved agent "
                        "(.pt REINFORCE, .zip SB3)")
    p.add_argument("--policy-kwargs", type=_json_object, default={}, metavar="JSON",
                   help="policy options, e.g. '{\"beta\": 0.4}' for dus-h or '{\"tau\": 0.1}' for discrepancy")
    p.add_argument("--episodes", type=_positive_int, default=1, help="episodes (training runs)")
    p.add_argument("--seed", type=_seed, default=0, help="episode i resets the environment with seed+i")
    p.add_argument("--frozen", action="store_true",
                   help="REINFORCE: no updates during evaluation and deterministic (mean) actions")
    p.add_argument("--out", required=True, type=_out_dir, help="output directory")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_env_arguments(p)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from mmenv.agents import ReinforcePolicy, is_saved_agent, run_policy
    from mmenv.agents.assembly import build_policy, make_run_env

    from .results import std_note

    out: Path = ensure_out_dir(args.out)   # created and writable, or one WriteError line
    env_kwargs = env_kwargs_from_args(args)
    policy_kwargs = dict(args.policy_kwargs)
    # The same decision as mmenv compare: online REINFORCE learns inside the run it
    # controls (the paper's DUS); everything else only acts. --frozen turns REINFORCE
    # into a fixed, deterministic policy.
    policy, learn = build_policy(args.policy, seed=args.seed, policy_kwargs=policy_kwargs, frozen=args.frozen)
    if isinstance(policy, ReinforcePolicy) and not is_saved_agent(args.policy):
        policy_kwargs.setdefault("seed", policy.config.seed)   # results.json records the agent's seed
    env = make_run_env(env_kwargs, policy=policy)   # a saved agent gets the environment it was trained in
    seeds = [args.seed + i for i in range(args.episodes)]
    records = run_policy(env, policy, episodes=args.episodes, seeds=seeds, progress=not args.no_progress,
                         learn=learn)
    env.close()
    label = Path(args.policy).stem if Path(args.policy).suffix else args.policy
    rows = episode_rows(records, label)
    summary = summarise(rows)
    payload = {"command": "evaluate", "policy": args.policy, "policy_kwargs": policy_kwargs, "learn": learn,
               "env": env_kwargs, "agent_card": policy.card.to_dict() if policy.card is not None else None,
               "seeds": seeds, "summary": summary,
               "episodes": [r.to_dict() for r in records]}
    _write_json(out / "results.json", payload)
    write_csv(out / "results.csv", rows)
    modalities = records[0].modalities
    columns = ["seed", "reward_sum", "test_fused_accuracy", "test_fused_map", "test_fused_macro_f1",
               *[f"test_{m}_accuracy" for m in modalities], "mean_batch_sizes", "diverged", "wall_time_s"]
    mean_row: dict[str, Any] = {c: summary[c]["mean"] for c in columns if c in summary}
    mean_row["seed"] = "mean"
    std_row: dict[str, Any] = {c: summary[c]["std"] for c in columns if summary.get(c, {}).get("std") is not None}
    std_row["seed"] = "±"
    extra = [mean_row, std_row] if len(records) > 1 else [mean_row]
    print(f"policy {args.policy}  ({args.episodes} episode(s), batch sizes in order {'/'.join(modalities)}; "
          f"{std_note(len(records))})")
    print(format_table(rows + extra, columns))
    print(f"wrote {out / 'results.json'} and {out / 'results.csv'}")
    return 0


# ---------------------------------------------------------------------- compare
def _add_compare(subparsers) -> None:
    """``mmenv compare``: policies x learners x datasets x seeds (lives in :mod:`mmenv.experiments.compare`)."""
    from mmenv.experiments.compare import add_compare_parser

    add_compare_parser(subparsers)
    parser = subparsers.choices["compare"]
    parser.formatter_class = HelpFormatter  # no repeated "(default: ...)"
    parser.epilog = ("Every option left out keeps the config's value (see the YAML files named above); "
                     "docs/experiments.md describes the config keys and the outputs.")


# ---------------------------------------------------------------------- parser
SUBCOMMANDS: dict[str, Callable[[Any], None]] = {"compare": _add_compare, "train": _add_train,
                                                 "evaluate": _add_evaluate}
SUBCOMMANDS["bench"] = lambda sub: import_module("mmenv.experiments.bench").add_parser(sub)  # mmenv bench


def build_parser() -> argparse.ArgumentParser:
    """The ``mmenv`` parser; its ``subparsers`` attribute is the sub-command group."""
    from mmenv.experiments.compare import registered_names

    # The registries' names now, entry points of installed packages included.
    listing = "\n".join(f"  {kind}: {', '.join(names)}" for kind, names in registered_names().items())
    parser = argparse.ArgumentParser(
        prog="mmenv",
        description="Multimodal training as a Gymnasium environment (Data-aware Unimodal Sampling): "
                    "train sampling agents and evaluate sampling policies.",
        epilog=f"registered names (built in, or added by installed packages through entry points):\n{listing}\n"
               "`mmenv COMMAND --help` shows each command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    from mmenv import __version__

    parser.add_argument("--version", action="version", version=f"mmenv {__version__}")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import MODULE first (repeatable): a module that registers learners, data sets, "
                             "policies, ... in code; compare's worker processes import it too (sets MMENV_PLUGINS)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser.subparsers = subparsers  # type: ignore[attr-defined]
    for add in SUBCOMMANDS.values():
        add(subparsers)
    return parser


def _resume_hint(args: argparse.Namespace) -> str:
    """What re-running the interrupted command does (the one line printed on Ctrl-C)."""
    if args.command == "compare":
        where = Path(args.out) / "runs" if getattr(args, "out", None) else "the output folder's runs/"
        return f"finished runs are saved in {where}; re-run the same command to resume (unfinished runs run again)"
    if args.command == "train" and getattr(args, "agent", None) == "reinforce":
        return (f"finished episodes are saved in {Path(args.out) / 'train.ckpt'}; re-run the same command "
                "with --resume to continue from there")
    if args.command == "train":
        return "SB3 training keeps no checkpoint; re-run the same command to train again"
    return "nothing was written; re-run the same command to start again"


def _use_plugins(argv: Sequence[str] | None) -> None:
    """Apply ``--plugin MODULE`` (before the parser is built, so ``--help`` lists the plugins'
    names): add the modules to ``MMENV_PLUGINS``, which worker processes inherit."""
    import os

    from .registry import PLUGINS_ENV, load_plugins

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--plugin", action="append", default=[])
    known, _ = pre.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    if known.plugin:
        current = [n for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]
        os.environ[PLUGINS_ENV] = ",".join(dict.fromkeys([*current, *known.plugin]))
    load_plugins()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        _use_plugins(argv)
    except MMEnvError as exc:
        print(f"mmenv: error: {exc}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        # Ctrl-C is how a long sweep is stopped: one line on what a re-run does, no traceback.
        print(f"\nmmenv {args.command}: interrupted; {_resume_hint(args)}", file=sys.stderr)
        return 130
    except MMEnvError as exc:
        # The package's own errors (unknown names, bad keywords, malformed data or config)
        # say what is wrong and how to fix it: one line, no traceback. Anything else is a
        # bug and keeps its traceback.
        print(f"mmenv {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
