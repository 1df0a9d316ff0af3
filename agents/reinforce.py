"""REINFORCE with a Dirichlet policy: the paper's learned sampler (Algorithm 1).

Read top to bottom:

1. **Network** (:class:`DirichletPolicyNet`): the observation ``s^`` (cumulative
   discrepancy, one value per modality) and its within-vector z-score (which modality is
   ahead, independent of scale) go through a two-layer tanh MLP; a head outputs one
   Dirichlet concentration per modality, ``softplus(.)`` clamped to ``[1e-3, 1e3]``.
   The head starts at zero weights and a bias giving every concentration
   ``init_concentration`` (5), so the first actions scatter around the uniform split
   and do not depend on the observation yet: with the paper's learning rate (1e-4) and
   one update per epoch the policy stays close to that start within one run (same seed,
   same shares, whatever the data); see the ``reinforce-fast`` preset of
   ``mmenv compare`` for a setting that learns within the run.
2. **Acting**: a Dirichlet sample is a valid proportion vector by construction (it lies
   on the simplex). It is drawn as normalised Gamma variates in float64 from the
   policy's own ``torch.Generator`` (seeded by ``seed``), so runs are reproducible and
   never touch the global RNG. ``deterministic=True`` returns the Dirichlet mean
   ``alpha / sum(alpha)`` (for evaluation). A sample that is not finite (all Gamma
   variates underflowing at tiny concentrations) falls back to the mean.
3. **Log-probability**: proportions are clamped to at least ``1e-6`` and renormalised
   before ``Dirichlet.log_prob`` (float64), so a sample with an exact 0 never gives
   ``-inf``; a loss that is still not finite skips the optimiser step (counted in
   ``skipped_updates``), and gradients are clipped to ``max_grad_norm``.
4. **Update**: loss ``= -advantage * log pi(a|s) - ent_coef * H(pi(.|s))``, Adam with
   learning rate 1e-4 (the paper's). Two modes:

   * ``mode="online"`` (default; Algorithm 1): after *every* environment step, one
     gradient step on that transition with advantage ``r_t - b``, ``b`` an exponential
     moving average of past rewards (initialised with the first reward). DUS thus
     learns *during* the single training run it controls.
   * ``mode="episodic"``: transitions are collected for a whole episode (one training
     run); at its end, discounted returns ``G_t = sum_k gamma^k r_{t+k}`` give
     advantages ``G_t - b_t`` with ``b_t`` a moving average of past returns *at the same
     step index* (episodes have a fixed horizon), and one gradient step is taken on the
     episode. :meth:`ReinforcePolicy.train_episodic` trains across many runs.
5. **Network choice** (``policy=``): ``"mlp"`` (above, the default) reads the concatenated
   observation and is built for one m; ``"equivariant"``
   (:class:`~mmenv.agents.equivariant.EquivariantDirichletNet`) scores every modality with
   one shared Deep Sets network from its own features plus a pooled summary, so permuting the
   modalities permutes the proportions and the same weights run on any m. It reads an
   observation laid out per modality (``observation="modal"`` of ``mmenv/DUSBench-v0``, or
   the paper's discrepancy as one feature per modality); the layout ``(k, g)`` is taken from
   the first observation and saved in the config.
6. **Saving**: the config (a plain dict), network and optimiser state, and baselines,
   written atomically by :func:`mmenv.checkpoint.atomic_save`;
   :meth:`ReinforcePolicy.load` (or ``mmenv.agents.make_policy("agent.pt")``) restores
   it through :func:`mmenv.checkpoint.load`: tensors, numbers, strings and containers
   only, so a crafted ``.pt`` file cannot run code (it is refused with
   :class:`mmenv.checkpoint.UnsafeCheckpointError`).

Example::

    from mmenv import DUSEnv
    from mmenv.agents import ReinforcePolicy, run_policy

    env = DUSEnv(epochs=5, batch_budget=32)
    policy = ReinforcePolicy(seed=0)               # online: learns inside one run
    record = run_policy(env, policy, seeds=[0])[0]
    policy.save("reinforce.pt")
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributions import Dirichlet

from mmenv.checkpoint import atomic_save
from mmenv.checkpoint import load as load_checkpoint

from .policy import Policy, PolicyError
from .safe_load import agent_load_errors, check_reinforce_config

__all__ = ["ReinforceConfig", "DirichletPolicyNet", "ReinforcePolicy", "NETWORKS"]

FORMAT = "mmenv-reinforce-v1"
MODES = ("online", "episodic")
NETWORKS = ("mlp", "equivariant")


@dataclass
class ReinforceConfig:
    """Hyper-parameters of :class:`ReinforcePolicy` (saved with the weights)."""

    num_modalities: int | None = None   # m; taken from the environment at reset() if None
    obs_dim: int | None = None          # observation length; m (the paper's) unless the env extends it
    hidden: int = 64
    lr: float = 1e-4                    # the paper's policy learning rate
    ent_coef: float = 1e-3              # entropy bonus (keeps the Dirichlet from collapsing)
    baseline_momentum: float = 0.9      # EMA factor of the reward / return baseline
    gamma: float = 0.99                 # discount (episodic mode)
    mode: str = "online"
    max_grad_norm: float = 1.0
    init_concentration: float = 5.0
    conc_min: float = 1e-3
    conc_max: float = 1e3
    prop_eps: float = 1e-6              # proportions are clamped to >= this for log_prob
    seed: int | None = None
    policy: str = "mlp"                 # the network: "mlp" or "equivariant" (per-modality, any m)
    modality_features: int | None = None  # equivariant: per-modality width k of the observation
    global_features: int | None = None    # equivariant: global width g (after the m blocks)
    contrast: bool = False              # equivariant: also read each feature against the other modalities'


class DirichletPolicyNet(nn.Module):
    """Observation -> Dirichlet concentrations (one per modality).

    The first ``m`` observation entries are the cumulative discrepancy (the paper's
    observation); an extended observation (``obs_dim > m``, :mod:`mmenv.wrappers`) appends
    more entries, which enter the network as they are.
    """

    def __init__(self, num_modalities: int, hidden: int = 64, init_concentration: float = 5.0,
                 conc_min: float = 1e-3, conc_max: float = 1e3, obs_dim: int | None = None) -> None:
        super().__init__()
        m = num_modalities
        self.num_modalities = m
        self.obs_dim = m if obs_dim is None else int(obs_dim)
        if self.obs_dim < m:
            raise PolicyError(f"obs_dim {self.obs_dim} is shorter than the {m} discrepancy entries")
        self.body = nn.Sequential(nn.Linear(self.obs_dim + m, hidden), nn.Tanh(), nn.Linear(hidden, hidden),
                                  nn.Tanh())
        self.head = nn.Linear(hidden, m)
        nn.init.zeros_(self.head.weight)
        # softplus(b) = c  <=>  b = log(exp(c) - 1)
        nn.init.constant_(self.head.bias, math.log(math.expm1(init_concentration)))
        self.conc_min, self.conc_max = conc_min, conc_max

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw scores plus their z-score across modalities (0 when all are equal), then any extra entries."""
        m = self.num_modalities
        if obs.shape[-1] != self.obs_dim:
            raise PolicyError(f"this policy was built for {m} modalities and observations of length "
                              f"{self.obs_dim}, got an observation of length {obs.shape[-1]} "
                              "(another environment, or another observation setting?)")
        s = torch.nan_to_num(obs[..., :m], nan=0.0, posinf=1.0, neginf=0.0).clamp(0.0, 1.0)
        centred = s - s.mean(-1, keepdim=True)
        z = centred / (centred.pow(2).mean(-1, keepdim=True).sqrt() + 1e-6)
        extra = torch.nan_to_num(obs[..., m:], nan=0.0, posinf=0.0, neginf=0.0)
        return torch.cat([s, z, extra], dim=-1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.body(self.features(obs)))
        return nn.functional.softplus(logits).clamp(self.conc_min, self.conc_max)


