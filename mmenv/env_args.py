"""The one table of :class:`mmenv.DUSEnv`'s arguments: name, type, range, default, rules.

Every reader of an environment setting checks it here, so the rules cannot drift apart:

* ``DUSEnv.__init__`` checks its arguments with :func:`check_arg` before anything is built,
  and the cross-field rules with :func:`check_cross_field` once the data set (number of
  modalities) and the learner (paired rows or not) are known;
* ``mmenv compare``'s config (``experiments/config.py``, ``env:``) checks the keys it gets
  with :func:`check_arg` and the cross-field rules for every data set x learner of the grid;
* instance sets (``experiments/instances.py``) check the settings an instance fixes the same way;
* the command line (``mmenv/cli.py``) takes its option defaults and choices from :data:`ENV_ARGS`.

A check returns the value as a config keeps it (ints as ``int``, floats as ``float``,
names unchanged) or raises :class:`~mmenv.errors.InvalidArgumentError` (an unknown
registered name: :class:`~mmenv.errors.UnknownNameError`) naming the argument and the fix.

Cross-field rules (:func:`check_cross_field`), for ``m`` modalities:

* ``batch_budget >= m * max(min_batch, 1)``: every modality gets at least ``min_batch``
  rows (and at least one) of the budget;
* ``min_batch >= 1`` for a learner with ``requires_paired = True`` (it cannot learn from a
  batch that lacks a modality).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgumentError
from .render import RENDER_MODES
from .sampling.allocation import ACTION_SPACES, SOFTMAX_SCALE
from .validation import check_choice, check_float, check_int, check_log_dir, is_int

if TYPE_CHECKING:
    from .datasets import MultimodalDataset
    from .learners import Learner

__all__ = ["EnvArg", "ENV_ARGS", "check_arg", "check_cross_field", "check_env_arguments", "dataset_modality_count",
           "learner_requires_paired", "build_dataset", "build_learner", "autocast_dtype_of",
           "kwargs_mapping", "check_optimizer_settings", "DISCREPANCY_MODES", "AUTOCAST_DTYPES", "RENDER_MODES"]

DISCREPANCY_MODES = ("sum", "mean")
#: Reduced precisions autocast can run in (torch.autocast refuses integer types); "float32" = off.
AUTOCAST_DTYPES = ("bfloat16", "float16")


@dataclass(frozen=True)
class EnvArg:
    """One constructor argument of :class:`mmenv.DUSEnv`.

    ``kind`` says in words what it takes (docs, errors); ``choices`` lists a fixed set of
    values (``None``: not a fixed set); ``check(name, value)`` returns the checked value or
    raises; ``per_run``: ``mmenv compare``'s grid sets it for each run (not under ``env:``).
    """

    name: str
    kind: str
    default: Any
    doc: str
    check: Callable[[str, Any], Any]
    choices: tuple[Any, ...] | None = None
    per_run: bool = False


# ---------------------------------------------------------------------- checks
def _int(minimum: int, fix: str = "") -> Callable[[str, Any], int]:
    def check(name: str, value: Any) -> int:
        return check_int(name, value, minimum=minimum, fix=fix)
    return check


def _optional_int(minimum: int, fix: str = "") -> Callable[[str, Any], int | None]:
    def check(name: str, value: Any) -> int | None:
        return None if value is None else check_int(name, value, minimum=minimum, fix=fix)
    return check


def _choice(choices: tuple[Any, ...], optional: bool = False) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> Any:
        if optional and value is None:
            return None
        if optional and (not isinstance(value, str) or value not in choices):
            raise InvalidArgumentError(f"{name} must be None or one of {list(choices)}, got {value!r}")
        return check_choice(name, value, choices)
    return check


def _step_every(name: str, value: Any) -> str | int:
    if isinstance(value, str) and value == "epoch":
        return value
    if not is_int(value) or int(value) < 1:
        raise InvalidArgumentError(f"{name} must be 'epoch' or a positive int of iterations, got {value!r}")
    return int(value)


def _mapping(name: str, value: Any) -> Any:
    if value is not None and not (isinstance(value, Mapping) and all(isinstance(k, str) for k in value)):
        raise InvalidArgumentError(f"{name} must be a mapping of keyword arguments, got {value!r}")
    return value


def _registered(registry_module: str, registry_attr: str, instance_module: str, instance_attr: str,
                what: str) -> Callable[[str, Any], Any]:
    """A registered name (unknown: ``UnknownNameError`` with did-you-mean) or an instance of a class."""
    def check(name: str, value: Any) -> Any:
        import importlib

        if isinstance(value, str):
            getattr(importlib.import_module(registry_module), registry_attr).canonical(value)
            return value
        cls = getattr(importlib.import_module(instance_module), instance_attr)
        if not isinstance(value, cls):
            raise InvalidArgumentError(f"{name} must be a registered name or a {what}, got {type(value).__name__}")
        return value
    return check


def _reward(name: str, value: Any) -> Any:
    if isinstance(value, str):
        from .rewards import REWARDS

        REWARDS.canonical(value)
        return value
    if not callable(value):
        raise InvalidArgumentError(f"{name} must be a registered name or a callable f(RewardContext) -> float, "
                                   f"got {value!r}")
    return value


def _device(name: str, value: Any) -> Any:
    import torch

    if not isinstance(value, (str, torch.device)):
        raise InvalidArgumentError(f"{name} must be a string such as 'cpu' or 'cuda:0' or a torch.device, "
                                   f"got {value!r}")
    try:
        torch.device(value)
    except (RuntimeError, ValueError) as exc:
        raise InvalidArgumentError(f"{name} {value!r} is not a torch device ({exc}); use e.g. 'cpu' or 'cuda'") \
            from None
    return value


def _autocast_dtype(name: str, value: Any) -> Any:
    """``None``, a name in ``AUTOCAST_DTYPES + ("float32",)`` or the matching ``torch.dtype``."""
    import torch

    if value is None:
        return None
    dtype = getattr(torch, value, None) if isinstance(value, str) else value
    if not isinstance(dtype, torch.dtype) or str(dtype).removeprefix("torch.") not in AUTOCAST_DTYPES + ("float32",):
        raise InvalidArgumentError(f"{name} must be None or one of {list(AUTOCAST_DTYPES)} (a torch.dtype "
                                   f"or its name), got {value!r}")
    return value


def _log_dir(name: str, value: Any) -> Any:
    check_log_dir(value)  # None or a non-empty folder path ('' would log into ./runs/)
    return value


def _positive_float(name: str, value: Any) -> float:
    return check_float(name, value, minimum=0.0, strict_minimum=True)


def _action_tol(name: str, value: Any) -> float:
    return check_float(name, value, minimum=0.0, maximum=0.5,
                       fix="it is the tolerated float overshoot of the action bounds, e.g. 1e-6")


def _arg(name: str, kind: str, default: Any, doc: str, check: Callable[[str, Any], Any],
         choices: tuple[Any, ...] | None = None, per_run: bool = False) -> tuple[str, EnvArg]:
    return name, EnvArg(name, kind, default, doc, check, choices, per_run)


#: Every :class:`mmenv.DUSEnv` argument, in the constructor's order.
ENV_ARGS: dict[str, EnvArg] = dict([
    _arg("dataset", "registered data set name or MultimodalDataset", "synthetic",
         "the data set to train on", _registered("mmenv.datasets", "DATASETS", "mmenv.datasets", "MultimodalDataset",
                                                 "MultimodalDataset"), per_run=True),
    _arg("learner", "registered learner name or Learner", "baseline",
         "the multimodal learning method", _registered("mmenv.learners", "LEARNERS", "mmenv.learners", "Learner",
                                                       "Learner"), per_run=True),
    _arg("epochs", "int >= 1", 5, "training epochs per episode (E)", _int(1)),
    _arg("batch_budget", "int >= m * max(min_batch, 1)", 64,
         "N_B, the total batch size the modalities share", _int(1)),
    _arg("step_every", "'epoch' or int >= 1", "epoch",
         "one step per epoch (Algorithm 1) or one step every k iterations", _step_every),
    _arg("reward", "registered reward name or callable", "dus",
         "the reward (mmenv.rewards: dus, discrepancy-gap, val-acc-gain, ...)", _reward),
    _arg("discrepancy", "choice", "sum", "the batch discrepancy: summed (paper) or mean true-class probability",
         _choice(DISCREPANCY_MODES), choices=DISCREPANCY_MODES),
    _arg("device", "torch device (name or torch.device)", "cpu", "device of data, model, sampling and tracking",
         _device),
    _arg("dataset_kwargs", "mapping or None", None, "keyword arguments of the data set builder (dataset by name)",
         _mapping, per_run=True),
    _arg("learner_kwargs", "mapping or None", None, "keyword arguments of the learner (learner by name)",
         _mapping, per_run=True),
    _arg("action_space", "choice", "unit", "the action space: [0, 1] proportions, [-1, 1] affine or [-1, 1] logits",
         _choice(ACTION_SPACES), choices=ACTION_SPACES),
    _arg("softmax_scale", "float > 0", SOFTMAX_SCALE, "logit scale of the softmax action space (ln(20) / 2)",
         _positive_float),
    _arg("sample_order", "registered sample-order name or SampleOrder", "shuffle",
         "which samples fill the batches (shuffle, bss-curriculum, bss-learned, remix, ...)",
         _registered("mmenv.sampling", "SAMPLE_ORDERS", "mmenv.sampling", "SampleOrder", "SampleOrder")),
    _arg("sample_order_kwargs", "mapping or None", None, "keyword arguments of the sample order (by name)",
         _mapping),
    _arg("iters_per_epoch", "int >= 1 or None", None, "iterations per epoch (None: ceil(N_train * m / N_B))",
         _optional_int(1, fix="pass None for the default ceil(N_train * m / N_B)")),
    _arg("min_batch", "int >= 0 (>= 1 for learners that need paired rows)", 1,
         "the smallest batch a modality gets", _int(0)),
    _arg("action_tol", "float in [0, 0.5]", 1e-6, "tolerated float overshoot of the action bounds (clipped)",
         _action_tol),
    _arg("eval_batch_size", "int >= 1", 1024, "batch size of validation and test passes", _int(1)),
    _arg("log_dir", "folder path or None", None, "TensorBoard scalars are written there every step", _log_dir,
         per_run=True),
    _arg("autocast_dtype", "None, 'bfloat16', 'float16', 'float32' or the torch.dtype", None,
         "reduced precision of training and prediction (torch.autocast); float32 = off", _autocast_dtype,
         choices=(None, "bfloat16", "float16", "float32")),
    _arg("render_mode", "None or choice", None, "what render() returns: a text summary or an RGB picture",
         _choice(RENDER_MODES, optional=True), choices=(None, *RENDER_MODES)),
])


def check_arg(name: str, value: Any) -> Any:
    """``value`` checked against :data:`ENV_ARGS` ``[name]`` (see the module docstring)."""
    if name not in ENV_ARGS:   # internal invariant: callers pass names from ENV_ARGS
        raise KeyError(name)
    return ENV_ARGS[name].check(name, value)


def check_cross_field(values: Mapping[str, Any], num_modalities: int, requires_paired: bool = False,
                      learner: str = "") -> None:
    """The rules between arguments, for a data set of ``num_modalities`` modalities and a
    learner that needs paired rows or not; missing arguments take their defaults."""
    min_batch = values.get("min_batch", ENV_ARGS["min_batch"].default)
    batch_budget = values.get("batch_budget", ENV_ARGS["batch_budget"].default)
    m = int(num_modalities)
    if batch_budget < m * max(min_batch, 1):
        raise InvalidArgumentError(f"batch_budget must be an int >= {m * max(min_batch, 1)} for {m} modalities "
                                   f"(min_batch {min_batch} each), got {batch_budget!r}")
    if requires_paired and min_batch < 1:
        raise InvalidArgumentError(f"learner {learner!r} needs paired samples: min_batch must be >= 1")


def check_env_arguments(values: Mapping[str, Any], num_modalities: int | None = None,
                        requires_paired: bool = False, learner: str = "") -> dict[str, Any]:
    """Every entry of ``values`` checked with :func:`check_arg`, then the cross-field rules
    when ``num_modalities`` is known. Returns the checked values."""
    out = {name: check_arg(name, value) for name, value in values.items()}
    if num_modalities is not None:
        check_cross_field(out, num_modalities, requires_paired, learner)
    return out


# ---------------------------------------------------------------------- context of the cross-field rules
def dataset_modality_count(name: str, kwargs: Mapping[str, Any] | None = None) -> int | None:
    """How many modalities the data set registered as ``name`` has with builder ``kwargs``,
    without building it; ``None`` when that cannot be told beforehand (the constructor
    then checks the rule on the built data set).

    A builder declares it with an attribute ``modality_count(kwargs) -> int | None``
    (the built-in ones do: :mod:`mmenv.datasets`).
    """
    from .datasets import DATASETS

    if name not in DATASETS or not DATASETS.is_loaded(name):
        return None
    counter = getattr(DATASETS.get_factory(name), "modality_count", None)
    if counter is None:
        return None
    try:
        count = counter(dict(kwargs or {}))
    except (TypeError, ValueError):   # malformed kwargs: the builder reports them itself
        return None
    return int(count) if is_int(count) else None


def learner_requires_paired(name: str) -> bool:
    """Whether the learner registered as ``name`` needs paired rows (its class attribute)."""
    from .learners import LEARNERS

    if name not in LEARNERS or not LEARNERS.is_loaded(name):
        return False
    return bool(getattr(LEARNERS.get_factory(name), "requires_paired", False))


# ---------------------------------------------------------------------- building what the arguments name
def kwargs_mapping(name: str, value: Any) -> dict[str, Any]:
    """A ``*_kwargs`` argument as a dict of keyword arguments (``None``: none)."""
    return dict(_mapping(name, value) or {})


def autocast_dtype_of(value: Any) -> Any:
    """The ``torch.dtype`` an ``autocast_dtype`` argument names (``None``: full precision;
    ``float32`` is full precision too)."""
    import torch

    _autocast_dtype("autocast_dtype", value)
    if value is None:
        return None
    dtype = getattr(torch, value) if isinstance(value, str) else value
    return None if dtype == torch.float32 else dtype


def build_dataset(dataset: Any, dataset_kwargs: Mapping[str, Any] | None) -> MultimodalDataset:
    """The :class:`~mmenv.datasets.MultimodalDataset` a ``dataset`` argument names (or is)."""
    from .datasets import make_dataset

    if isinstance(dataset, str):
        return make_dataset(dataset, **kwargs_mapping("dataset_kwargs", dataset_kwargs))
    check_arg("dataset", dataset)
    if dataset_kwargs:
        raise InvalidArgumentError("dataset_kwargs only apply when dataset is given by name")
    return dataset


def build_learner(learner: Any, learner_kwargs: Mapping[str, Any] | None) -> Learner:
    """The :class:`~mmenv.learners.Learner` a ``learner`` argument names (or is), its optimizer
    settings checked before anything trains."""
    from .learners import make_learner

    if isinstance(learner, str):
        learner = make_learner(learner, **kwargs_mapping("learner_kwargs", learner_kwargs))
    else:
        check_arg("learner", learner)
        if learner_kwargs:
            raise InvalidArgumentError("learner_kwargs only apply when learner is given by name")
    check_optimizer_settings(learner)
    return learner


def check_optimizer_settings(learner: Any) -> None:
    """The optimizer settings a built-in learner keeps (``opt_kwargs``), checked before training."""
    opt = getattr(learner, "opt_kwargs", None)
    if not isinstance(opt, Mapping):
        return
    owner = f"learner {learner.name!r}"
    if "lr" in opt:
        check_float("lr", opt["lr"], minimum=0.0, strict_minimum=True, owner=owner)
    for key in ("momentum", "weight_decay"):
        if key in opt:
            check_float(key, opt[key], minimum=0.0, owner=owner)
    if "optimizer" in opt:
        check_choice("optimizer", opt["optimizer"], ("sgd", "adam"), owner=owner)
