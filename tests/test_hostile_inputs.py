"""Hostile inputs, property-based: every action and every data set either works or fails clearly.

"Works" is checked by the conservation laws (batch sizes sum to N_B, each at least
``min_batch``, finite observation in [0, 1], finite reward); "fails clearly" means
:class:`mmenv.sampling.ActionError` / :class:`mmenv.datasets.DatasetError` (both
``ValueError``\\ s) with a message, never an error from deep inside torch/NumPy and
never a silent NaN.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mmenv import DUSEnv
from mmenv.datasets import DatasetError, MultimodalDataset, make_synthetic, tensor_dataset
from mmenv.sampling import ActionError

BUDGET = 12
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def envs():
    data = make_synthetic(n_train=48, n_val=16, n_test=32, seed=3)
    out = {}
    for space in ("unit", "symmetric"):
        env = DUSEnv(dataset=data, epochs=50, batch_budget=BUDGET, step_every=1, action_space=space,
                     eval_batch_size=64)
        env.reset(seed=0)
        out[space] = env
    return out


def check_step_or_clear_error(env: DUSEnv, action) -> str:
    """Step ``env`` with ``action``; assert the outcome is valid or a clear ``ValueError``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # NumPy overflow/invalid warnings count as silent NaNs
            obs, reward, terminated, truncated, info = env.step(action)
    except ValueError as exc:  # ActionError is a ValueError
        assert str(exc), "error without a message"
        assert isinstance(exc, ActionError), f"plain ValueError from deep inside: {exc!r}"
        return "error"
    sizes = info["batch_sizes"]
    assert sum(sizes) == BUDGET and all(isinstance(s, int) and s >= env.min_batch for s in sizes)
    assert np.all(np.isfinite(info["proportions"])) and abs(sum(info["proportions"]) - 1.0) < 1e-9
    assert obs.dtype == np.float32 and np.all(np.isfinite(obs)) and np.all((obs >= 0) & (obs <= 1))
    assert np.isfinite(reward)
    if terminated or truncated:
        env.reset(seed=1)
    return "step"


hostile_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-320, 1 + 1e-7, 1 + 1e-5, -1e-7, 1e308, -1e308]),
)


@SETTINGS
@given(values=st.lists(hostile_floats, min_size=2, max_size=2), space=st.sampled_from(["unit", "symmetric"]))
def test_any_float_pair_steps_validly_or_raises_action_error(envs, values, space):
    env = envs[space]
    outcome = check_step_or_clear_error(env, np.array(values))
    lo = -1.0 if space == "symmetric" else 0.0
    in_space = all(np.isfinite(v) and lo - 1e-6 <= v <= 1 + 1e-6 for v in values)
    assert outcome == ("step" if in_space else "error"), (values, outcome)


dtypes = st.sampled_from([np.float16, np.float32, np.float64, np.int8, np.int64, np.uint8, np.bool_,
                          np.complex64])


@SETTINGS
@given(action=hnp.arrays(dtype=dtypes, shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)))
def test_any_shape_and_dtype_steps_validly_or_raises_action_error(envs, action):
    outcome = check_step_or_clear_error(envs["unit"], action)
    if action.shape not in {(2,), (1, 2)} or np.iscomplexobj(action):
        assert outcome == "error"


# Actions that are not a sequence of m = 2 numbers: scalars (shape ()), strings, None, dicts,
# lists with a non-number or of another length. (A list of two numbers is a valid action:
# test_special_actions.)
_not_a_number = st.one_of(st.text(max_size=2), st.none())
non_array_actions = st.one_of(
    st.none(), st.text(max_size=3), st.integers(), st.floats(),
    st.lists(st.floats(), max_size=3).filter(lambda v: len(v) != 2),
    st.lists(st.one_of(_not_a_number, st.floats()), min_size=1, max_size=3).filter(
        lambda v: any(x is None or isinstance(x, str) for x in v)),
    st.dictionaries(st.text(max_size=2), st.floats(), max_size=2))


@SETTINGS
@given(action=non_array_actions)
def test_non_array_actions_raise_action_error(envs, action):
    assert check_step_or_clear_error(envs["unit"], action) == "error", f"{action!r} was stepped"


def test_special_actions(envs):
    env = envs["unit"]
    for action in (np.zeros(2), np.zeros(2, dtype=np.int64), [0, 0], np.array([[0.5, 0.5]])):
        check_step_or_clear_error(env, action)
    _, _, _, _, info = env.step(np.zeros(2, dtype=np.float32))
    assert info["batch_sizes"] == [6, 6]  # all zeros: no preference, uniform
    _, _, _, _, info = env.step(np.array([1.0, 0.0]))
    assert info["batch_sizes"] == [11, 1]  # a modality at 0 keeps min_batch
    for bad in (torch.ones(2, requires_grad=True), np.array(["a", "b"]), np.array([0.5, None], dtype=object)):
        assert check_step_or_clear_error(env, bad) == "error"


