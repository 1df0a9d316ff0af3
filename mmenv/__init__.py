"""mmenv: multimodal training as a Gymnasium environment (Data-aware Unimodal Sampling).

``import mmenv`` registers ``mmenv/DUS-v0`` (the paper's environment) and
``mmenv/DUSBench-v0`` (the benchmark's settings: validation-accuracy reward, optional
extended observation; :mod:`mmenv.wrappers`)::

    import gymnasium as gym
    import mmenv

    env = gym.make("mmenv/DUS-v0", dataset="synthetic", learner="baseline", epochs=5)
    obs, info = env.reset(seed=0)

Both registered ids default to ``action_space="softmax"`` (``Box(-1, 1)`` logits), the form
Gaussian agents such as SB3's expect and cannot misuse to starve a modality; pass
``action_space="unit"`` for the paper's ``[0, 1]`` proportions (``DUSEnv``'s own default).
``gym.make("mmenv/DUSBench-v0", instances=...)`` cycles through an instance set, one
training run per episode (:mod:`mmenv.cycling`).
"""

from gymnasium.envs import registration as _gym_registration

from .datasets import MultimodalDataset, make_dataset, register_dataset
from .env import DUSEnv
from .errors import MMEnvError
from .learners import Learner, make_learner, register_learner
from .rewards import register_reward

__version__ = "0.1.0"

__all__ = ["DUSEnv", "MultimodalDataset", "Learner", "make_dataset", "make_learner", "make_policy", "run_policy",
           "register_dataset", "register_learner", "register_reward", "MMEnvError", "__version__"]

#: Names served from mmenv.agents on first use, so that ``import mmenv`` does not import
#: Stable-Baselines3 (``Registry`` stays importable as ``mmenv.registry.Registry``).
_LAZY = {"make_policy": "mmenv.agents", "run_policy": "mmenv.agents"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mmenv' has no attribute {name!r}")

ENV_ID = "mmenv/DUS-v0"
BENCH_ENV_ID = "mmenv/DUSBench-v0"

# (gymnasium's registry under another name: ``mmenv.registry`` is this package's module)
if ENV_ID not in _gym_registration.registry:
    # Gaussian agents (SB3, sb3-contrib) sample around 0 with std 1: on [0, 1] half their draws
    # clip to a zero share. The softmax space maps them to shares within a ratio of 20.
    _gym_registration.register(id=ENV_ID, entry_point="mmenv.env:DUSEnv",
                               vector_entry_point="mmenv.vector_env:make_vector_env",
                               kwargs={"action_space": "softmax"})
if BENCH_ENV_ID not in _gym_registration.registry:
    # The same softmax default as DUS-v0, for the same agents (bench_env keeps DUSEnv's unit space).
    _gym_registration.register(id=BENCH_ENV_ID, entry_point="mmenv.wrappers:make_bench_env",
                               kwargs={"action_space": "softmax"})
