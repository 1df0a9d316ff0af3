"""The one registry idiom: registering, building with keyword checks, hints, entry points."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from mmenv.agents import POLICIES, PolicyError, make_policy
from mmenv.agents.sb3 import SB3_ALGOS
from mmenv.experiments.config import ConfigError

import mmenv
from mmenv import DUSEnv
from mmenv.checkpoint import CheckpointError
from mmenv.datasets import DATASETS, DatasetError
from mmenv.errors import ArgumentError, MMEnvError, RegistryError, UnknownNameError
from mmenv.learners import LEARNERS, BaselineLearner, LearnerError, MLALearner, make_learner
from mmenv.registry import Registry
from mmenv.rewards import REWARDS, dus_reward, make_reward
from mmenv.sampling import SAMPLE_ORDERS, ActionError
from mmenv.vector_env import VectorEnvError

TINY_DATA = {"n_train": 120, "n_val": 40, "n_test": 120}


def _thing(alpha: int = 1, beta: float = 2.0) -> tuple:
    return alpha, beta


def test_register_make_and_overwrite_check():
    reg = Registry("widget", "mmenv.test_widgets")
    assert reg.register("Thing", _thing) is _thing
    assert reg.make("thing", alpha=3) == (3, 2.0)
    assert reg.make("  THING ") == (1, 2.0)          # case-insensitive, outer spaces ignored
    assert "tHiNg" in reg and "other" not in reg
    assert reg.names() == ["Thing"] and list(reg) == ["Thing"] and len(reg) == 1
    with pytest.raises(RegistryError, match="already registered.*overwrite=True"):
        reg.register("thing", lambda: None)
    reg.register("thing", lambda: "new", overwrite=True)
    assert reg.make("thing") == "new"
    reg.unregister("THING")
    assert "thing" not in reg


def test_unknown_keyword_is_named_with_hint_and_valid_list():
    with pytest.raises(ArgumentError) as info:
        make_learner("mla", lrr=0.1)
    msg = str(info.value)
    assert "'lrr'" in msg and "did you mean 'lr'" in msg and "loss_scale" in msg and "weight_decay" in msg
    assert isinstance(info.value, TypeError) and isinstance(info.value, MMEnvError)
    # a missing required argument is named too (crema-d needs its root folder)
    with pytest.raises(ArgumentError, match="required argument: 'root'"):
        mmenv.make_dataset("crema-d")
    # keywords of a subclass that forwards **kwargs are checked through its base class
    class Sub(BaselineLearner):
        def __init__(self, extra: int = 0, **kwargs):
            super().__init__(**kwargs)
            self.extra = extra

    reg = Registry("learner", "mmenv.test_learners")
    reg.register("sub", Sub)
    assert reg.make("sub", extra=2, lr=0.5).extra == 2
    with pytest.raises(ArgumentError, match="'lrr'.*did you mean 'lr'"):
        reg.make("sub", lrr=0.5)
    # **options a class consumes itself (no base __init__ to forward to) are left to the class
    agent = make_policy("reinforce", seed=0, lr=1e-3, mode="episodic")
    assert agent.config.lr == 1e-3 and agent.config.mode == "episodic"
    with pytest.raises(PolicyError, match="unknown REINFORCE option"):
        make_policy("reinforce", seed=0, lrr=1e-3)


def test_unknown_name_hint_and_listing():
    with pytest.raises(UnknownNameError) as info:
        make_learner("mlaa")
    msg = str(info.value)
    assert "did you mean 'mla'" in msg and "baseline" in msg and "di-mml" in msg
    assert isinstance(info.value, ValueError)            # code catching ValueError keeps working
    with pytest.raises(PolicyError, match="did you mean 'dus-h'"):
        make_policy("dus_h")
    with pytest.raises(PolicyError, match="valid names: a2c, ars, crossq, ddpg, ppo, recurrentppo, sac, td3, tqc, trpo"):
        SB3_ALGOS.make("dqn")
    # case-insensitive lookups through the old helpers
    assert isinstance(make_learner("MLA"), MLALearner)
    assert make_policy("Uniform").name == "uniform"
    assert make_reward("DUS") is dus_reward
    assert SB3_ALGOS.make("PPO").__name__ == "PPO"
    for reg, names in ((DATASETS, {"synthetic", "uci-mfeat"}), (LEARNERS, {"baseline", "mla"}),
                       (SAMPLE_ORDERS, {"shuffle", "remix", "bss-curriculum"}), (POLICIES, {"uniform", "reinforce"}),
                       (REWARDS, {"dus", "val-acc-gain"})):
        assert names <= set(reg.names())


def test_pass_through_objects_and_non_constructing_registries():
    learner = BaselineLearner()
    assert LEARNERS.make(learner) is learner
    with pytest.raises(RegistryError, match="learner_kwargs only apply when learner is given by name"):
        LEARNERS.make(learner, lr=0.1)
    with pytest.raises(RegistryError, match="expected a registered name or a Learner"):
        LEARNERS.make(3)
    assert REWARDS.make("dus") is dus_reward           # a reward is the callable itself
    with pytest.raises(ArgumentError, match="takes no keyword arguments"):
        REWARDS.make("dus", eps=1.0)


def test_lazy_reference_imports_on_first_use(tmp_path, monkeypatch):
    (tmp_path / "lazy_widget_mod.py").write_text("LOADED = True\ndef build(n=1):\n    return ['built'] * n\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("widget", "mmenv.test_widgets")
    reg.register("lazy", "lazy_widget_mod:build")
    assert "lazy_widget_mod" not in sys.modules          # registering imports nothing
    assert reg.make("lazy", n=2) == ["built", "built"]
    reg.register("broken", "no_such_module_xyz:thing")
    with pytest.raises(RegistryError, match="cannot import no_such_module_xyz:thing"):
        reg.make("broken")
    with pytest.raises(RegistryError, match="module:attribute"):
        reg.register("bad", "not-a-reference")


def test_every_package_error_derives_from_mmenv_error():
    for cls in (ActionError, DatasetError, ConfigError, PolicyError, CheckpointError, LearnerError,
                VectorEnvError, RegistryError, UnknownNameError, ArgumentError):
        assert issubclass(cls, MMEnvError), cls
    for cls in (ActionError, DatasetError, ConfigError, PolicyError, CheckpointError, LearnerError, VectorEnvError):
        assert issubclass(cls, ValueError), cls     # earlier code caught them as ValueError


# ---------------------------------------------------------------------- entry points
def _install_fake_distribution(root: Path) -> None:
    """A package exposing a learner, a reward and a policy through entry points, as pip would
    install it: the module plus a ``*.dist-info`` folder with ``entry_points.txt``."""
    (root / "mmenv_ep_plugin.py").write_text(textwrap.dedent('''
        from mmenv.agents import UniformPolicy
        from mmenv.learners import BaselineLearner


        class PluginLearner(BaselineLearner):
            """The baseline learner with a marker keyword, shipped by another package."""

            name = "plugin-learner"

            def __init__(self, marker: int = 0, **kwargs):
                super().__init__(**kwargs)
                self.marker = marker


        def constant_reward(ctx):
            return 0.5


        class PluginPolicy(UniformPolicy):
            name = "plugin-policy"
    '''))
    info = root / "mmenv_ep_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mmenv-ep-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[mmenv.learners]\nplugin-learner = mmenv_ep_plugin:PluginLearner\n\n"
        "[mmenv.rewards]\nplugin-constant = mmenv_ep_plugin:constant_reward\n\n"
        "[mmenv.policies]\nplugin-policy = mmenv_ep_plugin:PluginPolicy\n")


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    root = tmp_path / "site"
    root.mkdir()
    _install_fake_distribution(root)
    monkeypatch.syspath_prepend(str(root))
    # spawned workers get the parent's sys.path; PYTHONPATH also covers any other child process
    monkeypatch.setenv("PYTHONPATH", str(root))
    yield root
    for reg, name in ((LEARNERS, "plugin-learner"), (REWARDS, "plugin-constant"), (POLICIES, "plugin-policy")):
        if name in reg._entries:
            reg.unregister(name)
    sys.modules.pop("mmenv_ep_plugin", None)


def test_entry_points_are_found_lazily_and_used_by_name(plugin):
    assert "mmenv_ep_plugin" not in sys.modules
    assert "plugin-learner" in LEARNERS.names()            # listed ...
    assert "mmenv_ep_plugin" not in sys.modules            # ... without importing the package
    learner = make_learner("Plugin-Learner", marker=7, lr=0.05)
    assert type(learner).__name__ == "PluginLearner" and learner.marker == 7
    with pytest.raises(ArgumentError, match="'markr'.*did you mean 'marker'"):
        make_learner("plugin-learner", markr=1)
    assert make_reward("plugin-constant")(None) == 0.5
    assert make_policy("plugin-policy").name == "plugin-policy"
    env = DUSEnv(dataset="synthetic", dataset_kwargs=TINY_DATA, learner="plugin-learner", reward="plugin-constant",
                 epochs=1, batch_budget=32)
    env.reset(seed=0)
    _, reward, *_ = env.step(env.action_space.sample())
    assert reward == 0.5
    # a name registered in code wins over an entry point of the same name
    with pytest.raises(RegistryError, match="already registered \\(entry point of mmenv-ep-plugin\\)"):
        mmenv.register_learner("plugin-learner", BaselineLearner)


@pytest.mark.subprocess
def test_entry_point_learner_in_compare_worker_processes(plugin, tmp_path):
    from mmenv.experiments.compare import run_comparison
    from mmenv.experiments.config import config_from_dict

    cfg = config_from_dict({
        "policies": ["uniform", "plugin-policy"], "learners": ["plugin-learner"], "datasets": ["synthetic"],
        "seeds": [0, 1], "env": {"epochs": 1, "batch_budget": 32}, "dataset_kwargs": {"synthetic": TINY_DATA},
        "learner_kwargs": {"plugin-learner": {"marker": 3}},
        "workers": 2, "plots": False, "tensorboard": False, "out": str(tmp_path / "out"),
    })
    summary = run_comparison(cfg, progress=False)
    assert summary.status_counts == {"ok": 4}, [r["error"] for r in summary.results]
    # "ok" also shows the workers built PluginLearner: the baseline would refuse marker=3
    for result in summary.results:
        assert result["learner"] == "plugin-learner" and 0.0 <= result["test"]["fused"]["accuracy"] <= 1.0
    # the learner was resolved and built in the worker processes: this process validated the
    # names (a listing) but never imported the plugin
    assert "mmenv_ep_plugin" not in sys.modules