# ---------------------------------------------------------------- data sets
@st.composite
def raw_splits(draw):
    """(train, test, num_classes) with random — often inconsistent — shapes and labels."""
    n_mod = draw(st.integers(0, 3))
    names = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n_mod, max_size=n_mod))
    label_dtype = draw(st.sampled_from([np.int64, np.int32, np.float32, np.float64, np.bool_, np.uint8]))
    elements = st.one_of(st.floats(-3, 12, width=32), st.sampled_from([float("nan"), float("inf"), -float("inf")]))
    label_elements = {np.bool_: None, np.uint8: st.integers(0, 12), np.int32: st.integers(-3, 12),
                      np.int64: st.integers(-3, 12)}.get(label_dtype, elements)

    def split():
        n = draw(st.integers(0, 6))
        labels = draw(hnp.arrays(label_dtype, draw(st.sampled_from([(n,), (n, 1), ()])),
                                 elements=label_elements))
        inputs = {}
        for name in names:
            rows = draw(st.sampled_from([n, n, n, max(n - 1, 0), n + 1]))
            shape = draw(st.sampled_from([(rows, 3), (rows, 2), (rows,), (rows, 2, 2), ()]))
            inputs[name] = torch.as_tensor(draw(hnp.arrays(np.float32, shape, elements=elements)))
        return inputs, torch.as_tensor(labels)

    num_classes = draw(st.one_of(st.none(), st.integers(-1, 12)))
    return split(), split(), num_classes


@settings(max_examples=50, deadline=None)
@given(spec=raw_splits())
def test_tensor_dataset_is_valid_or_raises_dataset_error(spec):
    train, test, num_classes = spec
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            ds = tensor_dataset("fuzz", train, test, num_classes=num_classes)
    except DatasetError as exc:
        assert str(exc)
        return
    assert isinstance(ds, MultimodalDataset) and len(ds.modalities) >= 2 and ds.num_classes >= 2
    for split in (ds.train, ds.test):
        n = len(split)
        assert n > 0 and split.labels.dtype == torch.long
        assert int(split.labels.min()) >= 0 and int(split.labels.max()) < ds.num_classes
        for spec_ in ds.modalities:
            x = split.inputs[spec_.name]
            assert x.shape[0] == n and tuple(x.shape[1:]) == spec_.shape
            assert torch.isfinite(x).all()


def test_dataset_errors_name_the_problem():
    x = {"a": torch.zeros(4, 2), "b": torch.zeros(4, 3)}
    with pytest.raises(DatasetError, match="modality 'b' has 3 samples but there are 4 labels"):
        tensor_dataset("d", (x | {"b": torch.zeros(3, 3)}, torch.zeros(4)), (x, torch.zeros(4)))
    with pytest.raises(DatasetError, match="NaN or inf"):
        tensor_dataset("d", (x | {"a": torch.full((4, 2), float("nan"))}, torch.zeros(4)), (x, torch.zeros(4)))
    with pytest.raises(DatasetError, match="labels must lie in"):
        tensor_dataset("d", (x, torch.tensor([0, 1, 2, 5])), (x, torch.zeros(4)), num_classes=3)


# ---------------------------------------------------------------- comparison config files
TINY_CONFIG = {
    "name": "fuzz", "seeds": 1, "policies": ["uniform"], "learners": ["baseline"], "datasets": ["synthetic"],
    "env": {"epochs": 1, "batch_budget": 16}, "dataset_kwargs": {"synthetic": {"n_train": 64}},
    "learner_kwargs": {}, "policy_kwargs": {}, "workers": 1, "backend": "process", "out": "runs/x",
    "plots": False, "tensorboard": False,
}
junk = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=4),
                 st.lists(st.one_of(st.integers(-2, 2), st.text(max_size=3)), max_size=3),
                 st.dictionaries(st.text(max_size=4), st.one_of(st.integers(-2, 2), st.text(max_size=3)),
                                 max_size=2))


@settings(max_examples=50, deadline=None)
@given(key=st.sampled_from(sorted(TINY_CONFIG) + ["env.epochs", "env.batch_budget", "env.step_every", "polices"]),
       value=junk)
def test_malformed_compare_config_names_the_key(tmp_path_factory, key, value):
    pytest.importorskip("mmenv.experiments.config")
    import yaml
    from mmenv.experiments.config import ConfigError, load_config

    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in TINY_CONFIG.items()}
    if key.startswith("env."):
        raw["env"][key[4:]] = value
    else:
        raw[key] = value
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    try:
        cfg = load_config(str(path))
    except ConfigError as exc:
        assert key.split(".")[-1] in str(exc) or key.split(".")[0] in str(exc), (key, str(exc))
        return
    assert cfg.policies and cfg.learners and cfg.datasets and cfg.seeds  # a valid config


def test_unreadable_compare_config_files(tmp_path):
    pytest.importorskip("mmenv.experiments.config")
    from mmenv.experiments.config import ConfigError, load_config

    (tmp_path / "bad.yaml").write_text("policies: [uniform\nlearners: baseline: x")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(tmp_path / "bad.yaml"))
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(str(tmp_path / "list.yaml"))
    (tmp_path / "typo.yaml").write_text("polices: [uniform]\nlearners: [baseline]\ndatasets: [synthetic]\n")
    with pytest.raises(ConfigError, match="unknown key 'polices' \\(did you mean 'policies'\\?\\)"):
        load_config(str(tmp_path / "typo.yaml"))