class ReinforcePolicy(Policy):
    """REINFORCE over Dirichlet-distributed batch proportions (online or episodic).

    Args:
        seed: seeds the network initialisation and the policy's own sampling generator.
        deterministic: act with the Dirichlet mean instead of sampling (evaluation).
        log_dir: if set, training statistics go to TensorBoard there.
        **config: any :class:`ReinforceConfig` field (``lr``, ``mode``, ``ent_coef``, ...).
    """

    name = "reinforce"

    def __init__(self, seed: int | None = None, deterministic: bool = False, log_dir: str | None = None,
                 **config: Any) -> None:
        unknown = set(config) - set(ReinforceConfig.__dataclass_fields__)
        if unknown:
            raise PolicyError(f"unknown REINFORCE option(s) {sorted(unknown)}; "
                              f"valid: {sorted(ReinforceConfig.__dataclass_fields__)}")
        self.config = ReinforceConfig(seed=seed, **config)
        if self.config.mode not in MODES:
            raise PolicyError(f"unknown mode {self.config.mode!r}; valid: {list(MODES)}")
        if self.config.policy not in NETWORKS:
            raise PolicyError(f"unknown REINFORCE network policy={self.config.policy!r}; valid: {list(NETWORKS)}")
        hidden = self.config.hidden
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < (0 if self.config.policy == "equivariant"
                                                                               else 1):
            raise PolicyError(f"hidden must be a positive int (0 = the linear scorer, equivariant network only), "
                              f"got {hidden!r}")
        if self.config.seed is None:
            self.config.seed = int(np.random.SeedSequence().generate_state(1)[0] % (2**31 - 1))
        self.deterministic = deterministic
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.net: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.reward_baseline: float | None = None          # online mode
        self.return_baselines: dict[int, float] = {}       # episodic mode, per step index
        self.num_updates = 0
        self.skipped_updates = 0
        self._episode: list[tuple[np.ndarray, np.ndarray, float]] = []
        self.log_dir = log_dir
        self._writer: Any = None  # a SummaryWriter, created at the first logged update
        self._purge_step: int | None = None  # where a resumed log continues (resume_logging)
        if self.config.num_modalities is not None or self.config.modality_features is not None:
            self.build(self.config.num_modalities, self.config.obs_dim)

    @property
    def mode(self) -> str:
        return self.config.mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise PolicyError(f"unknown mode {value!r}; valid: {list(MODES)}")
        self.config.mode = value

    # ------------------------------------------------------------------ network
    @property
    def equivariant(self) -> bool:
        """Whether the network is the per-modality (Deep Sets) one, which runs on any m."""
        return self.config.policy == "equivariant"

    def build(self, m: int | None, obs_dim: int | None = None) -> None:
        """Build the network for ``m`` modalities and observations of length ``obs_dim`` (default m).

        The equivariant network needs the per-modality layout ``(k, g)``: the configured
        ``modality_features`` / ``global_features``, else the layout of the observation mode whose
        length is ``obs_dim`` for m modalities (:func:`mmenv.observations.infer_observation`).
        It does not depend on m once built.
        """
        c = self.config
        if self.net is not None:
            if not self.equivariant and m is not None and m != c.num_modalities:
                raise PolicyError(f"this policy was built for {c.num_modalities} modalities, "
                                  f"the environment has {m}")
            return
        if self.equivariant:
            if c.modality_features is None or c.global_features is None:
                from mmenv.observations import infer_observation, observation_layout

                if m is None:
                    raise PolicyError("the equivariant network needs m or its layout (modality_features, "
                                      "global_features) to be built")
                n = int(obs_dim) if obs_dim is not None else m
                mode = infer_observation(n, m)
                layout = observation_layout(mode, m) if mode is not None else None
                if layout is None:
                    raise PolicyError(f"policy='equivariant' reads an observation laid out per modality; an "
                                      f"observation of length {n} for {m} modalities is not (use "
                                      "observation='modal' of mmenv/DUSBench-v0, or the paper's)")
                c.modality_features, c.global_features = layout[1], layout[2]
            c.num_modalities, c.obs_dim = None, None   # not tied to one m
        else:
            if m is None:
                raise PolicyError("the network is built for a number of modalities: pass m")
            c.num_modalities = m
            c.obs_dim = int(obs_dim) if obs_dim is not None else (c.obs_dim or m)
        # Parameter initialisation draws from torch's global RNG: seed it inside a fork.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            if self.equivariant:
                from .equivariant import EquivariantDirichletNet

                assert c.modality_features is not None and c.global_features is not None  # set just above
                self.net = EquivariantDirichletNet(c.modality_features, c.global_features, c.hidden,
                                                   c.init_concentration, c.conc_min, c.conc_max, c.contrast)
            else:
                assert c.num_modalities is not None  # set just above
                self.net = DirichletPolicyNet(c.num_modalities, c.hidden, c.init_concentration, c.conc_min,
                                              c.conc_max, obs_dim=c.obs_dim)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=c.lr)

    def weights(self) -> dict[str, torch.Tensor]:
        """A copy of the network's weights (what rollout workers act with)."""
        net, _ = self._built()
        return {k: v.clone() for k, v in net.state_dict().items()}

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Act with ``weights`` (from :meth:`weights` of a policy with the same configuration)."""
        net, _ = self._built()
        net.load_state_dict(weights)

    @classmethod
    def from_weights(cls, config: dict[str, Any], weights: dict[str, torch.Tensor]) -> ReinforcePolicy:
        """A policy with configuration ``config`` (``asdict(policy.config)``) acting with ``weights``."""
        options = {k: v for k, v in config.items() if k != "seed"}
        policy = cls(seed=config["seed"], **options)
        policy.build(config.get("num_modalities"), config.get("obs_dim"))
        policy.load_weights(weights)
        return policy

    def snapshot(self, deterministic: bool = True) -> ReinforcePolicy:
        """A copy acting with the current weights, without this policy's TensorBoard writer."""
        writer, self._writer = self._writer, None
        try:
            snap = copy.deepcopy(self)
        finally:
            self._writer = writer
        snap.deterministic = deterministic
        snap.log_dir = None
        return snap

    def _built(self) -> tuple[nn.Module, torch.optim.Optimizer]:
        """The network and its optimiser (an error before they are built)."""
        if self.net is None or self.optimizer is None:
            raise PolicyError("the network is built at the first reset(env)/act(obs)")
        return self.net, self.optimizer

    def distribution(self, obs: np.ndarray | torch.Tensor) -> Dirichlet:
        """pi(. | obs) as a float64 Dirichlet (batched if ``obs`` is 2-D)."""
        obs_t = torch.as_tensor(np.asarray(obs, dtype=np.float32))
        if self.net is None:
            # Not built by reset(env): the observation is the paper's unless m was configured.
            self.build(self.config.num_modalities or obs_t.shape[-1], obs_t.shape[-1])
        net, _ = self._built()
        return Dirichlet(net(obs_t).double(), validate_args=False)

    def _clamp(self, proportions: np.ndarray) -> torch.Tensor:
        p = torch.as_tensor(np.asarray(proportions, dtype=np.float64))
        p = torch.nan_to_num(p, nan=0.0).clamp(self.config.prop_eps, 1.0)
        return p / p.sum(-1, keepdim=True)

    # ------------------------------------------------------------------ Policy API
    def reset(self, env: Any) -> None:
        """Start of an episode; builds the network on the first call.

        ``env`` is the unwrapped DUSEnv (as the runner passes it): m comes from its
        modalities. The observation length is that of the paper's observation (m) unless
        ``obs_dim`` was configured, or the network is built lazily at the first ``act``
        (an extended observation, :mod:`mmenv.wrappers`, is longer than m).
        """
        m = len(env.modalities) if hasattr(env, "modalities") else int(env.observation_space.shape[0])
        if self.net is None and self.config.obs_dim is None:
            self.config.num_modalities = m  # the network is built at the first act(obs)
        else:
            self.build(m)
        self._episode = []

    def act(self, obs: np.ndarray, info: dict | None = None) -> np.ndarray:
        with torch.no_grad():
            conc = self.distribution(obs).concentration
            if self.equivariant:  # a sum that does not depend on the modalities' order, bit for bit
                from .equivariant import invariant_sum

                mean = conc / invariant_sum(conc, -1, keepdim=True)
            else:
                mean = conc / conc.sum(-1, keepdim=True)
            if self.deterministic:
                p = mean
            else:
                g = torch._standard_gamma(conc, generator=self.generator)
                p = g / g.sum(-1, keepdim=True)
                if not bool(torch.isfinite(p).all()):
                    p = mean
        return p.numpy()

    def update(self, obs, proportions, reward, next_obs, terminated, truncated, info) -> None:
        if self.mode == "online":
            # Algorithm 1: one policy-gradient step per environment step.
            if self.reward_baseline is None:
                self.reward_baseline = float(reward)
            advantage = float(reward) - self.reward_baseline
            self._gradient_step(np.asarray(obs)[None], np.asarray(proportions)[None], np.array([advantage]))
            b = self.config.baseline_momentum
            self.reward_baseline = b * self.reward_baseline + (1 - b) * float(reward)
        else:
            self._episode.append((np.asarray(obs), np.asarray(proportions), float(reward)))
            if terminated or truncated:
                self.finish_episode()

    def finish_episode(self) -> None:
        """Episodic mode: one update on the collected episode with discounted returns."""
        if not self._episode:
            return
        episode, self._episode = self._episode, []
        self.update_on_episodes([episode])

    def update_on_episodes(self, episodes: list[list[tuple[np.ndarray, np.ndarray, float]]]) -> None:
        """One gradient step on whole episodes, each a list of ``(obs, proportions, reward)``.

        Discounted returns ``G_t``; advantages ``G_t - b_t`` with ``b_t`` the moving
        average of past returns at step index t, updated episode by episode in the given
        order (so one episode gives exactly :meth:`finish_episode`'s update). Several
        episodes collected in parallel with the same parameters make one batched step.
        """
        b = self.config.baseline_momentum
        all_obs, all_props, all_adv = [], [], []
        for episode in episodes:
            if not episode:
                continue
            obs, props, rewards = zip(*episode)
            returns = self._returns(list(rewards))
            for t, g in enumerate(returns):
                base = self.return_baselines.get(t, g)
                all_adv.append(g - base)
                self.return_baselines[t] = b * base + (1 - b) * g
            all_obs.extend(obs)
            all_props.extend(props)
        if all_obs:
            self._gradient_step(np.stack(all_obs), np.stack(all_props), np.asarray(all_adv, dtype=np.float64))

    def update_on_groups(self, groups: list[list[list[tuple[np.ndarray, np.ndarray, float]]]],
                         normalize: bool = True) -> None:
        """One gradient step on groups of episodes, each group played on the same instance and
        environment seed (common random numbers) with different action samples.

        The advantage of episode i at step t is its return minus the mean return of the *other*
        episodes of its group at step t (the leave-one-out baseline of RLOO, Kool et al. 2019): the
        instance's difficulty and the seed's luck (model initialisation, data order), which
        dwarf the effect of the proportions across runs, cancel within a group, and the estimate
        stays unbiased because a baseline built from the other episodes does not depend on this
        episode's actions. ``normalize`` divides the update's advantages by their standard
        deviation (a gain of 1 point and of 10 points then move the policy at the same pace).
        The moving baselines of :meth:`update_on_episodes` are not used or changed.
        """
        all_obs, all_props, all_adv = [], [], []
        for group in groups:
            episodes = [episode for episode in group if episode]
            if len(episodes) < 2:
                raise PolicyError("a group needs at least two episodes (the leave-one-out baseline)")
            horizon = min(len(episode) for episode in episodes)
            returns = np.stack([self._returns([r for _, _, r in episode])[:horizon] for episode in episodes])
            loo = (returns.sum(0, keepdims=True) - returns) / (len(episodes) - 1)
            for episode, adv in zip(episodes, returns - loo):
                obs, props, _ = zip(*episode[:horizon])
                all_obs.extend(obs)
                all_props.extend(props)
                all_adv.extend(adv)
        if not all_obs:
            return
        adv = np.asarray(all_adv, dtype=np.float64)
        if normalize:
            adv = adv / (adv.std() + 1e-8)
        self._gradient_step(np.stack(all_obs), np.stack(all_props), adv)

    def _returns(self, rewards: list[float]) -> np.ndarray:
        """Discounted returns ``G_t = sum_k gamma^k r_{t+k}``."""
        returns = np.zeros(len(rewards))
        running = 0.0
        for t in reversed(range(len(rewards))):
            running = rewards[t] + self.config.gamma * running
            returns[t] = running
        return returns

    def _gradient_step(self, obs: np.ndarray, proportions: np.ndarray, advantages: np.ndarray) -> None:
        dist = self.distribution(obs)
        log_prob = dist.log_prob(self._clamp(proportions))
        entropy = dist.entropy()
        adv = torch.as_tensor(advantages, dtype=torch.float64)
        loss = -(adv * log_prob).mean() - self.config.ent_coef * entropy.mean()
        if not bool(torch.isfinite(loss)):
            self.skipped_updates += 1
            return
        net, optimizer = self._built()
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), self.config.max_grad_norm)
        optimizer.step()
        self.num_updates += 1
        if self.log_dir is not None:
            self._log(loss=float(loss.detach()), entropy=float(entropy.detach().mean()),
                      advantage=float(adv.mean()), concentration_sum=float(dist.concentration.detach().sum(-1).mean()))

    def resume_logging(self) -> None:
        """Continue the TensorBoard log after an interrupted run without writing an update twice.

        The next writer purges what the interrupted run logged after the current update
        count (its steps are update numbers, restored by :meth:`load_state_dict`);
        :func:`~mmenv.agents.assembly.run_resumable` calls it.
        """
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._purge_step = self.num_updates + 1

    def _log(self, **scalars: float) -> None:
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(self.log_dir, purge_step=self._purge_step)
        for key, value in scalars.items():
            self._writer.add_scalar(f"reinforce/{key}", value, self.num_updates)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # ------------------------------------------------------------------ training across runs
    def train_episodic(self, env, episodes: int, seeds: list[int] | None = None, progress: bool = False):
        """Learn across ``episodes`` training runs (episodic REINFORCE); returns their records."""
        from .runner import run_policy

        previous, self.mode = self.mode, "episodic"
        try:
            return run_policy(env, self, episodes=episodes, seeds=seeds, progress=progress, learn=True)
        finally:
            self.mode = previous

    # ------------------------------------------------------------------ save / load
    def save_payload(self) -> dict[str, Any]:
        """What :meth:`save` writes: only plain values and tensors (the config as a dict of numbers
        and strings, baselines as floats), so :meth:`load` reads it with the safe loader. Callers
        may add keys; :meth:`load` ignores them."""
        net, optimizer = self._built()
        return {
            "format": FORMAT,
            "config": asdict(self.config),
            "state_dict": net.state_dict(),
            "optimizer": optimizer.state_dict(),
            "reward_baseline": None if self.reward_baseline is None else float(self.reward_baseline),
            "return_baselines": {int(k): float(v) for k, v in self.return_baselines.items()},
            "num_updates": int(self.num_updates),
        }

    def save(self, path: str | Path, card: dict[str, Any] | None = None) -> None:
        """Write the trained policy to ``path`` atomically (a kill mid-write keeps the old file).

        ``card``: the agent card (:mod:`mmenv.agents.saved`) stored beside the weights; by
        default the card the policy was loaded with, if any.
        """
        payload = self.save_payload()
        if card is None and self.card is not None:
            card = self.card.to_dict()
        if card is not None:
            payload["agent"] = card
        atomic_save(payload, path)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume learning mid-run (for checkpoints; see mmenv.checkpoint).

        Unlike :meth:`save` (a trained policy), this also holds the sampling generator's
        state, the update counters and the transitions collected so far in the episode.
        """
        if self.net is None or self.optimizer is None:
            raise PolicyError("nothing to snapshot: the network is built at the first reset(env)/act(obs)")
        return copy.deepcopy({
            "format": FORMAT,
            "config": asdict(self.config),
            "state_dict": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "reward_baseline": self.reward_baseline,
            "return_baselines": {int(k): float(v) for k, v in self.return_baselines.items()},
            "num_updates": self.num_updates,
            "skipped_updates": self.skipped_updates,
            "episode": [(torch.as_tensor(o), torch.as_tensor(p), float(r)) for o, p, r in self._episode],
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into a policy built with the same configuration."""
        self.build(state["config"].get("num_modalities"), state["config"].get("obs_dim"))
        net, optimizer = self._built()
        net.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.reward_baseline = state["reward_baseline"]
        self.return_baselines = {int(k): float(v) for k, v in state["return_baselines"].items()}
        self.num_updates = int(state["num_updates"])
        self.skipped_updates = int(state["skipped_updates"])
        self._episode = [(o.numpy(), p.numpy(), float(r)) for o, p, r in state["episode"]]

    @classmethod
    @agent_load_errors("saved REINFORCE policy")
    def load(cls, path: str | Path, deterministic: bool = False, seed: int | None = None,
             **overrides: Any) -> ReinforcePolicy:
        """Restore a saved policy; ``overrides`` replace config fields (e.g. ``mode``, ``lr``)."""
        path = Path(path)
        if not path.is_file():
            raise PolicyError(f"no saved REINFORCE policy at {path}")
        state = load_checkpoint(path)  # safe: refuses files that name code (UnsafeCheckpointError)
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise PolicyError(f"{path} is not a saved REINFORCE policy (expected format {FORMAT!r})")
        check_reinforce_config(state.get("config"), path, overrides)   # types and sizes, before building
        config = {**state["config"], **overrides}
        saved_seed = config.pop("seed")
        policy = cls(seed=saved_seed if seed is None else seed, deterministic=deterministic, **config)
        policy.build(config.get("num_modalities"), config.get("obs_dim"))
        net, optimizer = policy._built()
        net.load_state_dict(state["state_dict"])
        if "lr" not in overrides:
            optimizer.load_state_dict(state["optimizer"])
        policy.reward_baseline = state["reward_baseline"]
        policy.return_baselines = {int(k): v for k, v in state["return_baselines"].items()}
        policy.num_updates = state["num_updates"]
        return policy
