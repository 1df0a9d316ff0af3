"""The one argument table (mmenv.env_args): DUSEnv's constructor, the compare config's ``env:``
section, instance sets and the command line accept and refuse the same values."""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
from mmenv.experiments.config import ConfigError, config_from_dict
from mmenv.experiments.instances import ENV_KEYS, InstanceSetError, instance_set_from_dict

from mmenv import DUSEnv, MMEnvError
from mmenv.env_args import ENV_ARGS, check_arg
from mmenv.learners import LEARNERS
from mmenv.learners.baseline import BaselineLearner

SMALL = {"n_train": 48, "n_val": 16, "n_test": 16, "dims": 4}

# (argument, value, accepted) for every argument a config may set.
CASES = [
    ("epochs", 1, True), ("epochs", np.int64(3), True), ("epochs", 0, False), ("epochs", -1, False),
    ("epochs", 2.5, False), ("epochs", 2.0, False), ("epochs", "3", False), ("epochs", True, False),
    ("epochs", None, False),
    ("batch_budget", 2, True), ("batch_budget", 64, True), ("batch_budget", 1, False), ("batch_budget", 0, False),
    ("batch_budget", 16.0, False), ("batch_budget", "64", False),
    ("step_every", "epoch", True), ("step_every", 1, True), ("step_every", 7, True), ("step_every", 0, False),
    ("step_every", "epochs", False), ("step_every", 1.5, False), ("step_every", None, False),
    ("reward", "dus", True), ("reward", "val-acc-gain", True), ("reward", "final-val-acc", True),
    ("reward", "discrepancy-gap", True), ("reward", "dsu", False), ("reward", 3, False),
    ("discrepancy", "sum", True), ("discrepancy", "mean", True), ("discrepancy", "max", False),
    ("discrepancy", None, False),
    ("device", "cpu", True), ("device", "cpux", False), ("device", 3, False),
    ("action_space", "unit", True), ("action_space", "symmetric", True), ("action_space", "softmax", True),
    ("action_space", "box", False),
    ("softmax_scale", 0.5, True), ("softmax_scale", 2, True), ("softmax_scale", 0, False),
    ("softmax_scale", -1.0, False), ("softmax_scale", math.nan, False), ("softmax_scale", math.inf, False),
    ("softmax_scale", "1", False),
    ("sample_order", "shuffle", True), ("sample_order", "bss-curriculum", True), ("sample_order", "shufle", False),
    ("sample_order", 1, False),
    ("sample_order_kwargs", None, True), ("sample_order_kwargs", {}, True), ("sample_order_kwargs", [1], False),
    ("sample_order_kwargs", {1: 2}, False),
    ("iters_per_epoch", None, True), ("iters_per_epoch", 3, True), ("iters_per_epoch", 0, False),
    ("iters_per_epoch", 1.5, False),
    ("min_batch", 0, True), ("min_batch", 1, True), ("min_batch", 8, True), ("min_batch", -1, False),
    ("min_batch", 0.5, False),
    ("action_tol", 0, True), ("action_tol", 0.1, True), ("action_tol", 0.5, True), ("action_tol", -0.1, False),
    ("action_tol", 0.6, False), ("action_tol", math.nan, False),
    ("eval_batch_size", 1, True), ("eval_batch_size", 1024, True), ("eval_batch_size", 0, False),
    ("autocast_dtype", None, True), ("autocast_dtype", "bfloat16", True), ("autocast_dtype", "float32", True),
    ("autocast_dtype", "int8", False), ("autocast_dtype", "nonsense", False), ("autocast_dtype", 3, False),
    ("render_mode", None, True), ("render_mode", "ansi", True), ("render_mode", "rgb_array", True),
    ("render_mode", "human", False), ("render_mode", 1, False),
]


def _case_id(case: tuple) -> str:
    return f"{case[0]}={case[1]!r}-{'ok' if case[2] else 'bad'}"


def _constructor_accepts(**kwargs) -> bool:
    kwargs.setdefault("dataset_kwargs", SMALL)
    try:
        DUSEnv(**kwargs).close()
    except MMEnvError:
        return False
    return True


def _config_accepts(env: dict, dataset_kwargs: dict | None = None, learner: str = "baseline") -> bool:
    raw = {"policies": ["uniform"], "learners": [learner], "datasets": ["synthetic"], "env": env,
           "dataset_kwargs": {"synthetic": dataset_kwargs or SMALL}}
    try:
        config_from_dict(raw)
    except ConfigError as exc:
        assert any(f"env.{k}" in str(exc) for k in env), str(exc)   # names the culprit
        return False
    return True


def _instances_accept(env: dict, dataset_kwargs: dict | None = None) -> bool:
    kwargs = dataset_kwargs or SMALL
    data = {"name": "t", "defaults": {"dataset": "synthetic", "learner": "baseline"},
            "train": [{"name": "a", "dataset_kwargs": {**kwargs, "seed": 1}, "env": env}],
            "test": [{"name": "b", "dataset_kwargs": {**kwargs, "seed": 2}}]}
    try:
        instance_set_from_dict(data)
    except InstanceSetError as exc:
        assert any(f"env.{k}" in str(exc) for k in env), str(exc)
        return False
    return True


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_constructor_and_compare_config_agree(case):
    name, value, accepted = case
    assert _constructor_accepts(**{name: value}) is accepted
    assert _config_accepts({name: value}) is accepted


