"""Hostile bench presets, instance sets and YAML, property-based (like the compare-config suite
of ``tests/test_hostile_edges.py``): every generated value either loads as documented or
raises the file kind's :class:`mmenv.MMEnvError` subclass naming the key, before any run;
never another exception type, never silence."""

from __future__ import annotations

import json
import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mmenv.experiments.bench_config import BenchConfigError, bench_config_from_dict, load_bench_config
from mmenv.experiments.config import ConfigError, load_config
from mmenv.experiments.instances import InstanceSetError, instance_set_from_dict, load_instance_set

from mmenv.errors import MMEnvError
from mmenv.yamlio import parse_yaml
from tests.bench_fixtures import TINY_SET

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                           HealthCheck.too_slow])
junk = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.integers(2**24 - 1, 2**33),
                 st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4),
                 st.sampled_from([[], {}, [0], [0.5], [0, 0], [-1], ["a"], [1, 2], [0.2, 0.8], "test", "ray",
                                  {"shares": [0.2]}, {"x": 1}, [["train"]], [{"algo": "reinforce"}], 1.5, 0, "",
                                  "runs/x", [True], ["train", "test"], {"reinforce": {"lr": 0.1}}]))
PRESET_KEYS = ["name", "description", "tuning_seeds", "eval_seeds", "curve_seeds", "grid", "tuned_constant_shares",
               "references", "reference_kwargs", "headroom_splits", "agents", "curve_every", "workers", "backend",
               "out", "plots", "tensorboard", "bootstrap_resamples", "instance_sets", "evals_seeds", "agent"]


@pytest.fixture(scope="module")
def set_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("sets") / "tiny-set.yaml"
    path.write_text(yaml.safe_dump(TINY_SET))
    return path


def _base(set_path):
    return {"instance_sets": [str(set_path)], "tuning_seeds": [100], "eval_seeds": [0], "curve_seeds": [200]}


def _named(exc: Exception, key: str) -> bool:
    text = str(exc)
    return key in text or key.split(".")[0] in text


@SETTINGS
@given(key=st.sampled_from(PRESET_KEYS), value=junk)
def test_hostile_preset_key_loads_or_names_the_key(set_path, key, value):
    raw = _base(set_path) | {key: value}
    try:
        cfg = bench_config_from_dict(raw)
    except BenchConfigError as exc:
        assert _named(exc, key) or "seeds" in str(exc), (key, value, str(exc))
        return
    # accepted: kept as given, of the documented type
    kept = getattr(cfg, key)
    if key.endswith("seeds"):
        assert kept == value and all(0 <= s < 2**24 for s in kept)
    elif key in ("workers", "bootstrap_resamples", "curve_every"):
        assert kept == value and (value is None or (isinstance(value, int) and value >= 1))
    elif key in ("plots", "tensorboard"):
        assert kept is value
    elif key == "out":
        assert isinstance(kept, str) and kept.strip()


AGENT_FIELDS = ["algo", "runs", "seed", "reward", "observation", "workers", "label", "options", "typo"]


@SETTINGS
@given(field=st.sampled_from(AGENT_FIELDS), value=junk)
def test_hostile_agent_field_loads_or_names_the_field(set_path, field, value):
    agent = {"algo": "reinforce", "runs": 2, field: value}
    try:
        cfg = bench_config_from_dict(_base(set_path) | {"agents": [agent]})
    except BenchConfigError as exc:
        assert "agents[0]" in str(exc), (field, value, str(exc))
        return
    spec = cfg.agents[0]
    assert spec.algo in ("reinforce", "ppo", "sac", "td3") and spec.runs >= 1 and spec.workers >= 1
    assert isinstance(spec.seed, int) and spec.seed >= 0
    assert spec.reward in ("val-acc-gain", "final-val-acc", "dus") and spec.observation in ("paper", "extended")


SECTIONS = ["dataset_kwargs", "learner_kwargs", "env", "tags"]
SECTION_KEYS = {"dataset_kwargs": ["n_train", "seed", "dims", "strong_snr", "typo_key"],
                "learner_kwargs": ["lr", "momentum", "lrr", "weight_decay"],
                "env": ["epochs", "batch_budget", "step_every", "reward"], "tags": ["kind", "strong"]}


@SETTINGS
@given(section=st.sampled_from(SECTIONS), data=st.data())
def test_hostile_instance_section_loads_or_names_the_key(section, data):
    key = data.draw(st.sampled_from(SECTION_KEYS[section]))
    value = data.draw(junk)
    raw = json.loads(json.dumps(TINY_SET))
    raw["train"][0][section] = {**raw["train"][0].get(section, {}), key: value}
    try:
        iset = instance_set_from_dict(raw)
    except InstanceSetError as exc:
        assert key in str(exc) or section in str(exc), (section, key, value, str(exc))
        return
    inst = iset.train[0]
    if section == "env":
        assert getattr(inst, key) == value and not isinstance(value, bool)
    elif section == "tags":
        assert inst.tags[key] == value or (isinstance(value, float) and math.isnan(value))
    else:
        kept = getattr(inst, section)[key]
        assert kept == value or (isinstance(value, float) and math.isnan(value))


INSTANCE_KEYS = ["name", "dataset", "learner", "dataset_kwargs", "learner_kwargs", "env", "tags", "lerner"]


@SETTINGS
@given(key=st.sampled_from(INSTANCE_KEYS), value=junk)
def test_hostile_instance_entry_loads_or_is_an_instance_set_error(key, value):
    raw = json.loads(json.dumps(TINY_SET))
    raw["test"][1][key] = value
    try:
        instance_set_from_dict(raw)
    except InstanceSetError as exc:
        assert "tiny-synthetic" in str(exc)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_random_bytes_as_any_yaml_file_are_its_package_error(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("junk") / "junk.yaml"
    path.write_bytes(blob)
    for load, error in ((load_bench_config, BenchConfigError), (load_instance_set, InstanceSetError),
                        (load_config, ConfigError)):
        try:
            load(path)
        except error as exc:
            assert "junk" in str(exc), str(exc)      # names the file (or the set, named after it)
        # (a blob that happens to be a valid file of that kind loads)


@settings(max_examples=150, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("ab:-[]{},&*!|>'\"\n #0123456789.eE+x<")), max_size=80))
def test_yaml_reader_returns_data_or_one_package_error(text):
    try:
        parse_yaml(text)
    except MMEnvError as exc:
        assert str(exc)


def test_every_shipped_preset_and_set_loads_with_the_strict_rules():
    from mmenv.experiments.bench_config import list_bench_presets
    from mmenv.experiments.instances import list_instance_sets

    for name in list_bench_presets():
        load_bench_config(name)
    for name in list_instance_sets():
        load_instance_set(name)
