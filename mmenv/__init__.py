"""mmenv: multimodal training as a Gymnasium environment (Data-aware Unimodal Sampling).

``import mmenv`` registers ``mmenv/DUS-v0`` (the paper's environment) and
``mmenv/DUSBench-v0`` (the benchmark's settings: validation-accuracy reward, optional
extended observation; :mod:`mmenv.wrappers`)::

    import gymnasium as gym
    import mmenv

    env = gym.make("mmenv/DUS-v0", dataset="synthetic", learner="baseline", epochs=5)
    obs, info = env.reset(seed=0)
"""

from gymnasium.envs.registration import register, registry

from .datasets import MultimodalDataset, make_dataset, register_dataset
from .env import DUSEnv
from .learners import Learner, make_learner, register_learner

__version__ = "0.1.0"

__all__ = ["DUSEnv", "MultimodalDataset", "Learner", "make_dataset", "make_learner",
           "register_dataset", "register_learner", "__version__"]

ENV_ID = "mmenv/DUS-v0"
BENCH_ENV_ID = "mmenv/DUSBench-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="mmenv.env:DUSEnv", vector_entry_point="mmenv.vector_env:make_vector_env")
if BENCH_ENV_ID not in registry:
    register(id=BENCH_ENV_ID, entry_point="mmenv.wrappers:make_bench_env")