@pytest.mark.parametrize("case", [c for c in CASES if c[0] in ENV_KEYS], ids=_case_id)
def test_instance_sets_agree(case):
    name, value, accepted = case
    assert _instances_accept({name: value}) is accepted
    assert _constructor_accepts(**{name: value}) is accepted


# batch_budget >= m * max(min_batch, 1), with 2 and 3 modalities.
BUDGETS = [
    (2, 1, 2, True), (2, 1, 3, False), (3, 1, 3, True), (4, 2, 2, True), (3, 2, 2, False), (5, 2, 3, False),
    (6, 2, 3, True), (2, 0, 2, True), (2, 0, 3, False), (3, 0, 3, True), (63, 32, 2, False), (64, 32, 2, True),
]


@pytest.mark.parametrize("batch_budget,min_batch,m,accepted", BUDGETS)
def test_batch_budget_against_min_batch_times_modalities(batch_budget, min_batch, m, accepted):
    data = {**SMALL, "num_modalities": m}
    env = {"batch_budget": batch_budget, "min_batch": min_batch}
    assert _constructor_accepts(dataset_kwargs=data, **env) is accepted
    assert _config_accepts(env, data) is accepted
    if min_batch == 1:   # an instance cannot set min_batch: it keeps the default 1
        assert _instances_accept({"batch_budget": batch_budget}, data) is accepted


class _PairedLearner(BaselineLearner):
    name = "paired-test"
    requires_paired = True


def test_paired_learners_need_min_batch_one():
    LEARNERS.register("paired-test", _PairedLearner)
    try:
        assert not _constructor_accepts(learner="paired-test", min_batch=0)
        assert not _config_accepts({"min_batch": 0}, learner="paired-test")
        assert _constructor_accepts(learner="paired-test", min_batch=1)
        assert _config_accepts({"min_batch": 1}, learner="paired-test")
        assert _config_accepts({"min_batch": 0})   # the baseline learns from unpaired rows
    finally:
        LEARNERS.unregister("paired-test")


def test_table_lists_the_constructor_arguments_with_its_defaults():
    params = [p for p in inspect.signature(DUSEnv.__init__).parameters.values() if p.name != "self"]
    assert [p.name for p in params] == list(ENV_ARGS)
    for p in params:
        assert p.default == ENV_ARGS[p.name].default, p.name


def test_every_table_default_passes_its_own_check():
    for name, arg in ENV_ARGS.items():
        check_arg(name, arg.default)
        if arg.choices is not None:
            for choice in arg.choices:
                check_arg(name, choice)


def test_command_line_options_take_the_table_defaults_and_checks(tmp_path, capsys):
    from mmenv.cli import build_parser

    parser = build_parser()
    base = ["evaluate", "--policy", "uniform", "--out", str(tmp_path / "o")]
    args = parser.parse_args(base)
    for name in ("dataset", "learner", "epochs", "batch_budget", "step_every", "reward", "discrepancy",
                 "sample_order", "device"):
        assert getattr(args, name) == ENV_ARGS[name].default, name
    for option, value, culprit in (("--reward", "dsu", "did you mean 'dus'"), ("--step-every", "0", "step_every"),
                                   ("--epochs", "0", "epochs must be an int >= 1"),
                                   ("--batch-budget", "x", "batch_budget: expected")):
        with pytest.raises(SystemExit):
            parser.parse_args([*base, option, value])
        assert culprit in capsys.readouterr().err


# ---------------------------------------------------------------------- docs/environment.md
DOC = (__import__("pathlib").Path(__file__).resolve().parents[1] / "docs" / "environment.md").read_text()


def _doc_rows() -> dict[str, str]:
    """First cell -> whole row of every table row of docs/environment.md (the first row of
    that name: DUSEnv's arguments come before DUSBench's)."""
    import re

    rows: dict[str, str] = {}
    for m in re.finditer(r"^\| `([A-Za-z_-]+)` \|.*$", DOC, re.M):
        rows.setdefault(m.group(1), m.group(0))
    return rows


def test_every_table_argument_is_documented_with_its_default():
    rows = _doc_rows()
    for name, arg in ENV_ARGS.items():
        assert name in rows, f"{name} is not documented in docs/environment.md"
        default = "ln(20) / 2" if name == "softmax_scale" else f"`{arg.default!r}`"
        assert default in rows[name], f"{name}: the documented default is not {default}"


def test_every_reward_and_info_key_is_documented():
    import mmenv
    from mmenv.rewards import REWARDS

    rows = _doc_rows()
    for name in REWARDS.names():
        assert name in rows, f"reward {name!r} is not documented"
    env = mmenv.DUSEnv(dataset_kwargs=SMALL, epochs=1, batch_budget=8, reward="val-acc-gain")
    _, info = env.reset(seed=0)
    keys = set(info)
    _, _, terminated, _, info = env.step(env.uniform_action())
    assert terminated
    keys |= set(info)
    import gymnasium as gym

    bench = gym.make("mmenv/DUSBench-v0", dataset_kwargs=SMALL, epochs=1, batch_budget=8)
    bench.reset(seed=0)
    keys |= set(bench.step(bench.action_space.sample())[4])
    missing = sorted(k for k in keys if k not in rows)
    assert not missing, f"info keys not documented in docs/environment.md: {missing}"
