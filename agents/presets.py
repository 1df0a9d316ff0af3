"""One preset table per algorithm: the hyper-parameters that learn in each way of training.

mmenv trains agents in two settings, and one algorithm's good settings differ between them:

* ``"within-run"``: the agent acts inside the one training run it controls (a run is one
  episode of tens of steps; :func:`mmenv.agents.sb3.make_sb3_agent`, ``mmenv train``). The
  presets update from very few transitions (module docstring of :mod:`mmenv.agents.sb3`).
* ``"across-runs"``: the agent learns over many whole training runs of a set of instances
  (:func:`mmenv.agents.across_runs.train_across_runs`, ``mmenv bench``). Every preset works
  on whole runs with ``gamma = 1`` (a run's return is its final validation accuracy minus its
  initial one); measured in docs/agents.md, "Learning across runs".

:data:`PRESETS` holds both per algorithm (``PRESETS["ppo"]["across-runs"]``); :func:`preset`
returns a fresh copy. Keys that are not the algorithm's own constructor arguments are
translated in one place (:func:`mmenv.agents.sb3.make_sb3_agent`): ``log_std_init`` goes to
the policy's ``policy_kwargs`` (Gaussian policies only), ``action_noise_sigma`` becomes a
``NormalActionNoise`` (TD3, DDPG), and ``policy`` (``"mlp"`` or ``"equivariant"``) picks the
network (:mod:`mmenv.agents.equivariant`).
"""

from __future__ import annotations

import copy
from typing import Any

from .policy import PolicyError

__all__ = ["PRESETS", "SETTINGS", "preset"]

SETTINGS = ("within-run", "across-runs")

_OFF_POLICY = dict(learning_starts=4, batch_size=8, train_freq=1, gradient_steps=1, buffer_size=10_000,
                   learning_rate=1e-4)
_OFF_POLICY_ACROSS = dict(learning_starts=20, batch_size=64, train_freq=1, gradient_steps=1, buffer_size=20_000,
                          learning_rate=1e-3, gamma=1.0)

#: algorithm -> setting -> hyper-parameters (``train_across_runs`` / ``make_sb3_agent`` overrides win)
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "reinforce": {
        # The paper's Algorithm 1 (ReinforceConfig's defaults: lr 1e-4, one update per step).
        "within-run": {},
        # Episodic REINFORCE with a Dirichlet policy; one update per `episodes_per_update` runs.
        "across-runs": dict(lr=3e-3, gamma=1.0, ent_coef=1e-3, baseline_momentum=0.9, episodes_per_update=2),
    },
    "es": {
        # Antithetic ES with paired seeds (mmenv.agents.es) on the linear per-modality scorer with
        # contrast features: 8 directions (16 runs) per generation.
        "across-runs": dict(population=8, sigma=0.5, lr=0.1, policy="equivariant", hidden=0, contrast=True,
                            init_concentration=1.0),
    },
    "ppo": {
        "within-run": dict(n_steps=8, batch_size=8, n_epochs=4, learning_rate=1e-4),
        # A rollout of 4 runs per environment, small initial action noise (the default std 1 on
        # a [-1, 1] action space mostly hits the bounds), lr 1e-3.
        "across-runs": dict(n_steps=20, batch_size=20, n_epochs=10, learning_rate=1e-3, gamma=1.0, gae_lambda=1.0,
                            ent_coef=0.0, log_std_init=-1.0),
    },
    "a2c": {"within-run": dict(n_steps=4, learning_rate=1e-4)},
    "sac": {"within-run": dict(_OFF_POLICY), "across-runs": dict(_OFF_POLICY_ACROSS, ent_coef="auto")},
    "td3": {"within-run": dict(_OFF_POLICY, action_noise_sigma=0.1),
            "across-runs": dict(_OFF_POLICY_ACROSS, action_noise_sigma=0.2)},
    "ddpg": {"within-run": dict(_OFF_POLICY, action_noise_sigma=0.1)},
    "tqc": {"within-run": dict(_OFF_POLICY)},
    "crossq": {"within-run": dict(_OFF_POLICY)},
    "trpo": {"within-run": dict(n_steps=8, batch_size=8, learning_rate=1e-4)},
    "recurrentppo": {"within-run": dict(n_steps=8, batch_size=8, n_epochs=4, learning_rate=1e-4)},
    "ars": {"within-run": dict(n_delta=2)},
}


def preset(algo: str, setting: str = "within-run") -> dict[str, Any]:
    """A fresh copy of ``algo``'s preset for ``setting`` (``{}`` for an algorithm without one)."""
    if setting not in SETTINGS:
        raise PolicyError(f"unknown preset setting {setting!r}; valid: {list(SETTINGS)}")
    return copy.deepcopy(PRESETS.get(str(algo).lower(), {}).get(setting, {}))
